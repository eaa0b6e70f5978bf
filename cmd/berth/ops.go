package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	domain "berth/agent/challenge"
)

// challengeView is the subset of the challenge object the CLI prints.
type challengeView struct {
	Name      string     `json:"name"`
	Version   string     `json:"version"`
	State     string     `json:"state"`
	Health    string     `json:"health"`
	Restarts  int        `json:"restarts"`
	StartedAt *time.Time `json:"started_at"`
	Endpoint  string     `json:"endpoint"`
}

// parseClient parses flags for a client command; nargs < 0 means any count.
func parseClient(name string, args []string, nargs int, stderr io.Writer, extra func(fs *flag.FlagSet)) (*apiClient, []string, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := addClientFlags(fs)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(interleave(args)); err != nil {
		return nil, nil, false
	}
	if nargs >= 0 && fs.NArg() != nargs {
		fmt.Fprintf(stderr, "berth %s: expected %d argument(s), got %d\n", name, nargs, fs.NArg())
		return nil, nil, false
	}
	c, err := cf.client()
	if err != nil {
		fmt.Fprintln(stderr, "berth:", err)
		return nil, nil, false
	}
	return c, fs.Args(), true
}

// interleave moves flags before positional arguments so "logs NAME -f" works.
func interleave(args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") {
			flags = append(flags, a)
			if !strings.Contains(a, "=") && i+1 < len(args) && takesValue(a) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	return append(flags, pos...)
}

func takesValue(flagName string) bool {
	switch strings.TrimLeft(flagName, "-") {
	case "f", "follow", "wait", "w":
		return false
	}
	return true
}

func fail(stderr io.Writer, err error) int {
	fmt.Fprintln(stderr, "berth:", domain.Printable(err.Error(), true))
	return exitFailed
}

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	var output string
	c, _, ok := parseClient("status", args, 0, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&output, "o", "table", "output: table or json")
	})
	if !ok {
		return exitInvalid
	}
	var raw json.RawMessage
	if err := c.call("GET", "/v1/challenges", nil, &raw); err != nil {
		return fail(stderr, err)
	}
	switch output {
	case "json":
		fmt.Fprintln(stdout, string(raw))
		return exitOK
	case "table":
	default:
		fmt.Fprintf(stderr, "berth status: -o %q: use table or json\n", output)
		return exitInvalid
	}
	var list []challengeView
	if err := json.Unmarshal(raw, &list); err != nil {
		return fail(stderr, err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tSTATE\tHEALTH\tRESTARTS\tUPTIME\tENDPOINT")
	for _, ch := range list {
		uptime := "-"
		if ch.StartedAt != nil && ch.State == "running" {
			uptime = time.Since(*ch.StartedAt).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", ch.Name, ch.Version, ch.State, ch.Health, ch.Restarts, uptime, ch.Endpoint)
	}
	tw.Flush()
	return exitOK
}

func cmdRestart(args []string, stdout, stderr io.Writer) int {
	c, pos, ok := parseClient("restart", args, 1, stderr, nil)
	if !ok {
		return exitInvalid
	}
	if err := c.call("POST", "/v1/challenges/"+url.PathEscape(pos[0])+"/restart", nil, nil); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "%s: restarting\n", pos[0])
	return exitOK
}

// streamContext ends on SIGINT/SIGTERM so follow modes exit cleanly.
func streamContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func cmdEvents(args []string, stdout, stderr io.Writer) int {
	var follow bool
	var challenge, since, output string
	c, _, ok := parseClient("events", args, 0, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&follow, "f", false, "follow new events")
		fs.StringVar(&challenge, "challenge", "", "only this challenge")
		fs.StringVar(&since, "since", "", "events after this sequence number")
		fs.StringVar(&output, "o", "text", "output: text or json")
	})
	if !ok {
		return exitInvalid
	}
	if output != "text" && output != "json" {
		fmt.Fprintf(stderr, "berth events: -o %q: use text or json\n", output)
		return exitInvalid
	}
	q := url.Values{}
	if follow {
		q.Set("follow", "true")
	}
	if challenge != "" {
		q.Set("challenge", challenge)
	}
	if since != "" {
		if _, err := strconv.ParseUint(since, 10, 64); err != nil {
			fmt.Fprintf(stderr, "berth events: --since %q is not a sequence number\n", since)
			return exitInvalid
		}
		q.Set("since", since)
	}
	ctx, cancel := streamContext()
	defer cancel()
	resp, err := c.request(ctx, "GET", "/v1/events?"+q.Encode(), nil)
	if err != nil {
		return fail(stderr, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if output == "json" {
			fmt.Fprintln(stdout, sc.Text())
			continue
		}
		var ev struct {
			Seq       uint64    `json:"seq"`
			Time      time.Time `json:"time"`
			Type      string    `json:"type"`
			Challenge string    `json:"challenge"`
			Message   string    `json:"message"`
			Error     string    `json:"error"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		line := fmt.Sprintf("%6d %s %-18s %-16s %s", ev.Seq, ev.Time.Local().Format("2006-01-02 15:04:05"), ev.Type, ev.Challenge, ev.Message)
		if ev.Error != "" {
			line += " (" + ev.Error + ")"
		}
		// Messages quote container output: nothing in them may drive the
		// terminal, and an event is one row (older events kept raw newlines).
		fmt.Fprintln(stdout, domain.OneLine(line))
	}
	if ctx.Err() != nil {
		return exitOK
	}
	if err := sc.Err(); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

func cmdLogs(args []string, stdout, stderr io.Writer) int {
	var follow bool
	tail := -1
	c, pos, ok := parseClient("logs", args, 1, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&follow, "f", false, "follow the output")
		fs.IntVar(&tail, "tail", -1, "only the last N lines, 0-10000 (default: the last 200; 0 with -f: only new output)")
	})
	if !ok {
		return exitInvalid
	}
	q := url.Values{}
	if follow {
		q.Set("follow", "true")
	}
	if tail >= 0 {
		q.Set("tail", strconv.Itoa(tail))
	}
	ctx, cancel := streamContext()
	defer cancel()
	resp, err := c.request(ctx, "GET", "/v1/challenges/"+url.PathEscape(pos[0])+"/logs?"+q.Encode(), nil)
	if err != nil {
		return fail(stderr, err)
	}
	defer resp.Body.Close()
	if err := copyPrintable(stdout, resp.Body); err != nil && ctx.Err() == nil {
		return fail(stderr, err)
	}
	return exitOK
}

// copyPrintable copies container output line by line through
// agent.Printable, keeping newlines and tabs, so the output cannot drive
// the terminal it is printed on.
func copyPrintable(w io.Writer, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if _, werr := io.WriteString(w, domain.Printable(string(chunk), true)); werr != nil {
				return werr
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return nil
		default:
			return err
		}
	}
}
