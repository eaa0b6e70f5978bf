package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"berth/statestore"
)

// newCheckpointCmd: create and list go through the API; verify and restore
// work on files directly, so they also work while berth is stopped.
func newCheckpointCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "checkpoint",
		Short: "Create, list, verify and restore state checkpoints",
		Long: `Create and list checkpoints of berth's state store through the admin API;
verify a checkpoint file, or restore one into a data directory while berth is
stopped.`,
		Example: `  berth checkpoint create
  berth checkpoint restore /var/lib/berth/checkpoints/cp-42.bcp --data-dir /var/lib/berth`,
		RunE: groupRunE,
	}
	var output, dataDir string
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the checkpoints and whether each is valid",
		Example: "  berth checkpoint list -o json",
		Args:    exactArgs(0, "none"),
	}
	list.Flags().StringVarP(&output, "output", "o", "table", "output: table or json")
	restore := &cobra.Command{
		Use:   "restore FILE --data-dir DIR",
		Short: "Restore a checkpoint into a data directory",
		Long: `Restore a checkpoint file into DIR/state. berth must be stopped and DIR must
hold no state store yet.`,
		Example: "  berth checkpoint restore cp-42.bcp --data-dir /var/lib/berth",
		Args:    exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dataDir == "" {
				return errors.New("--data-dir is required")
			}
			return exit(checkpointRestore(args[0], dataDir, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	restore.Flags().StringVar(&dataDir, "data-dir", "", "berth data_dir to restore into (its state store must not exist yet)")
	cmd.AddCommand(
		clientCmd(&cobra.Command{
			Use:     "create",
			Short:   "Write a checkpoint of berth's state now",
			Example: "  berth checkpoint create",
			Args:    exactArgs(0, "none"),
		}, checkpointCreate),
		clientCmd(list, func(c *apiClient, _ []string, stdout, stderr io.Writer) int {
			return checkpointList(c, output, stdout, stderr)
		}),
		&cobra.Command{
			Use:     "verify FILE",
			Short:   "Check a checkpoint file's integrity",
			Example: "  berth checkpoint verify cp-42.bcp",
			Args:    exactArgs(1, "FILE"),
			RunE: func(cmd *cobra.Command, args []string) error {
				return exit(checkpointVerify(args[0], cmd.OutOrStdout(), cmd.ErrOrStderr()))
			},
		},
		restore,
	)
	return cmd
}

func checkpointCreate(c *apiClient, _ []string, stdout, stderr io.Writer) int {
	var info statestore.CheckpointInfo
	if err := c.call("POST", "/v1/checkpoints", nil, &info); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "checkpoint %d written: %s (%d bytes)\n", info.Sequence, info.Path, info.Bytes)
	return exitOK
}

func checkpointList(c *apiClient, output string, stdout, stderr io.Writer) int {
	var raw json.RawMessage
	if err := c.call("GET", "/v1/checkpoints", nil, &raw); err != nil {
		return fail(stderr, err)
	}
	if output == "json" {
		fmt.Fprintln(stdout, printableJSON(string(raw)))
		return exitOK
	}
	var list []struct {
		statestore.CheckpointInfo
		Valid bool   `json:"valid"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return fail(stderr, err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQUENCE\tCREATED\tBYTES\tVALID\tFILE")
	for _, e := range list {
		valid := "yes"
		if !e.Valid {
			valid = "NO: " + e.Error
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\n", e.Sequence, e.Created.Local().Format(time.DateTime), e.Bytes, valid, filepath.Base(e.Path))
	}
	tw.Flush()
	return exitOK
}

func checkpointVerify(path string, stdout, stderr io.Writer) int {
	info, err := statestore.VerifyCheckpoint(path)
	if err != nil {
		fmt.Fprintln(stderr, "invalid:", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "valid: sequence %d, created %s, %d bytes, sha256 %s\n", info.Sequence, info.Created.Format(time.RFC3339), info.Bytes, info.SHA256)
	return exitOK
}

func checkpointRestore(path, dataDir string, stdout, stderr io.Writer) int {
	info, err := statestore.RestoreCheckpoint(path, filepath.Join(dataDir, "state"))
	if err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "restored checkpoint %d into %s\n", info.Sequence, filepath.Join(dataDir, "state"))
	return exitOK
}
