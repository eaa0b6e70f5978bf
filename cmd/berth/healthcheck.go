package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	domain "berth/agent/challenge"
)

// cmdHealthcheck exits 0 when berth answers GET /healthz (or /readyz with
// --ready) with 200, and 1 otherwise. It needs no token, shell or curl, so
// a container HEALTHCHECK can run it in an image that holds only berth.
func cmdHealthcheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "admin API address (default $BERTH_ADDR or "+defaultAddr+")")
	ready := fs.Bool("ready", false, "check /readyz instead of /healthz")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: berth healthcheck [--addr URL] [--ready] [--timeout DURATION]")
		return exitInvalid
	}
	base := firstNonEmpty(*addr, os.Getenv("BERTH_ADDR"), defaultAddr)
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+path, nil)
	if err != nil {
		fmt.Fprintln(stderr, "berth healthcheck:", err)
		return exitInvalid
	}
	// No HTTP_PROXY: the check is about this host's berth.
	resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "berth healthcheck:", err)
		return exitFailed
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "berth healthcheck: GET %s: %s %s\n", path, resp.Status, strings.TrimSpace(domain.Printable(string(body), true)))
		return exitFailed
	}
	fmt.Fprintln(stdout, "ok")
	return exitOK
}
