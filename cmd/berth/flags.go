package main

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// normalizeFlags keeps the spellings the standard flag package accepted
// before the CLI moved to cobra: "-addr URL" and "--o json" become
// "--addr URL" and "-o json". Only names some command defines are
// rewritten, and nothing after "--".
func normalizeFlags(root *cobra.Command, args []string) []string {
	long, short := map[string]bool{}, map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			long[f.Name] = true
			if f.Shorthand != "" {
				short[f.Shorthand] = true
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			out = append(out, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		rest := ""
		if hasValue {
			rest = "=" + value
		}
		switch {
		case len(name) > 1 && long[name]:
			out = append(out, "--"+name+rest)
		case len(name) == 1 && short[name]:
			out = append(out, "-"+name+rest)
		default:
			out = append(out, a)
		}
	}
	return out
}
