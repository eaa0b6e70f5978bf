package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

const pollInterval = 50 * time.Millisecond

// WaitFor polls cond every 50 ms until it reports true, and fails the test
// with what and cond's last error once timeout passes. An error from cond does
// not stop the polling: it is what the timeout message reports.
// Call it from the test goroutine.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var lastErr error
	for {
		ok, err := cond()
		if ok {
			return
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s (last error: %v)", timeout, what, lastErr)
		case <-tick.C:
		}
	}
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// GetJSON fetches url and, when out is not nil and the body is not empty,
// decodes it into out. It suits WaitFor conditions: nothing here fails the test.
func GetJSON(ctx context.Context, url string, out any) (status int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, fmt.Errorf("GET %s: reading body: %w", url, err)
	}
	if out != nil && len(body) > 0 {
		if err := json.Unmarshal(body, out); err != nil {
			return resp.StatusCode, fmt.Errorf("GET %s: status %d, body %.200q is not JSON: %w", url, resp.StatusCode, body, err)
		}
	}
	return resp.StatusCode, nil
}

// HTTPGetJSON is GetJSON with a 5 s timeout that fails the test when the
// request fails, or when a 2xx body does not decode. A non-2xx body that is not
// JSON is left undecoded, so error pages from a proxy can be asserted on status.
func HTTPGetJSON(t testing.TB, url string, out any) (status int) {
	t.Helper()
	status, err := GetJSON(context.Background(), url, out)
	switch {
	case err == nil:
	case status != 0 && (status < 200 || status > 299):
		// An error page that is not JSON: the status is the answer.
	default:
		t.Fatal(err)
	}
	return status
}

// HTTPPost posts body (as JSON when it starts with '{', else plain text) with
// a 5 s timeout and returns the status; a failed request fails the test.
// Admin endpoints of the test challenge take no body: pass "".
func HTTPPost(t testing.TB, url, body string) (status int) {
	t.Helper()
	ctype := "text/plain"
	if strings.HasPrefix(body, "{") {
		ctype = "application/json"
	}
	resp, err := httpClient.Post(url, ctype, strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
