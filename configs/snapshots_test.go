package configs

import (
	"strings"
	"testing"
	"time"
)

func TestStateSnapshotKeys(t *testing.T) {
	c, err := ParseChallenge("c.yaml", []byte(`name: a
image: x/a
version: 1.0.0
state: {export: /state, import: /state, snapshot_interval: 1s, keep: 3, restore: false, max_bytes: 1m}
`), BuiltinDefaults())
	if err != nil {
		t.Fatal(err)
	}
	s := c.State
	if s.SnapshotInterval != time.Second || s.Kept() != 3 || s.Restores() || s.ExportLimit() != 1<<20 {
		t.Errorf("state = %+v (kept %d, restores %v, limit %d)", s, s.Kept(), s.Restores(), s.ExportLimit())
	}
	d := State{Import: "/s"}
	if d.Kept() != DefaultSnapshotsKept || !d.Restores() || d.ExportLimit() != int64(MaxSnapshotBytes) {
		t.Errorf("defaults: kept %d restores %v limit %d", d.Kept(), d.Restores(), d.ExportLimit())
	}
	if (State{}).Restores() {
		t.Error("restores without an import path")
	}
}

func TestStateSnapshotKeysValidated(t *testing.T) {
	for _, tc := range []struct{ state, key, msg string }{
		{"{export: /s, snapshot_interval: -1s}", "state.snapshot_interval", "negative"},
		{"{export: /s, snapshot_interval: 10ms}", "state.snapshot_interval", "minimum"},
		{"{snapshot_interval: 1s}", "state.snapshot_interval", "state.export"},
		{"{export: /s, keep: 1000}", "state.keep", "between 1 and 100"},
		{"{export: /s, max_bytes: 1g}", "state.max_bytes", "between 1 and 16m"},
		{"{export: /s, restore: sometimes}", "state.restore", "not a boolean"},
	} {
		_, err := ParseChallenge("c.yaml", []byte("name: a\nimage: x/a\nversion: 1.0.0\nstate: "+tc.state+"\n"), BuiltinDefaults())
		if err == nil || !strings.Contains(err.Error(), "c.yaml:4: "+tc.key+": ") || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("state %s: %v, want %s: …%s…", tc.state, err, tc.key, tc.msg)
		}
	}
}

// Snapshot settings steer berth only: they must not recreate a container.
func TestSpecHashIgnoresSnapshotSettings(t *testing.T) {
	base := hashBase()
	c := hashBase()
	c.State.SnapshotInterval, c.State.Keep, c.State.Restore, c.State.MaxBytes = time.Second, 9, new(false), MiB
	if c.SpecHash() != base.SpecHash() {
		t.Error("snapshot settings change the spec hash")
	}
}

// standby adds a container and changes none: it must not recreate one.
func TestSpecHashIgnoresStandby(t *testing.T) {
	c := hashBase()
	c.Standby = true
	if c.SpecHash() != hashBase().SpecHash() {
		t.Error("standby changes the spec hash")
	}
}

func TestRetryMethodsValidated(t *testing.T) {
	_, err := Parse("b.yaml", []byte("agent:\n  proxy:\n    retry_methods: [GET, post]\n"))
	if err == nil || !strings.Contains(err.Error(), "agent.proxy.retry_methods[1]") || !strings.Contains(err.Error(), "HTTP method") {
		t.Errorf("lowercase method: %v", err)
	}
}
