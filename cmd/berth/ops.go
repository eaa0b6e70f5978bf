package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	domain "berth/agent/challenge"
)

// clientCmd completes a command that talks to the admin API: it adds the
// client flags and runs fn with a client built from them.
func clientCmd(cmd *cobra.Command, fn func(c *apiClient, args []string, stdout, stderr io.Writer) int) *cobra.Command {
	cf := addClientFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := cf.client()
		if err != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "berth:", err)
			return exitError(exitInvalid)
		}
		return exit(fn(c, args, cmd.OutOrStdout(), cmd.ErrOrStderr()))
	}
	// A first argument NAME completes from the running berth's challenges.
	if arg := strings.TrimPrefix(cmd.Use, cmd.Name()); strings.HasPrefix(arg, " NAME") || strings.HasPrefix(arg, " [NAME]") {
		cmd.ValidArgsFunction = func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			c, err := cf.client()
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return challengeNames(c), cobra.ShellCompDirectiveNoFileComp
		}
	}
	return cmd
}

// challengeNames completes a NAME argument from the running berth; a shell
// waiting on a completion gets nothing rather than a hang.
func challengeNames(c *apiClient) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := c.request(ctx, "GET", "/v1/challenges", nil)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var list []struct {
		Name string `json:"name"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&list) != nil {
		return nil
	}
	names := make([]string, 0, len(list))
	for _, ch := range list {
		names = append(names, ch.Name)
	}
	return names
}

func fail(stderr io.Writer, err error) int {
	fmt.Fprintln(stderr, "berth:", domain.Printable(err.Error(), true))
	return exitFailed
}

func newRestartCmd() *cobra.Command {
	return clientCmd(&cobra.Command{
		Use:     "restart NAME",
		Short:   "Restart a challenge's container",
		Long:    "Restart a challenge's container; this also clears a challenge berth gave up on.",
		Example: "  berth restart web",
		Args:    exactArgs(1, "NAME"),
	}, func(c *apiClient, args []string, stdout, stderr io.Writer) int {
		if err := c.call("POST", "/v1/challenges/"+url.PathEscape(args[0])+"/restart", nil, nil); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "%s: restarting\n", args[0])
		return exitOK
	})
}

// streamContext ends on SIGINT/SIGTERM so follow modes exit cleanly.
func streamContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func newEventsCmd() *cobra.Command {
	var o eventsOptions
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Print berth's events",
		Long: `Print berth's events (starts, exits, health changes, swaps, alerts), oldest
first. With -f, keep printing new events until interrupted.`,
		Example: `  berth events --challenge web
  berth events -f -o json`,
		Args: exactArgs(0, "none"),
	}
	cmd.Flags().BoolVarP(&o.follow, "follow", "f", false, "follow new events")
	cmd.Flags().StringVar(&o.challenge, "challenge", "", "only this challenge")
	cmd.Flags().StringVar(&o.since, "since", "", "events after this sequence number")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "output: text or json")
	return clientCmd(cmd, func(c *apiClient, _ []string, stdout, stderr io.Writer) int {
		return cmdEvents(c, o, stdout, stderr)
	})
}

type eventsOptions struct {
	follow                   bool
	challenge, since, output string
}

func cmdEvents(c *apiClient, o eventsOptions, stdout, stderr io.Writer) int {
	follow, challenge, since, output := o.follow, o.challenge, o.since, o.output
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
			fmt.Fprintln(stdout, printableJSON(sc.Text()))
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

func newLogsCmd() *cobra.Command {
	var follow bool
	var tail int
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print a challenge container's output",
		Example: `  berth logs web --tail 50
  berth logs web -f`,
		Args: exactArgs(1, "NAME"),
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the output")
	cmd.Flags().IntVar(&tail, "tail", -1, "only the last N lines, 0-10000 (default: the last 200; 0 with -f: only new output)")
	return clientCmd(cmd, func(c *apiClient, args []string, stdout, stderr io.Writer) int {
		return cmdLogs(c, args[0], follow, tail, stdout, stderr)
	})
}

func cmdLogs(c *apiClient, name string, follow bool, tail int, stdout, stderr io.Writer) int {
	q := url.Values{}
	if follow {
		q.Set("follow", "true")
	}
	if tail >= 0 {
		q.Set("tail", strconv.Itoa(tail))
	}
	ctx, cancel := streamContext()
	defer cancel()
	resp, err := c.request(ctx, "GET", "/v1/challenges/"+url.PathEscape(name)+"/logs?"+q.Encode(), nil)
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

// printableJSON escapes, as \uXXXX, the runes of a JSON text a terminal
// would act on: encoding/json leaves C1 controls (such as the 8-bit CSI
// U+009B), DEL and bidi overrides raw inside strings, and they may come from
// a challenge's output. Outside strings JSON holds only spaces, tabs and
// newlines, so the text stays the same JSON.
func printableJSON(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			b.WriteString(`\ufffd`)
		case r == '\n' || r == '\t' || r == '\r' || r == ' ':
			b.WriteRune(r)
		case unicode.IsControl(r) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
