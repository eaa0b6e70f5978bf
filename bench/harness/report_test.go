package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMissedWhyExplainsAMissedCrashTargetFromTheRunsFigures(t *testing.T) {
	r := &results{CrashOutageMS: map[string]any{
		"berth": 534.1, "docker_restart_policy": 421.4, "docker_restart_policy_berth_flags": 688.2,
		"berth_breakdown_ms": map[string]any{"first_failed_request_to_started": 520.2, "backoff_delay": 103.0,
			"started_to_first_pass": 14.3, "first_pass_to_first_200": 5.2},
	}}
	r.Targets = evaluate(r)
	why := missedWhy(r)
	if len(why) != 1 {
		t.Fatalf("want one explanation for the missed crash target, got %q", why)
	}
	for _, want := range []string{"534.1", "421.4", "520.2", "103", "14.3", "5.2", "688.2"} {
		if !strings.Contains(why[0], want) {
			t.Errorf("explanation lacks %s: %s", want, why[0])
		}
	}
	if !strings.Contains(report(r), "## Why targets were missed") {
		t.Error("the report has no section for missed targets")
	}
}

func TestMissedWhyIsEmptyWhenTargetsAreMet(t *testing.T) {
	r := &results{CrashOutageMS: map[string]any{"berth": 400.0, "docker_restart_policy": 421.4}}
	r.Targets = evaluate(r)
	if why := missedWhy(r); len(why) != 0 {
		t.Fatalf("explanations for met targets: %q", why)
	}
	if strings.Contains(report(r), "## Why targets were missed") {
		t.Error("a missed-targets section with nothing missed")
	}
}

func TestRerenderMatchesTheReportOfTheRun(t *testing.T) {
	r := &results{Date: "2026-11-25T00:00:00Z", Quick: true, Machine: map[string]string{"nproc": "2"},
		CrashOutageMS: map[string]any{"berth": 434.0, "docker_restart_policy": 410.2,
			"samples": map[string][]float64{"berth": {434, 440}, "docker_restart_policy": {410.2, 409}}},
		SwapFailed: map[string]any{"berth_blue_green": int64(0), "stop_first_recreate": int64(3),
			"berth_blue_green_detail":    loadResult{Requests: 10},
			"stop_first_recreate_detail": loadResult{Requests: 12, Failed: 3, Errors: []string{"EOF"}}},
		HangRecovery: map[string]any{"berth": 4000.0, "autoheal_like": 180000.0},
		Scale:        []scalePoint{{Challenges: 10, AgentCPUPercent: 0.9}, {Challenges: 100, AgentCPUPercent: 1.4}},
	}
	r.Targets = evaluate(r)
	want := report(r)
	dir := t.TempDir()
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rerender(filepath.Join(dir, "results.json"), filepath.Join(dir, "B.md")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "B.md"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("re-rendered report differs:\n--- run\n%s\n--- re-rendered\n%s", want, got)
	}
}
