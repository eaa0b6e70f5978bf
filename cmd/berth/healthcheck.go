package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	domain "berth/agent/challenge"
)

func newHealthcheckCmd() *cobra.Command {
	var addr string
	var ready bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 when berth answers its health check",
		Long: `Exit 0 when berth answers GET /healthz (or /readyz with --ready) with 200, and 1
otherwise. It needs no token, shell or curl, so a container HEALTHCHECK can run
it in an image that holds only berth.`,
		Example: `  berth healthcheck
  berth healthcheck --ready --addr http://127.0.0.1:7070`,
		Args: exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return exit(cmdHealthcheck(addr, ready, timeout, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "", "admin API address (default $BERTH_ADDR or "+defaultAddr+")")
	cmd.Flags().BoolVar(&ready, "ready", false, "check /readyz instead of /healthz")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	return cmd
}

func cmdHealthcheck(addr string, ready bool, timeout time.Duration, stdout, stderr io.Writer) int {
	base := firstNonEmpty(addr, os.Getenv("BERTH_ADDR"), defaultAddr)
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	path := "/healthz"
	if ready {
		path = "/readyz"
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
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
