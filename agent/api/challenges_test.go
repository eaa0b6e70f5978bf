package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"berth/agent/challenge"
	"berth/internal/testkit"
)

func TestAPIRestartChallenge(t *testing.T) {
	tests := []struct {
		name   string
		reply  error
		status int
		code   string
	}{
		{"accepted", nil, http.StatusAccepted, ""},
		{"refused by owner", fmt.Errorf("challenge is stopping"), http.StatusConflict, "conflict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAPIFixture(t, "s3cret")
			h := putChallenge(f.dir, "svc", "", challenge.HealthUnknown)
			got := make(chan string, 1)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			go func() {
				kind, _ := challenge.StandIn(ctx, h, tt.reply, challenge.SwapResult{}, nil)
				got <- kind
			}()
			resp, body := testkit.Do(t, http.MethodPost, f.srv.URL+"/v1/challenges/svc/restart", nil,
				http.Header{"Authorization": {"Bearer s3cret"}})
			select {
			case kind := <-got:
				if kind != challenge.RequestRestart {
					t.Fatalf("owner got %q, want a restart", kind)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("restart never reached the challenge's inbox")
			}
			if tt.code != "" {
				testkit.JSONError(t, resp, body, tt.status, tt.code)
				return
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
		})
	}

	t.Run("unknown challenge", func(t *testing.T) {
		f := newAPIFixture(t, "s3cret")
		resp, body := testkit.Do(t, http.MethodPost, f.srv.URL+"/v1/challenges/nope/restart", nil,
			http.Header{"Authorization": {"Bearer s3cret"}})
		testkit.JSONError(t, resp, body, http.StatusNotFound, "unknown_challenge")
	})

	t.Run("needs token", func(t *testing.T) {
		f := newAPIFixture(t, "s3cret")
		h := putChallenge(f.dir, "svc", "", challenge.HealthUnknown)
		resp, body := testkit.Do(t, http.MethodPost, f.srv.URL+"/v1/challenges/svc/restart", nil, nil)
		testkit.JSONError(t, resp, body, http.StatusUnauthorized, "unauthorized")
		if n := h.Pending(); n != 0 {
			t.Fatalf("unauthorized request queued %d messages", n)
		}
	})
}

// standIn answers the next request to h in place of its owner and reports
// what it was asked; the test ends it by its ctx.
func standIn(tb testing.TB, h *challenge.Handle, restartErr error, swap challenge.SwapResult, swapErr error) <-chan [2]string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tb.Cleanup(cancel)
	got := make(chan [2]string, 1)
	go func() {
		kind, version := challenge.StandIn(ctx, h, restartErr, swap, swapErr)
		got <- [2]string{kind, version}
	}()
	return got
}

func TestAPISwapChallenge(t *testing.T) {
	auth := http.Header{"Authorization": {"Bearer s3cret"}, "Content-Type": {"application/json"}}
	tests := []struct {
		name   string
		reply  error
		status int
		code   string
	}{
		{"accepted", nil, http.StatusAccepted, ""},
		{"swap running", challenge.ErrSwapRunning, http.StatusConflict, "conflict"},
		{"no container", challenge.ErrNoContainer, http.StatusConflict, "conflict"},
		{"bad version", fmt.Errorf("%w: no tag 9.9.9", challenge.ErrBadVersion), http.StatusBadRequest, "bad_version"},
		{"owner busy", challenge.ErrOwnerBusy, http.StatusServiceUnavailable, "busy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAPIFixture(t, "s3cret")
			h := putChallenge(f.dir, "svc", "", challenge.HealthHealthy)
			got := standIn(t, h, nil, challenge.SwapResult{ID: "sw-7", From: "1.0.0", To: "1.1.0"}, tt.reply)
			resp, body := testkit.Do(t, http.MethodPost, f.srv.URL+"/v1/challenges/svc/swap", strings.NewReader(`{"version":"1.1.0"}`), auth)
			if asked := <-got; asked != [2]string{challenge.RequestSwap, "1.1.0"} {
				t.Fatalf("owner was asked %v, want a swap to 1.1.0", asked)
			}
			if tt.code != "" {
				testkit.JSONError(t, resp, body, tt.status, tt.code)
				return
			}
			var rep map[string]string
			if resp.StatusCode != tt.status || json.Unmarshal(body, &rep) != nil {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if rep["swap_id"] != "sw-7" || rep["from"] != "1.0.0" || rep["to"] != "1.1.0" {
				t.Fatalf("answer %s, want {swap_id, from, to}", body)
			}
		})
	}

	t.Run("bad body never reaches the owner", func(t *testing.T) {
		f := newAPIFixture(t, "s3cret")
		h := putChallenge(f.dir, "svc", "", challenge.HealthHealthy)
		for _, body := range []string{`{}`, `{"version":"../x"}`, `{"version":"1.1.0","force":true}`} {
			resp, b := testkit.Do(t, http.MethodPost, f.srv.URL+"/v1/challenges/svc/swap", strings.NewReader(body), auth)
			testkit.JSONError(t, resp, b, http.StatusBadRequest, "bad_request")
		}
		if n := h.Pending(); n != 0 {
			t.Fatalf("refused bodies queued %d messages", n)
		}
	})
}

func TestAPIRollbackChallenge(t *testing.T) {
	auth := http.Header{"Authorization": {"Bearer s3cret"}}
	f := newAPIFixture(t, "s3cret")
	h := putChallenge(f.dir, "svc", "", challenge.HealthHealthy)
	got := standIn(t, h, nil, challenge.SwapResult{ID: "sw-8", From: "1.1.0", To: "1.0.0"}, nil)
	resp, body := testkit.Do(t, http.MethodPost, f.srv.URL+"/v1/challenges/svc/rollback", nil, auth)
	if asked := <-got; asked[0] != challenge.RequestRollback {
		t.Fatalf("owner was asked %v, want a rollback", asked)
	}
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(string(body), `"sw-8"`) {
		t.Fatalf("rollback: %d %s", resp.StatusCode, body)
	}

	got = standIn(t, h, nil, challenge.SwapResult{}, challenge.ErrNoPrevious)
	resp, body = testkit.Do(t, http.MethodPost, f.srv.URL+"/v1/challenges/svc/rollback", nil, auth)
	<-got
	if e := testkit.JSONError(t, resp, body, http.StatusConflict, "conflict"); !strings.HasPrefix(e.Error, "svc: ") {
		t.Errorf("conflict message %q does not name the challenge", e.Error)
	}
	resp, body = testkit.Do(t, http.MethodPost, f.srv.URL+"/v1/challenges/nope/rollback", nil, auth)
	testkit.JSONError(t, resp, body, http.StatusNotFound, "unknown_challenge")
}
