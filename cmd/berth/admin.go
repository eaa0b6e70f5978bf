package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	domain "berth/agent/challenge"
)

func newInspectCmd() *cobra.Command {
	return clientCmd(&cobra.Command{
		Use:     "inspect NAME",
		Short:   "Print a challenge object as JSON",
		Long:    "Print the challenge object the admin API holds for NAME (GET /v1/challenges/NAME), indented.",
		Example: "  berth inspect web\n  berth inspect web | jq .swap",
		Args:    exactArgs(1, "NAME"),
	}, func(c *apiClient, args []string, stdout, stderr io.Writer) int {
		var raw json.RawMessage
		if err := c.call("GET", "/v1/challenges/"+url.PathEscape(args[0]), nil, &raw); err != nil {
			return fail(stderr, err)
		}
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintln(stdout, printableJSON(buf.String()))
		return exitOK
	})
}

func newReloadCmd() *cobra.Command {
	return clientCmd(&cobra.Command{
		Use:   "reload",
		Short: "Re-read the config file",
		Long: `Re-read the config file and challenge directories (like SIGHUP) and print the
challenges added, updated and removed. An invalid config is refused whole and
the running one stays.`,
		Example: "  berth reload",
		Args:    exactArgs(0, "none"),
	}, func(c *apiClient, _ []string, stdout, stderr io.Writer) int {
		var res struct {
			Added   []string `json:"added"`
			Updated []string `json:"updated"`
			Removed []string `json:"removed"`
		}
		if err := c.call("POST", "/v1/reload", nil, &res); err != nil {
			return fail(stderr, err)
		}
		for _, l := range []struct {
			label string
			names []string
		}{{"added", res.Added}, {"updated", res.Updated}, {"removed", res.Removed}} {
			fmt.Fprintf(stdout, "%-8s %s\n", l.label+":", dash(strings.Join(l.names, ", ")))
		}
		return exitOK
	})
}

func newRmCmd() *cobra.Command {
	return clientCmd(&cobra.Command{
		Use:   "rm NAME",
		Short: "Stop and remove a challenge registered over the API",
		Long: `Stop and remove a challenge registered over the API (DELETE /v1/challenges/NAME).
A challenge declared in the config file is refused: remove it from the file
and run berth reload.`,
		Example: "  berth rm web",
		Args:    exactArgs(1, "NAME"),
	}, func(c *apiClient, args []string, stdout, stderr io.Writer) int {
		err := c.call("DELETE", "/v1/challenges/"+url.PathEscape(args[0]), nil, nil)
		var apiErr *apiError
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusConflict {
			fmt.Fprintf(stderr, "berth: cannot remove %s: %s; remove it from the config file and run `berth reload`\n",
				args[0], domain.Printable(apiErr.Message, true))
			return exitFailed
		}
		if err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "%s: removed\n", args[0])
		return exitOK
	})
}
