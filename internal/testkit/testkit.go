// Package testkit holds the helpers berth's HTTP and output tests share:
// a bounded request, the admin API's JSON error check, a test server, and
// hostile terminal output with its check. Only tests import it.
package testkit

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// Do sends one request, bounded to 30 s, and returns the answer with its
// whole body.
func Do(tb testing.TB, method, target string, body io.Reader, header http.Header) (*http.Response, []byte) {
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

// ErrorBody is berth's {"error","code"} answer.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// JSONError asserts an {"error","code"} body with the given status and,
// unless code is empty, that code.
func JSONError(tb testing.TB, resp *http.Response, body []byte, status int, code string) ErrorBody {
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
	return ErrorBody{Error: msg, Code: got}
}

// Server serves h until the test ends.
func Server(tb testing.TB, h http.Handler) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv
}

// HostileOutput is what a challenge might print: a window-title OSC, a
// screen clear, colours, an 8-bit CSI, a carriage return that overwrites
// the line, a bell and a bidi override.
const HostileOutput = "\x1b]0;owned\x07\x1b[2Jfirst line \x1b[31mred\x1b[0m\r\nsecond\tline\x07 \u009b31m\u202eevil\r\n"

// Unprintable names the first byte or rune of s a terminal would act on;
// newlines and tabs are allowed when multiline.
func Unprintable(s string, multiline bool) (rune, bool) {
	if !utf8.ValidString(s) {
		return utf8.RuneError, true
	}
	for _, r := range s {
		switch {
		case multiline && (r == '\n' || r == '\t'):
		case unicode.IsControl(r), r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			return r, true
		}
	}
	return 0, false
}
