package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	domain "berth/agent/challenge"
)

// challengeView is the subset of the challenge object the CLI prints.
type challengeView struct {
	Name            string     `json:"name"`
	Version         string     `json:"version"`
	State           string     `json:"state"`
	Health          string     `json:"health"`
	Restarts        int        `json:"restarts"`
	StartedAt       *time.Time `json:"started_at"`
	Endpoint        string     `json:"endpoint"`
	Upstream        string     `json:"upstream"`
	Slot            string     `json:"slot"`
	Digest          string     `json:"digest"`
	PreviousVersion string     `json:"previous_version"`
	LastError       string     `json:"last_error"`
}

func newStatusCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "status [NAME]",
		Aliases: []string{"ps"},
		Short:   "Show the challenges' state",
		Long: `Show each challenge's version, lifecycle state, health, restarts, uptime and
endpoint, or only NAME's. -o wide adds the upstream, slot, image digest,
previous version and last error; -o json prints the challenge objects.`,
		Example: `  berth status
  berth status web -o wide
  berth ps -o json`,
		Args: cobra.MaximumNArgs(1),
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output: table, wide or json")
	return clientCmd(cmd, func(c *apiClient, args []string, stdout, stderr io.Writer) int {
		return cmdStatus(c, args, output, stdout, stderr)
	})
}

func cmdStatus(c *apiClient, args []string, output string, stdout, stderr io.Writer) int {
	if output != "table" && output != "wide" && output != "json" {
		fmt.Fprintf(stderr, "berth status: -o %q: use table, wide or json\n", output)
		return exitInvalid
	}
	path := "/v1/challenges"
	if len(args) == 1 {
		path += "/" + url.PathEscape(args[0])
	}
	var raw json.RawMessage
	if err := c.call("GET", path, nil, &raw); err != nil {
		return fail(stderr, err)
	}
	if output == "json" {
		fmt.Fprintln(stdout, printableJSON(string(raw)))
		return exitOK
	}
	var list []challengeView
	if len(args) == 1 {
		list = make([]challengeView, 1)
		err := json.Unmarshal(raw, &list[0])
		if err != nil {
			return fail(stderr, err)
		}
	} else if err := json.Unmarshal(raw, &list); err != nil {
		return fail(stderr, err)
	}
	wide := output == "wide"
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	header := "NAME\tVERSION\tSTATE\tHEALTH\tRESTARTS\tUPTIME\tENDPOINT"
	if wide {
		header += "\tUPSTREAM\tSLOT\tDIGEST\tPREVIOUS\tLAST ERROR"
	}
	fmt.Fprintln(tw, header)
	for _, ch := range list {
		uptime := "-"
		if ch.StartedAt != nil && ch.State == "running" {
			uptime = time.Since(*ch.StartedAt).Round(time.Second).String()
		}
		row := fmt.Sprintf("%s\t%s\t%s\t%s\t%d\t%s\t%s", ch.Name, ch.Version, ch.State, ch.Health, ch.Restarts, uptime, ch.Endpoint)
		if wide {
			// The last error may quote the container's output: one line,
			// nothing that drives the terminal.
			row += fmt.Sprintf("\t%s\t%s\t%s\t%s\t%s", dash(ch.Upstream), dash(ch.Slot), dash(shortDigest(ch.Digest)),
				dash(ch.PreviousVersion), dash(domain.OneLine(ch.LastError)))
		}
		fmt.Fprintln(tw, row)
	}
	tw.Flush()
	return exitOK
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shortDigest keeps "sha256:" and 12 hex digits, like docker's short IDs.
func shortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if ok && len(hex) > 12 {
		return algo + ":" + hex[:12]
	}
	return d
}
