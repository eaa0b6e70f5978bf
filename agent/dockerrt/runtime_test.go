package dockerrt

import (
	"errors"
	"fmt"
	"testing"

	"berth/agent/challenge"
	"berth/configs"
	"berth/docker"
)

// Volumes a spec names land inside the challenge's own namespace, so no two
// challenges (or agents) can share one.
func TestContainerVolumesNamespaced(t *testing.T) {
	cfg := configs.Default()
	cfg.Agent.ID = "a1"
	r := &Runtime{agentID: "a1", network: cfg.Agent.Network}
	ch := cfg.Defaults.NewChallenge()
	ch.Name, ch.Image, ch.Version = "web", "x/web", "1"
	ch.Volumes = []configs.Volume{{Name: "data", Target: "/data"}, {Name: "berth-data", Target: "/other"}}
	spec := r.containerSpec(challenge.InstanceSpec{Challenge: ch, SpecHash: "hash", Ref: "x/web:1", Version: "1", Slot: "a"})
	if len(spec.Volumes) != 2 || spec.Volumes[0].Name != "berth_a1_web_data" || spec.Volumes[1].Name != "berth_a1_web_berth-data" {
		t.Fatalf("volumes = %+v, want berth_a1_web_data and berth_a1_web_berth-data", spec.Volumes)
	}
	if spec.Name != docker.ContainerName("a1", "web", "a") || spec.Labels[docker.LabelSpecHash] != "hash" ||
		spec.Labels[docker.LabelAgent] != "a1" || spec.Labels[docker.LabelSlot] != "a" || spec.Labels[docker.LabelVersion] != "1" {
		t.Fatalf("name %q labels %v", spec.Name, spec.Labels)
	}
	if !spec.Publish {
		t.Fatal("reach published: the port is not published")
	}
}

func TestInstanceAddressFollowsReach(t *testing.T) {
	ct := docker.Container{ID: "c1", HostPort: "32768", Port: 8080, NetworkIPs: map[string]string{"berth": "172.18.0.5"},
		Labels: map[string]string{docker.LabelChallenge: "web", docker.LabelSlot: "b", docker.LabelVersion: "2.0.0"}, Running: true}
	published := (&Runtime{agentID: "a1", network: "berth"}).instance(ct)
	if published.Address != "http://127.0.0.1:32768" || published.Challenge != "web" || published.Slot != "b" || published.Version != "2.0.0" {
		t.Fatalf("published instance %+v", published)
	}
	onNetwork := (&Runtime{agentID: "a1", network: "berth", reach: "network"}).instance(ct)
	if onNetwork.Address != "http://172.18.0.5:8080" {
		t.Fatalf("network address %q", onNetwork.Address)
	}
	ct.NetworkIPs = nil
	if got := (&Runtime{network: "berth", reach: "network"}).instance(ct).Address; got != "" {
		t.Fatalf("no address on the network, got %q", got)
	}
	ct.HostPort = ""
	if got := (&Runtime{network: "berth"}).instance(ct).Address; got != "" {
		t.Fatalf("nothing published, got %q", got)
	}
}

func TestWrapAddsLifecycleKinds(t *testing.T) {
	for _, tt := range []struct {
		engine, domain error
	}{
		{docker.ErrNotFound, challenge.ErrNotFound},
		{docker.ErrConflict, challenge.ErrConflict},
		{docker.ErrRefused, challenge.ErrRefused},
		{docker.ErrUnavailable, challenge.ErrUnavailable},
	} {
		err := wrap(fmt.Errorf("docker inspect x: %w", tt.engine))
		if !errors.Is(err, tt.domain) || !errors.Is(err, tt.engine) {
			t.Errorf("wrap(%v) = %v: not both kinds", tt.engine, err)
		}
		if err.Error() != "docker inspect x: "+tt.engine.Error() {
			t.Errorf("wrap changed the text: %q", err.Error())
		}
	}
	if wrap(nil) != nil {
		t.Fatal("wrap(nil) != nil")
	}
	plain := errors.New("plain")
	if wrap(plain) != plain {
		t.Fatal("an unclassified error was changed")
	}
}
