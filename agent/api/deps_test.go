package api

import (
	"os/exec"
	"strings"
	"testing"
)

// The admin API reaches berth only through the interfaces it declares: the
// composition root, the store, the engine and the metrics stay outside.
func TestDependenciesStayOutside(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	forbidden := []string{"berth/statestore", "berth/docker", "berth/agent/dockerrt", "berth/agent/proxy", "berth/agent/alerts",
		"github.com/docker/", "github.com/moby/", "github.com/prometheus/", "github.com/dgraph-io/badger"}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "berth/agent" {
			t.Errorf("agent/api depends on berth/agent")
		}
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) {
				t.Errorf("agent/api depends on %s", pkg)
			}
		}
	}
}
