package configs

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestAutoUpdateFromYAML(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  AutoUpdate
	}{
		{"false", AutoOff}, {"true", AutoSwap}, {"notify", AutoNotify}, {"Notify", AutoNotify}, {"swap", AutoSwap}, {"off", AutoOff}, {"~", AutoOff},
	} {
		c, err := ParseChallenge("c.yaml", []byte("name: a\nimage: x/a\nversion: ^1.0.0\nupdate:\n  auto: "+tc.value+"\n"), BuiltinDefaults())
		if err != nil {
			t.Fatalf("auto: %s: %v", tc.value, err)
		}
		if c.Update.Auto != tc.want {
			t.Errorf("auto: %s = %q, want %q", tc.value, c.Update.Auto, tc.want)
		}
	}
	_, err := ParseChallenge("c.yaml", []byte("name: a\nimage: x/a\nversion: ^1.0.0\nupdate:\n  auto: sometimes\n"), BuiltinDefaults())
	if err == nil || !strings.Contains(err.Error(), "c.yaml:5: update.auto:") || !strings.Contains(err.Error(), "notify") {
		t.Errorf("auto: sometimes: %v", err)
	}
}

// Specs stored as JSON before notify existed hold booleans; they must read
// back, and the JSON of off and swap must stay the booleans it was, or every
// running challenge's spec hash would change.
func TestAutoUpdateJSONKeepsBooleans(t *testing.T) {
	for _, tc := range []struct {
		json string
		want AutoUpdate
	}{{"false", AutoOff}, {"true", AutoSwap}, {`"notify"`, AutoNotify}} {
		var u Update
		if err := json.Unmarshal([]byte(`{"auto":`+tc.json+`}`), &u); err != nil || u.Auto != tc.want {
			t.Fatalf("auto %s read as %q, %v", tc.json, u.Auto, err)
		}
		out, err := json.Marshal(u.Auto)
		if err != nil || string(out) != tc.json {
			t.Errorf("auto %q written as %s, %v; want %s", tc.want, out, err, tc.json)
		}
	}
	var u Update
	if err := json.Unmarshal([]byte(`{"auto":"weekly"}`), &u); err == nil || !strings.Contains(err.Error(), "weekly") {
		t.Errorf("auto weekly: %v", err)
	}
}

func TestPruneImagesDefaultsOnAndLeavesTheHash(t *testing.T) {
	base := hashBase()
	if !base.Update.Prunes() {
		t.Fatal("prune_images is off by default")
	}
	c, err := ParseChallenge("c.yaml", []byte("name: a\nimage: x/a\nversion: 1.0.0\nupdate:\n  prune_images: false\n"), BuiltinDefaults())
	if err != nil || c.Update.Prunes() {
		t.Fatalf("prune_images: false read as prunes=%v, %v", c.Update.Prunes(), err)
	}
	off := hashBase()
	off.Update.PruneImages = new(false)
	unset := hashBase()
	unset.Update.PruneImages = nil
	if off.SpecHash() != base.SpecHash() || unset.SpecHash() != base.SpecHash() {
		t.Error("prune_images changes the spec hash")
	}
	// A spec stored before prune_images existed reads back with pruning on.
	var old Challenge
	if err := json.Unmarshal([]byte(`{"name":"a","update":{"auto":false}}`), &old); err != nil || !old.Update.Prunes() {
		t.Errorf("old stored spec: prunes=%v, %v", old.Update.Prunes(), err)
	}
	if _, err := ParseChallenge("c.yaml", []byte("name: a\nimage: x/a\nversion: 1.0.0\nupdate:\n  prune_images: maybe\n"), BuiltinDefaults()); err == nil ||
		!strings.Contains(err.Error(), "update.prune_images") {
		t.Errorf("prune_images: maybe: %v", err)
	}
}
