package docker

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckPolicy(t *testing.T) {
	base := func(vols ...VolumeMount) ContainerSpec {
		return ContainerSpec{Name: "berth-a-web-a", Image: "127.0.0.1:5000/web:1", Volumes: vols}
	}
	tests := []struct {
		name    string
		spec    ContainerSpec
		refused string // substring of the message; "" means allowed
	}{
		{"no volumes", base(), ""},
		{"named volume", base(VolumeMount{Name: "berth-a-web-data", Target: "/data"}), ""},
		{"read-only named volume", base(VolumeMount{Name: "cfg", Target: "/etc/app", ReadOnly: true}), ""},
		{"user-defined network", ContainerSpec{Name: "n", Image: "i", Network: "berth-a"}, ""},
		{"absolute host path", base(VolumeMount{Name: "/srv/data", Target: "/data"}), "/srv/data"},
		{"relative host path", base(VolumeMount{Name: "data/x", Target: "/data"}), "data/x"},
		{"windows path", base(VolumeMount{Name: `C:\data`, Target: "/data"}), "named volume"},
		{"dot path", base(VolumeMount{Name: "..", Target: "/data"}), "named volume"},
		{"empty volume name", base(VolumeMount{Name: "", Target: "/data"}), "named volume"},
		{"relative target", base(VolumeMount{Name: "v", Target: "data"}), "not absolute"},
		{"docker socket target", base(VolumeMount{Name: "v", Target: "/var/run/docker.sock"}), "Docker socket"},
		{"docker socket under /run", base(VolumeMount{Name: "v", Target: "/run/docker.sock"}), "Docker socket"},
		{"no name", ContainerSpec{Image: "i"}, "required"},
		{"no image", ContainerSpec{Name: "n"}, "required"},
		// SPEC §5.9: never the host network, whoever asks.
		{"host network", ContainerSpec{Name: "n", Image: "i", Network: "host"}, "host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkPolicy(tt.spec)
			if tt.refused == "" {
				if err != nil {
					t.Fatalf("checkPolicy refused an allowed spec: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("checkPolicy = %v, want ErrRefused", err)
			}
			if !strings.Contains(err.Error(), tt.refused) {
				t.Errorf("message %q does not mention %q", err, tt.refused)
			}
		})
	}
}
