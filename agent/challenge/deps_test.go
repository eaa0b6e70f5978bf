package challenge

import (
	"os/exec"
	"strings"
	"testing"
)

// The lifecycle depends only on the interfaces it declares: none of the
// runtime's, the store's, the metrics' or the logger's libraries may reach
// it, directly or through another berth package.
func TestDependenciesStayOutside(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	forbidden := []string{"berth/docker", "berth/statestore", "berth/agent/", "github.com/docker/", "github.com/moby/",
		"github.com/prometheus/", "github.com/dgraph-io/badger", "github.com/rs/zerolog"}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) && pkg != "berth/agent/challenge" {
				t.Errorf("agent/challenge depends on %s", pkg)
			}
		}
	}
}
