package main

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// commandPaths lists the argument paths of every visible command under root.
func commandPaths(root *cobra.Command) [][]string {
	var out [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		out = append(out, path)
		for _, sub := range c.Commands() {
			if sub.Hidden {
				continue
			}
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	walk(root, nil)
	return out
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// TestHelpOnEveryCommand: --help and -h exit 0 on the root and every
// command and subcommand, printing a description, an example and the flags.
func TestHelpOnEveryCommand(t *testing.T) {
	root := newRootCmd(io.Discard, io.Discard)
	paths := commandPaths(root)
	if len(paths) < 15 {
		t.Fatalf("only %d commands found: %v", len(paths), paths)
	}
	for _, path := range paths {
		for _, flag := range []string{"--help", "-h"} {
			args := append(append([]string{}, path...), flag)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				code, stdout, stderr := runCLI(t, args...)
				if code != exitOK || stderr != "" {
					t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, stderr)
				}
				cmd, _, err := root.Find(path)
				if err != nil {
					t.Fatal(err)
				}
				for _, want := range []string{cmd.Short, "Usage:", "Examples:\n  ", "Flags:\n", "--help"} {
					if cmd.Long != "" && want == cmd.Short {
						want = strings.SplitN(cmd.Long, "\n", 2)[0]
					}
					if !strings.Contains(stdout, want) {
						t.Errorf("help lacks %q:\n%s", want, stdout)
					}
				}
			})
		}
	}
}

// TestHelpCommand: "berth help CMD" prints CMD's help, exit 0.
func TestHelpCommand(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"help", "status"}, {"help", "checkpoint", "restore"}, {"help", "ps"}} {
		code, stdout, stderr := runCLI(t, args...)
		want := "Usage:\n  berth " + strings.Join(args[1:], " ")
		if len(args) > 1 && args[1] == "ps" {
			want = "Usage:\n  berth status"
		}
		if code != exitOK || stderr != "" || !strings.Contains(stdout, want) {
			t.Errorf("%q: exit %d, stderr %q, stdout lacks %q:\n%s", args, code, stderr, want, stdout)
		}
	}
}

// TestConfigValidateHelp: --help is a flag, not the path of a file.
func TestConfigValidateHelp(t *testing.T) {
	t.Chdir(t.TempDir())
	code, stdout, stderr := runCLI(t, "config", "validate", "--help")
	if code != exitOK || stderr != "" || !strings.Contains(stdout, "berth config validate PATH") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and the help", code, stdout, stderr)
	}
	// After "--" it is a path again.
	code, _, stderr = runCLI(t, "config", "validate", "--", "--help")
	if code != exitInvalid || !strings.Contains(stderr, "--help") {
		t.Fatalf("validate -- --help: exit %d, stderr %q; want 2 naming the file", code, stderr)
	}
}

// TestUsageErrorsExit2: unknown commands and flags, wrong argument counts
// and bad flag values exit 2 with a message on stderr and nothing on stdout,
// before any request.
func TestUsageErrorsExit2(t *testing.T) {
	t.Setenv("BERTH_ADDR", "http://127.0.0.1:1") // no request may be needed
	for _, args := range [][]string{
		{},
		{"nope"},
		{"run"},
		{"run", "--config"},
		{"run", "--config", "x.yaml", "extra"},
		{"config"},
		{"config", "nope"},
		{"config", "validate"},
		{"config", "validate", "a", "b"},
		{"status", "--bogus"},
		{"status", "a", "b"},
		{"status", "-o", "yaml"},
		{"restart"},
		{"swap", "web"},
		{"swap", "web", "1.0", "--timeout", "soon"},
		{"rollback"},
		{"events", "--since", "yesterday"},
		{"events", "-o", "xml"},
		{"events", "extra"},
		{"logs"},
		{"logs", "web", "--tail", "many"},
		{"checkpoint"},
		{"checkpoint", "nope"},
		{"checkpoint", "verify"},
		{"checkpoint", "restore", "cp.bcp"},
		{"checkpoint", "list", "extra"},
		{"healthcheck", "extra"},
		{"healthcheck", "--timeout", "x"},
		{"version", "extra"},
		{"help", "nope"},
		{"help", "checkpoint", "nope"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, args...)
			if code != exitInvalid {
				t.Errorf("exit %d, want 2; stderr %q", code, stderr)
			}
			if stderr == "" {
				t.Error("no message on stderr")
			}
			if strings.Contains(stderr, "not running") {
				t.Errorf("a request was made: %q", stderr)
			}
			if len(args) > 0 && stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

// TestFlagSpellingsOfTheFlagPackage: "-addr URL" and "--o json", which the
// standard flag package accepted, still work; flags may follow arguments.
func TestFlagSpellingsOfTheFlagPackage(t *testing.T) {
	root := newRootCmd(io.Discard, io.Discard)
	got := normalizeFlags(root, []string{"logs", "web", "-addr", "http://x", "-tail=5", "--f", "-o", "--o=json", "--", "-addr"})
	want := []string{"logs", "web", "--addr", "http://x", "--tail=5", "-f", "-o", "-o=json", "--", "-addr"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("normalizeFlags = %q, want %q", got, want)
	}
	api := fakeAPI(t)
	code, stdout, stderr := runCLI(t, "logs", "web", "-addr", api, "-tail", "5")
	if code != exitOK || !strings.Contains(stdout, "first line") {
		t.Fatalf("logs with -addr: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
