package configs

import (
	"errors"
	"strings"
	"testing"
)

// indent prefixes every non-empty line of s with n spaces.
func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pad + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// challengeDoc is a valid config whose single challenge gets extra keys; a
// key in extra replaces the base one.
func challengeDoc(extra string) string {
	var b strings.Builder
	b.WriteString("challenges:\n  - ")
	first := true
	for _, kv := range [][2]string{{"name", "app"}, {"image", "ghcr.io/org/app"}, {"version", `"1.0.0"`}} {
		if strings.HasPrefix(extra, kv[0]+":") || strings.Contains(extra, "\n"+kv[0]+":") {
			continue
		}
		if !first {
			b.WriteString("    ")
		}
		first = false
		b.WriteString(kv[0] + ": " + kv[1] + "\n")
	}
	if first {
		return b.String() + strings.TrimLeft(indent(extra, 4), " ")
	}
	return b.String() + indent(extra, 4)
}

func agentDoc(extra string) string {
	return "agent:\n" + indent(extra, 2)
}

func mustParse(tb testing.TB, doc string) *Config {
	tb.Helper()
	cfg, err := Parse("test.yaml", []byte(doc))
	if err != nil {
		tb.Fatalf("Parse: unexpected error:\n%v\n--- input:\n%s", err, doc)
	}
	return cfg
}

// parseErrs parses doc and returns its problems, failing if there are none.
func parseErrs(tb testing.TB, doc string) Errors {
	tb.Helper()
	cfg, err := Parse("test.yaml", []byte(doc))
	if err == nil {
		tb.Fatalf("Parse: no error, want one\n--- input:\n%s", doc)
	}
	if cfg != nil {
		tb.Errorf("Parse returned a config along with an error")
	}
	return asErrors(tb, err)
}

func asErrors(tb testing.TB, err error) Errors {
	tb.Helper()
	var es Errors
	if !errors.As(err, &es) {
		tb.Fatalf("error %v (%T) is not Errors", err, err)
	}
	return es
}

// find returns the error for key whose message contains msg.
func find(es Errors, key, msg string) *FieldError {
	for _, e := range es {
		if e.Key == key && strings.Contains(e.Msg, msg) {
			return e
		}
	}
	return nil
}

func wantErr(tb testing.TB, es Errors, key, msg string) *FieldError {
	tb.Helper()
	e := find(es, key, msg)
	if e == nil {
		tb.Fatalf("no error with key %q and message containing %q; got:\n%v", key, msg, es)
	}
	return e
}
