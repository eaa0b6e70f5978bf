package docker

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCreateRefusesSpecsAboveLimits: the policy maxima are enforced here too,
// whatever the caller validated, and a refused spec never reaches the engine.
func TestCreateRefusesSpecsAboveLimits(t *testing.T) {
	f := newFakeEngine(t)
	f.on("POST /containers/create", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"Id":"c1","Warnings":[]}`))
	})
	c, _ := f.client(t, Options{Limits: Limits{NanoCPUs: 2e9, MemoryBytes: 128 << 20, Pids: 100}})
	tests := []struct {
		name  string
		spoil func(*ContainerSpec)
		msg   string
	}{
		{"cpus", func(s *ContainerSpec) { s.NanoCPUs = 2e9 + 1 }, "CPU limit"},
		{"no cpu limit", func(s *ContainerSpec) { s.NanoCPUs = 0 }, "CPU limit"},
		{"memory", func(s *ContainerSpec) { s.MemoryBytes = 256 << 20 }, "memory limit"},
		{"pids", func(s *ContainerSpec) { s.PidsLimit = 101 }, "pids limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := validSpec()
			tt.spoil(&spec)
			_, err := c.Create(testCtx(t, 10*time.Second), spec)
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), "policy maximum") {
				t.Fatalf("Create = %v, want ErrRefused naming the %s and the policy maximum", err, tt.msg)
			}
		})
	}
	if n := len(f.requests("/containers/create")); n != 0 {
		t.Fatalf("%d refused creates reached the engine", n)
	}
	if _, err := c.Create(testCtx(t, 10*time.Second), validSpec()); err != nil {
		t.Fatalf("Create within the limits: %v", err)
	}
	// Limits follow a reload.
	c.SetLimits(Limits{NanoCPUs: 1e9, MemoryBytes: 64 << 20, Pids: 10})
	if _, err := c.Create(testCtx(t, 10*time.Second), validSpec()); !errors.Is(err, ErrRefused) {
		t.Fatalf("Create after tighter limits = %v, want ErrRefused", err)
	}
}

// TestCheckPolicyVolumesNamespaced: a container only mounts volumes of its
// own agent and challenge, so no spec can reach another challenge's volume
// or one berth does not own.
func TestCheckPolicyVolumesNamespaced(t *testing.T) {
	if got := VolumeName("a", "web", "data"); got != "berth_a_web_data" {
		t.Fatalf("VolumeName = %q", got)
	}
	for _, name := range []string{"data", "berth-data", "berth_a_other_data", "berth_b_web_data", "berth_a_web_", "berth_a_web"} {
		spec := validSpec()
		spec.Volumes = []VolumeMount{{Name: name, Target: "/data"}}
		if err := checkPolicy(spec); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "berth_a_web_") {
			t.Errorf("volume %q: checkPolicy = %v, want ErrRefused naming the namespace", name, err)
		}
	}
	if err := checkPolicy(validSpec()); err != nil {
		t.Fatalf("own volume refused: %v", err)
	}
}
