package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
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
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, "2026-11-25T22:18:"+s+"Z")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	seen := []outage{{Failed: at("39.590"), OK: at("41.830")}}
	bd := crashBreakdown(path, "crash", seen)
	if bd == nil || bd["restarts_seen"] != 1 || bd["backoff_delay"] != 208.0 || bd["first_failed_request_to_started"] != 1954.0 ||
		bd["started_to_first_pass"] != 266.0 || bd["first_pass_to_first_200"] != 20.0 {
		t.Fatalf("breakdown %v", bd)
	}
}
