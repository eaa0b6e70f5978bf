package integration_test

import (
	"os"
	"os/exec"
	"testing"
)

// requireTool returns the path of an external program a test drives
// (promtool, prometheus, chromium). Like RequireDocker, it fails when CI is
// set and skips elsewhere, saying how to install it.
func requireTool(t testing.TB, pkg string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := names[0] + " not found; install it with `apt-get install -y " + pkg + "`"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg + " (set CI=1 to make this a failure)")
	return ""
}
