package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	domain "berth/agent/challenge"
)

// snapshotRow is one snapshot as GET /v1/challenges/{name}/snapshots lists it.
type snapshotRow struct {
	Seq     uint64    `json:"seq"`
	Version string    `json:"version"`
	Bytes   int       `json:"bytes"`
	SHA256  string    `json:"sha256"`
	At      time.Time `json:"at"`
}

func newStateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state",
		Short: "List, save and restore a challenge's state snapshots",
		Long: `List a challenge's stored state snapshots, export one now, or import one into
the serving container (it answers 503 through the stable endpoint meanwhile).`,
		Example: `  berth state list web
  berth state save web
  berth state restore web 12`,
		RunE: groupRunE,
	}
	var output string
	list := &cobra.Command{
		Use:     "list NAME",
		Short:   "List a challenge's snapshots, newest first",
		Example: "  berth state list web -o json",
		Args:    exactArgs(1, "NAME"),
	}
	list.Flags().StringVarP(&output, "output", "o", "table", "output: table or json")
	cmd.AddCommand(
		clientCmd(list, func(c *apiClient, args []string, stdout, stderr io.Writer) int {
			return stateList(c, args[0], output, stdout, stderr)
		}),
		clientCmd(&cobra.Command{
			Use:     "save NAME",
			Short:   "Export the challenge's state into a new snapshot now",
			Example: "  berth state save web",
			Args:    exactArgs(1, "NAME"),
		}, func(c *apiClient, args []string, stdout, stderr io.Writer) int {
			var snap snapshotRow
			if err := c.call("POST", snapshotsPath(args[0]), nil, &snap); err != nil {
				return fail(stderr, err)
			}
			fmt.Fprintf(stdout, "%s: snapshot %d saved (version %s, %d bytes)\n", args[0], snap.Seq, snap.Version, snap.Bytes)
			return exitOK
		}),
		clientCmd(&cobra.Command{
			Use:   "restore NAME [SEQ]",
			Short: "Import a snapshot (the newest without SEQ) into the serving container",
			Example: `  berth state restore web
  berth state restore web 12`,
			Args: cobra.RangeArgs(1, 2),
		}, stateRestore),
	)
	return cmd
}

func snapshotsPath(name string) string {
	return "/v1/challenges/" + url.PathEscape(name) + "/snapshots"
}

func listSnapshots(c *apiClient, name string) (json.RawMessage, []snapshotRow, error) {
	var raw json.RawMessage
	if err := c.call("GET", snapshotsPath(name), nil, &raw); err != nil {
		return nil, nil, err
	}
	var rows []snapshotRow
	err := json.Unmarshal(raw, &rows)
	return raw, rows, err
}

func stateList(c *apiClient, name, output string, stdout, stderr io.Writer) int {
	raw, rows, err := listSnapshots(c, name)
	if err != nil {
		return fail(stderr, err)
	}
	if output == "json" {
		fmt.Fprintln(stdout, printableJSON(string(raw)))
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tVERSION\tBYTES\tTAKEN\tSHA256")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%.12s\n", r.Seq, domain.OneLine(domain.Printable(r.Version, false)), r.Bytes, r.At.Local().Format(time.DateTime), r.SHA256)
	}
	tw.Flush()
	return exitOK
}

func stateRestore(c *apiClient, args []string, stdout, stderr io.Writer) int {
	name := args[0]
	var seq uint64
	if len(args) == 2 {
		n, err := strconv.ParseUint(args[1], 10, 64)
		if err != nil || n == 0 {
			return fail(stderr, fmt.Errorf("SEQ %q must be a snapshot number from berth state list", args[1]))
		}
		seq = n
	} else {
		_, rows, err := listSnapshots(c, name)
		if err != nil {
			return fail(stderr, err)
		}
		if len(rows) == 0 {
			return fail(stderr, fmt.Errorf("%s has no snapshots", name))
		}
		seq = rows[0].Seq
	}
	if err := c.call("POST", snapshotsPath(name)+"/"+strconv.FormatUint(seq, 10)+"/restore", nil, nil); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "%s: snapshot %d restored\n", name, seq)
	return exitOK
}
