package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildInfo is what berth version reports: the module version and the VCS
// revision the binary was built from; "dev" and "unknown" when the build
// did not record them (go run, go test, builds outside a repository).
type buildInfo struct {
	Version  string
	Revision string
	Modified bool
}

func readBuildInfo() buildInfo {
	info, _ := debug.ReadBuildInfo()
	return buildInfoFrom(version, info)
}

// buildInfoFrom reads info (nil when the binary carries none); a version
// set with -ldflags -X main.version wins over the module version.
func buildInfoFrom(ldflagsVersion string, info *debug.BuildInfo) buildInfo {
	b := buildInfo{Version: ldflagsVersion, Revision: "unknown"}
	if info == nil {
		return b
	}
	if b.Version == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		b.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			if s.Value != "" {
				b.Revision = s.Value
			}
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// versionLine is "berth VERSION (revision REV)", with ", modified" when the
// working tree had uncommitted changes.
func versionLine() string {
	b := readBuildInfo()
	mod := ""
	if b.Modified {
		mod = ", modified"
	}
	return fmt.Sprintf("berth %s (revision %s%s)", b.Version, b.Revision, mod)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print berth's version and VCS revision",
		Long:    `Print the module version and the VCS revision berth was built from ("dev" and "unknown" when the build did not record them).`,
		Example: "  berth version\n  berth --version",
		Args:    exactArgs(0, "none"),
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), versionLine())
		},
	}
}
