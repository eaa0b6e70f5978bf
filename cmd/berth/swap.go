package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

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

func newSwapCmd() *cobra.Command {
	var wait, drain bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "swap NAME VERSION",
		Short: "Swap a challenge to another version, blue-green",
		Long: `Start a blue-green swap of NAME to VERSION (a tag or a constraint such as
"^1.5"). With --wait, follow the swap's phases until the new version serves
(exit 0: its cut-over is done, the old version may still drain) or the swap
rolls back (exit 1); --drain also waits for the drain to finish.`,
		Example: `  berth swap web 1.5.0
  berth swap web "^1.5" --wait --timeout 5m
  berth swap web 1.5.0 --wait --drain`,
		Args: exactArgs(2, "NAME VERSION"),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the new version serves or the swap rolls back")
	cmd.Flags().BoolVar(&drain, "drain", false, "with --wait, also wait until the old version has drained")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long --wait waits")
	return clientCmd(cmd, func(c *apiClient, args []string, stdout, stderr io.Writer) int {
		return startSwap(c, args[0], "/swap", map[string]string{"version": args[1]}, wait, drain, timeout, stdout, stderr)
	})
}

func newRollbackCmd() *cobra.Command {
	var wait, drain bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "rollback NAME",
		Short: "Swap a challenge back to its previous version",
		Long: `Swap NAME back to its previous version, blue-green. With --wait, follow the
swap's phases until the previous version serves again; --drain also waits
for the drain to finish.`,
		Example: "  berth rollback web --wait\n  berth rollback web --wait --drain",
		Args:    exactArgs(1, "NAME"),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the previous version serves again")
	cmd.Flags().BoolVar(&drain, "drain", false, "with --wait, also wait until the swapped-out version has drained")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long --wait waits")
	return clientCmd(cmd, func(c *apiClient, args []string, stdout, stderr io.Writer) int {
		return startSwap(c, args[0], "/rollback", nil, wait, drain, timeout, stdout, stderr)
	})
}

func startSwap(c *apiClient, name, action string, body any, wait, drain bool, timeout time.Duration, stdout, stderr io.Writer) int {
	if drain && !wait {
		fmt.Fprintln(stderr, "berth: --drain only applies with --wait")
		return exitInvalid
	}
	var ans swapAnswer
	if err := c.call("POST", "/v1/challenges/"+url.PathEscape(name)+action, body, &ans); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "%s: swap %s started: %s → %s\n", name, ans.SwapID, ans.From, ans.To)
	if !wait {
		return exitOK
	}
	return waitSwap(c, name, ans.SwapID, drain, timeout, stdout, stderr)
}

// waitSwap follows the swap's phases until the new version serves (the
// challenge runs the target version and the swap drains or is done), or,
// with drain, until the swap completes. On a terminal it rewrites one status
// line, otherwise it prints one line per phase.
func waitSwap(c *apiClient, name, id string, drain bool, timeout time.Duration, stdout, stderr io.Writer) int {
	tty := isTerminal(stdout)
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		var ch challengeSwap
		if err := c.call("GET", "/v1/challenges/"+url.PathEscape(name), nil, &ch); err != nil {
			return fail(stderr, err)
		}
		if ch.Swap == nil || ch.Swap.ID != id {
			time.Sleep(250 * time.Millisecond)
			continue
		}
		if ch.Swap.Phase != last {
			last = ch.Swap.Phase
			if tty {
				fmt.Fprintf(stdout, "\r\033[K%s: %s → %s: %s", name, ch.Swap.From, ch.Swap.To, last)
			} else {
				fmt.Fprintf(stdout, "%s: %s\n", name, last)
			}
		}
		// The status is read anew each time: the version may follow the phase.
		serving := last == domain.PhaseDraining && ch.Version == ch.Swap.To
		switch {
		case last == domain.PhaseCompleted || (serving && !drain):
			if tty {
				fmt.Fprintln(stdout)
			}
			if last == domain.PhaseDraining {
				fmt.Fprintf(stdout, "%s: %s serves; %s drains (--drain waits for it)\n", name, ch.Swap.To, ch.Swap.From)
			}
			return exitOK
		case last == domain.PhaseRolledBack || last == domain.PhaseFailed:
			if tty {
				fmt.Fprintln(stdout)
			}
			// The error may quote the challenge's own answers.
			fmt.Fprintf(stderr, "berth: swap %s failed: %s\n", id, domain.Printable(ch.Swap.Error, true))
			return exitFailed
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
