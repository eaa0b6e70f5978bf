package configs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// SpecHash identifies the spec: the first 16 hex digits of the SHA-256 of its
// canonical JSON. Equal specs hash equal across runs and processes; changing any
// field changes the hash. Empty and nil maps or lists hash the same.
func (c Challenge) SpecHash() string {
	c = c.canonical()
	// encoding/json sorts map keys and keeps struct order, which makes it canonical.
	b, err := json.Marshal(c)
	if err != nil {
		// Only non-finite floats fail, and validation refuses those; still hash something stable.
		b = fmt.Appendf(nil, "%#v", c)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

func (c Challenge) canonical() Challenge {
	c = c.Clone()
	c.Restart.AlertAfter = 0   // alerting only; omitted from the JSON when zero
	c.Update.PruneImages = nil // cleanup only; omitted from the JSON when nil
	c.Standby = false          // a second container, not a different one
	// Snapshot settings steer berth only; omitted from the JSON when zero.
	c.State.SnapshotInterval, c.State.Keep, c.State.Restore, c.State.MaxBytes = 0, 0, nil, 0
	if len(c.Env) == 0 {
		c.Env = nil
	}
	if len(c.SecretEnvFiles) == 0 {
		c.SecretEnvFiles = nil
	}
	if len(c.Volumes) == 0 {
		c.Volumes = nil
	}
	if len(c.Security.CapDrop) == 0 {
		c.Security.CapDrop = nil
	}
	if c.Replicas == 1 {
		c.Replicas = 0 // the default, spelled out
	}
	if len(c.Placement) == 0 {
		c.Placement = nil
	}
	if len(c.Security.Tmpfs) == 0 {
		c.Security.Tmpfs = nil
	}
	return c
}
