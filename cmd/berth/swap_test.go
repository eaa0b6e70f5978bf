package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

type swapStep struct{ version, phase string }

// swapAPI answers POST .../swap with swap s1 from 1.0 to 2.0, then each
// GET of the challenge with the next step of steps (the last one repeats).
func swapAPI(t *testing.T, steps []swapStep) (url string, gets func() int, posts func() int) {
	t.Helper()
	var mu sync.Mutex
	var nGet, nPost int
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/challenges/web/swap", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		nPost++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"swap_id": "s1", "from": "1.0", "to": "2.0"})
	})
	mux.HandleFunc("GET /v1/challenges/web", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		st := steps[min(nGet, len(steps)-1)]
		nGet++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"name": "web", "version": st.version,
			"swap": map[string]string{"id": "s1", "phase": st.phase, "from": "1.0", "to": "2.0", "error": "new version never healthy"}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	count := func(n *int) func() int {
		return func() int { mu.Lock(); defer mu.Unlock(); return *n }
	}
	return srv.URL, count(&nGet), count(&nPost)
}

// TestSwapWait: --wait returns 0 once the new version serves (draining with
// the target version), --drain once the swap completes, 1 on a rollback.
func TestSwapWait(t *testing.T) {
	cutOver := []swapStep{{"1.0", "pulling"}, {"1.0", "cutting_over"}, {"1.0", "draining"}, {"2.0", "draining"}, {"2.0", "completed"}}
	tests := []struct {
		name     string
		steps    []swapStep
		flags    []string
		code     int
		gets     int    // GETs until the command returned
		last     string // last stdout line
		wantLine string // stderr substring
	}{
		{"serves while draining", cutOver, nil, exitOK, 4, "web: 2.0 serves; 1.0 drains (--drain waits for it)", ""},
		{"drain", cutOver, []string{"--drain"}, exitOK, 5, "web: completed", ""},
		{"rolled back", []swapStep{{"1.0", "starting"}, {"1.0", "rolling_back"}, {"1.0", "rolled_back"}}, nil, exitFailed, 3, "web: rolled_back",
			"swap s1 failed: new version never healthy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, gets, _ := swapAPI(t, tt.steps)
			code, stdout, stderr := runCLI(t, append([]string{"swap", "web", "2.0", "--wait", "--addr", addr}, tt.flags...)...)
			if code != tt.code || !strings.Contains(stderr, tt.wantLine) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.wantLine)
			}
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			if lines[len(lines)-1] != tt.last {
				t.Errorf("last line %q, want %q:\n%s", lines[len(lines)-1], tt.last, stdout)
			}
			if !strings.HasPrefix(stdout, "web: swap s1 started: 1.0 → 2.0\n") {
				t.Errorf("stdout %q lacks the start line", stdout)
			}
			if gets() != tt.gets {
				t.Errorf("%d GETs, want %d", gets(), tt.gets)
			}
		})
	}
	t.Run("drain without wait", func(t *testing.T) {
		addr, _, posts := swapAPI(t, cutOver)
		if code, _, _ := runCLI(t, "swap", "web", "2.0", "--drain", "--addr", addr); code != exitInvalid || posts() != 0 {
			t.Errorf("exit %d after %d POSTs; want 2 and none", code, posts())
		}
	})
}
