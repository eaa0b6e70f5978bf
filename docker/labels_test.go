package docker

import (
	"maps"
	"testing"
)

func TestOwnerLabels(t *testing.T) {
	got := OwnerLabels("a1")
	want := map[string]string{"io.berth.managed": "true", "io.berth.agent": "a1"}
	if !maps.Equal(got, want) {
		t.Fatalf("OwnerLabels(a1) = %v, want %v", got, want)
	}
	// Callers add to the map; each call must return a fresh one.
	got[LabelChallenge] = "web"
	if _, ok := OwnerLabels("a1")[LabelChallenge]; ok {
		t.Fatal("OwnerLabels returns a shared map")
	}
}

func TestContainerName(t *testing.T) {
	if got := ContainerName("a1", "web", "b"); got != "berth-a1-web-b" {
		t.Fatalf("ContainerName = %q", got)
	}
	names := map[string]bool{}
	for _, agent := range []string{"a1", "a2"} {
		for _, ch := range []string{"web", "api"} {
			for _, slot := range []string{"a", "b"} {
				names[ContainerName(agent, ch, slot)] = true
			}
		}
	}
	if len(names) != 8 {
		t.Fatalf("names are not distinct per agent, challenge and slot: %v", names)
	}
	if ContainerName("a1", "web", "a") != ContainerName("a1", "web", "a") {
		t.Fatal("ContainerName is not deterministic")
	}
}
