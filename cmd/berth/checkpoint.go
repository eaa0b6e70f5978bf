package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"berth/statestore"
)

// cmdCheckpoint: create and list go through the API; verify and restore work
// on files directly, so they also work while berth is stopped.
func cmdCheckpoint(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: berth checkpoint create | list | verify FILE | restore FILE --data-dir DIR")
		return exitInvalid
	}
	switch args[0] {
	case "create":
		c, _, ok := parseClient("checkpoint create", args[1:], 0, stderr, nil)
		if !ok {
			return exitInvalid
		}
		var info statestore.CheckpointInfo
		if err := c.call("POST", "/v1/checkpoints", nil, &info); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "checkpoint %d written: %s (%d bytes)\n", info.Sequence, info.Path, info.Bytes)
		return exitOK
	case "list":
		var output string
		c, _, ok := parseClient("checkpoint list", args[1:], 0, stderr, func(fs *flag.FlagSet) {
			fs.StringVar(&output, "o", "table", "output: table or json")
		})
		if !ok {
			return exitInvalid
		}
		var raw json.RawMessage
		if err := c.call("GET", "/v1/checkpoints", nil, &raw); err != nil {
			return fail(stderr, err)
		}
		if output == "json" {
			fmt.Fprintln(stdout, string(raw))
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
	case "verify":
		if len(args) != 2 {
			fmt.Fprintln(stderr, "usage: berth checkpoint verify FILE")
			return exitInvalid
		}
		info, err := statestore.VerifyCheckpoint(args[1])
		if err != nil {
			fmt.Fprintln(stderr, "invalid:", err)
			return exitFailed
		}
		fmt.Fprintf(stdout, "valid: sequence %d, created %s, %d bytes, sha256 %s\n", info.Sequence, info.Created.Format(time.RFC3339), info.Bytes, info.SHA256)
		return exitOK
	case "restore":
		fs := flag.NewFlagSet("checkpoint restore", flag.ContinueOnError)
		fs.SetOutput(stderr)
		dataDir := fs.String("data-dir", "", "berth data_dir to restore into (its state store must not exist yet)")
		if err := fs.Parse(interleave(args[1:])); err != nil || fs.NArg() != 1 || *dataDir == "" {
			fmt.Fprintln(stderr, "usage: berth checkpoint restore FILE --data-dir DIR")
			return exitInvalid
		}
		info, err := statestore.RestoreCheckpoint(fs.Arg(0), filepath.Join(*dataDir, "state"))
		if err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "restored checkpoint %d into %s\n", info.Sequence, filepath.Join(*dataDir, "state"))
		return exitOK
	default:
		fmt.Fprintf(stderr, "berth checkpoint: unknown subcommand %q\n", args[0])
		return exitInvalid
	}
}
