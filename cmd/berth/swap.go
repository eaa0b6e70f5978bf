package main

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	domain "berth/agent/challenge"
)

type swapAnswer struct {
	SwapID string `json:"swap_id"`
	From   string `json:"from"`
	To     string `json:"to"`
}

type challengeSwap struct {
	Version string `json:"version"`
	Swap    *struct {
		ID    string `json:"id"`
		Phase string `json:"phase"`
		From  string `json:"from"`
		To    string `json:"to"`
		Error string `json:"error"`
	} `json:"swap"`
}

func cmdSwap(args []string, stdout, stderr io.Writer) int {
	var wait bool
	var timeout time.Duration
	c, pos, ok := parseClient("swap", args, 2, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&wait, "wait", false, "wait until the swap completes or rolls back")
		fs.DurationVar(&timeout, "timeout", 10*time.Minute, "how long --wait waits")
	})
	if !ok {
		return exitInvalid
	}
	return startSwap(c, pos[0], "/swap", map[string]string{"version": pos[1]}, wait, timeout, stdout, stderr)
}

func cmdRollback(args []string, stdout, stderr io.Writer) int {
	var wait bool
	var timeout time.Duration
	c, pos, ok := parseClient("rollback", args, 1, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&wait, "wait", false, "wait until the rollback completes")
		fs.DurationVar(&timeout, "timeout", 10*time.Minute, "how long --wait waits")
	})
	if !ok {
		return exitInvalid
	}
	return startSwap(c, pos[0], "/rollback", nil, wait, timeout, stdout, stderr)
}

func startSwap(c *apiClient, name, action string, body any, wait bool, timeout time.Duration, stdout, stderr io.Writer) int {
	var ans swapAnswer
	if err := c.call("POST", "/v1/challenges/"+url.PathEscape(name)+action, body, &ans); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "%s: swap %s started: %s → %s\n", name, ans.SwapID, ans.From, ans.To)
	if !wait {
		return exitOK
	}
	return waitSwap(c, name, ans.SwapID, timeout, stdout, stderr)
}

// waitSwap follows the swap's phases until it ends; on a terminal it
// rewrites one status line, otherwise it prints one line per phase.
func waitSwap(c *apiClient, name, id string, timeout time.Duration, stdout, stderr io.Writer) int {
	tty := isTerminal(stdout)
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		var ch challengeSwap
		if err := c.call("GET", "/v1/challenges/"+url.PathEscape(name), nil, &ch); err != nil {
			return fail(stderr, err)
		}
		if ch.Swap != nil && ch.Swap.ID == id && ch.Swap.Phase != last {
			last = ch.Swap.Phase
			if tty {
				fmt.Fprintf(stdout, "\r\033[K%s: %s → %s: %s", name, ch.Swap.From, ch.Swap.To, last)
			} else {
				fmt.Fprintf(stdout, "%s: %s\n", name, last)
			}
			switch last {
			case "completed":
				if tty {
					fmt.Fprintln(stdout)
				}
				return exitOK
			case "rolled_back", "failed":
				if tty {
					fmt.Fprintln(stdout)
				}
				// The error may quote the challenge's own answers.
				fmt.Fprintf(stderr, "berth: swap %s failed: %s\n", id, domain.Printable(ch.Swap.Error, true))
				return exitFailed
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	fmt.Fprintf(stderr, "berth: swap %s still running after %s (last phase %s)\n", id, timeout, last)
	return exitFailed
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
