package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCrashBreakdown(t *testing.T) {
	log := `{"level":"info","challenge":"crash","event":"started","time":"2026-11-25T22:18:38.925Z"}
{"level":"info","challenge":"crash","event":"health_changed","to":"healthy","time":"2026-11-25T22:18:39.183Z"}
{"level":"info","challenge":"crash","event":"health_changed","to":"unhealthy","time":"2026-11-25T22:18:39.601Z"}
{"level":"warn","challenge":"crash","event":"exited","time":"2026-11-25T22:18:39.602Z"}
{"level":"warn","challenge":"crash","event":"restarting","delay_ms":208,"time":"2026-11-25T22:18:39.602Z"}
{"level":"warn","challenge":"other","event":"exited","time":"2026-11-25T22:18:40.000Z"}
{"level":"info","challenge":"crash","event":"started","time":"2026-11-25T22:18:41.544Z"}
{"level":"info","challenge":"crash","event":"health_changed","to":"healthy","time":"2026-11-25T22:18:41.810Z"}
`
	path := filepath.Join(t.TempDir(), "berth.log")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	bd := crashBreakdown(path, "crash")
	if bd == nil || bd["restarts_seen"] != 1 || bd["backoff_delay"] != 208.0 || bd["exit_seen_to_started"] != 1942.0 || bd["started_to_first_pass"] != 266.0 {
		t.Fatalf("breakdown %v", bd)
	}
}
