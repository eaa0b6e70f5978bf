package agent

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"berth/agent/challenge"
)

// putChallenge registers a handle whose status routes to upstream.
func putChallenge(dir *challenge.Directory, name, upstream string, health challenge.Health) *challenge.Handle {
	h := challenge.NewHandle(name)
	h.SetStatus(&challenge.Status{Name: name, State: challenge.Running, Health: health, Upstream: upstream})
	dir.Put(h)
	return h
}

func doRequest(tb testing.TB, method, target string, body io.Reader, header http.Header) (*http.Response, []byte) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		tb.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", method, target, err)
	}
	return resp, b
}

// errorBody is the admin API's {"error","code"} answer.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// checkJSONError asserts an {"error","code"} body with the given status.
func checkJSONError(tb testing.TB, resp *http.Response, body []byte, status int, code string) errorBody {
	tb.Helper()
	if resp.StatusCode != status {
		tb.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Fatalf("Content-Type %q, want application/json", ct)
	}
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		tb.Fatalf("error body is not JSON: %v: %s", err, body)
	}
	msg, _ := raw["error"].(string)
	got, _ := raw["code"].(string)
	if msg == "" || got == "" {
		tb.Fatalf("error body lacks error or code: %s", body)
	}
	if code != "" && got != code {
		tb.Fatalf("code %q, want %q", got, code)
	}
	return errorBody{Error: msg, Code: got}
}

// newTestServer serves h until the test ends.
func newTestServer(tb testing.TB, h http.Handler) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv
}
