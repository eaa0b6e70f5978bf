package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func versionLine() string { return "berth " + version }

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print berth's version",
		Example: "  berth version\n  berth --version",
		Args:    exactArgs(0, "none"),
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), versionLine())
		},
	}
}
