package testkit

import (
	"os/exec"
	"strings"
	"testing"
)

// ForbidDeps fails the test if the package in the current directory
// depends, directly or not, on any of forbidden: a path ending in "/"
// forbids everything under it, any other path that package alone.
func ForbidDeps(t *testing.T, forbidden ...string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	self, err := exec.Command("go", "list", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	me := strings.TrimSpace(string(self))
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			under := strings.HasSuffix(f, "/") && strings.HasPrefix(pkg, f)
			if pkg != me && (pkg == f || under) {
				t.Errorf("%s depends on %s", me, pkg)
			}
		}
	}
}
