package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type fixture struct {
	srv   *httptest.Server
	exits chan int
	ooms  chan struct{}
}

func newFixture(t *testing.T, healthFail bool) *fixture {
	t.Helper()
	f := &fixture{exits: make(chan int, 1), ooms: make(chan struct{}, 1)}
	a := &app{
		version:      "1.2.3",
		healthStatus: "ok",
		unhealthy:    healthFail,
		exit:         func(code int) { f.exits <- code },
		oom:          func() { f.ooms <- struct{}{} },
	}
	f.srv = httptest.NewServer(a.handler())
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) do(t *testing.T, method, path, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	return resp.StatusCode, resp.Header, out
}

func TestHealthToggles(t *testing.T) {
	f := newFixture(t, false)
	code, hdr, body := f.do(t, "GET", "/health", "")
	if code != 200 || body["status"] != "ok" || body["version"] != "1.2.3" {
		t.Fatalf("healthy: got %d %v", code, body)
	}
	if got := hdr.Get("X-Challenge-Version"); got != "1.2.3" {
		t.Fatalf("X-Challenge-Version = %q", got)
	}
	f.do(t, "POST", "/admin/unhealthy", "")
	if code, _, body = f.do(t, "GET", "/health", ""); code != 503 || body["status"] != "unhealthy" {
		t.Fatalf("unhealthy: got %d %v", code, body)
	}
	f.do(t, "POST", "/admin/healthy", "")
	if code, _, _ = f.do(t, "GET", "/health", ""); code != 200 {
		t.Fatalf("healthy again: got %d", code)
	}
	if code, _, _ = f.do(t, "GET", "/admin/crash", ""); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET on admin endpoint: got %d, want 405", code)
	}
}

func TestHealthFailFromStart(t *testing.T) {
	f := newFixture(t, true)
	if code, _, _ := f.do(t, "GET", "/health", ""); code != 503 {
		t.Fatalf("got %d, want 503", code)
	}
}

func TestHangBlocksHealthUntilClientGivesUp(t *testing.T) {
	f := newFixture(t, false)
	f.do(t, "POST", "/admin/hang", "")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/health", nil)
	if resp, err := f.srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("hung health answered %d", resp.StatusCode)
	}
	if code, _, _ := f.do(t, "GET", "/version", ""); code != 200 {
		t.Fatalf("other endpoints must still answer, got %d", code)
	}
}

func TestWork(t *testing.T) {
	f := newFixture(t, false)
	code, _, body := f.do(t, "GET", "/work?ms=20", "")
	if code != 200 || body["slept_ms"] != float64(20) || body["version"] != "1.2.3" {
		t.Fatalf("got %d %v", code, body)
	}
	if code, _, _ = f.do(t, "GET", "/work?ms=x", ""); code != 400 {
		t.Fatalf("bad ms: got %d", code)
	}
}

func TestEcho(t *testing.T) {
	f := newFixture(t, false)
	code, _, body := f.do(t, "PUT", "/echo/a/b?x=1&y=2", "payload")
	if code != 200 || body["method"] != "PUT" || body["path"] != "/echo/a/b" ||
		body["query"] != "x=1&y=2" || body["body"] != "payload" {
		t.Fatalf("got %d %v", code, body)
	}
	if _, ok := body["headers"].(map[string]any); !ok {
		t.Fatalf("headers missing: %v", body)
	}
}

func TestStateRoundTrip(t *testing.T) {
	f := newFixture(t, false)
	if code, _, body := f.do(t, "POST", "/state", `{"n":42}`); code != 200 || body["bytes"] != float64(8) {
		t.Fatalf("post: got %d %v", code, body)
	}
	resp, err := f.srv.Client().Get(f.srv.URL + "/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if string(got) != `{"n":42}` {
		t.Fatalf("state = %q", got)
	}
}

func TestCrashAnswersThenExits(t *testing.T) {
	f := newFixture(t, false)
	code, _, body := f.do(t, "POST", "/admin/crash?code=3", "")
	if code != 200 || body["code"] != float64(3) {
		t.Fatalf("got %d %v", code, body)
	}
	select {
	case got := <-f.exits:
		if got != 3 {
			t.Fatalf("exit code %d, want 3", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no exit after /admin/crash")
	}
	if code, _, _ = f.do(t, "POST", "/admin/crash?code=300", ""); code != 400 {
		t.Fatalf("out-of-range code: got %d", code)
	}
}

func TestOOMEndpoint(t *testing.T) {
	f := newFixture(t, false)
	f.do(t, "POST", "/admin/oom", "")
	select {
	case <-f.ooms:
	case <-time.After(5 * time.Second):
		t.Fatal("oom not triggered")
	}
}

func TestLoadConfig(t *testing.T) {
	env := map[string]string{"PORT": "9000", "CRASH_AFTER_MS": "250", "CRASH_EXIT_CODE": "7", "HEALTH_FAIL": "1"}
	c, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.port != "9000" || c.version != "0.0.0" || c.crashAfter != 250*time.Millisecond ||
		c.crashCode != 7 || !c.healthFail || c.healthStatus != "ok" {
		t.Fatalf("config = %+v", c)
	}
	if _, err := loadConfig(func(k string) string { return map[string]string{"HANG_AFTER_MS": "soon"}[k] }); err == nil {
		t.Fatal("want an error for a non-numeric knob")
	}
}
