package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"

	"berth/configs"
)

type swapBody struct {
	Version string `json:"version"`
	Wait    bool   `json:"wait"`
}

func postBody(body string) *http.Request {
	return httptest.NewRequest(http.MethodPost, "/v1/challenges/a/swap", strings.NewReader(body))
}

// leaks reports text an API error must never carry.
func leaks(msg string) string {
	for _, bad := range []string{"goroutine", ".go:", "/root/", "/home/", "/tmp/", "/work/", "configs.", "agent.", "api.", "struct {", "reflect"} {
		if strings.Contains(msg, bad) {
			return bad
		}
	}
	return ""
}

func TestDecodeJSONBody(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		limit  int64
		status int
		msg    string // substring of the message; "" with status 0 = accepted
	}{
		{"valid", `{"version":"1.2.0"}`, 1024, 0, ""},
		{"valid with spaces", " \n\t{\"version\": \"1.2.0\", \"wait\": true}\r\n", 1024, 0, ""},
		{"exactly at the limit", `{"version":"1"}`, 15, 0, ""},
		{"one byte over", `{"version":"1"}`, 14, 413, "larger than 14 bytes"},
		{"empty", ``, 1024, 400, "empty"},
		{"only spaces", "  \n ", 1024, 400, "empty"},
		{"array", `["1.2.0"]`, 1024, 400, "must be a JSON object"},
		{"string", `"1.2.0"`, 1024, 400, "must be a JSON object"},
		{"null", `null`, 1024, 400, "must be a JSON object"},
		{"unknown field", `{"version":"1","force":true}`, 1024, 400, `unknown field "force"`},
		{"wrong type", `{"version":1}`, 1024, 400, "version: expected a string, got number"},
		{"wrong type bool", `{"wait":"yes"}`, 1024, 400, "wait: expected true or false, got string"},
		{"syntax", `{"version":}`, 1024, 400, "malformed JSON at byte 12"},
		{"truncated", `{"version":"1"`, 1024, 400, "ends before the object does"},
		{"trailing object", `{"version":"1"}{"version":"2"}`, 1024, 400, "unexpected data after the JSON object at byte 15"},
		{"trailing garbage", `{"version":"1"} x`, 1024, 400, "unexpected data"},
		{"trailing brace", `{"version":"1"}}`, 1024, 400, "unexpected data"},
		{"repeated key", `{"version":"1","version":"2"}`, 1024, 400, `key "version" is set twice`},
		{"deep nesting", `{"version":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, 1 << 20, 400, ""},
		{"invalid utf-8 key", "{\"\xff\":1}", 1024, 400, "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dst swapBody
			e := decodeJSONBody(postBody(tt.body), &dst, tt.limit)
			if tt.status == 0 {
				if e != nil {
					t.Fatalf("refused a valid body: %d %s", e.Status, e.Message)
				}
				if dst.Version == "" {
					t.Errorf("decoded %+v", dst)
				}
				return
			}
			if e == nil {
				t.Fatalf("accepted %q into %+v", tt.body, dst)
			}
			wantCode := map[int]string{400: "bad_request", 413: "too_large"}[tt.status]
			if e.Status != tt.status || e.Code != wantCode {
				t.Errorf("got %d %s, want %d %s (%s)", e.Status, e.Code, tt.status, wantCode, e.Message)
			}
			if !strings.Contains(e.Message, tt.msg) {
				t.Errorf("message %q lacks %q", e.Message, tt.msg)
			}
			if bad := leaks(e.Message); bad != "" {
				t.Errorf("message %q leaks %q", e.Message, bad)
			}
		})
	}
}

func TestDecodeJSONBodyReadFailures(t *testing.T) {
	// Through the admin API's own MaxBytesReader, a body over its limit is 413.
	r := postBody(strings.Repeat(" ", 100) + `{"version":"1"}`)
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 50)
	if e := decodeJSONBody(r, &swapBody{}, 1024); e == nil || e.Status != 413 || e.Message != "request body is larger than 50 bytes" {
		t.Errorf("MaxBytesReader body: %+v", e)
	}
	// A client that fails mid-body is a bad request, not a server error.
	r = postBody("")
	r.Body = io.NopCloser(iotest.ErrReader(io.ErrClosedPipe))
	if e := decodeJSONBody(r, &swapBody{}, 1024); e == nil || e.Status != 400 || strings.Contains(e.Message, "pipe") {
		t.Errorf("failing body: %+v", e)
	}
	r = httptest.NewRequest(http.MethodPost, "/", nil)
	if e := decodeJSONBody(r, &swapBody{}, 1024); e == nil || e.Status != 400 {
		t.Errorf("no body: %+v", e)
	}
	// A programming error (not a pointer) is the server's fault.
	if e := decodeJSONBody(postBody(`{}`), swapBody{}, 1024); e == nil || e.Status != 500 || e.Code != "internal" {
		t.Errorf("non-pointer destination: %+v", e)
	}
}

// A challenge spec decoded as JSON names nested fields by their JSON path
// and never the Go types behind them.
func TestDecodeJSONBodyNamesNestedFields(t *testing.T) {
	tests := []struct{ body, msg string }{
		{`{"health":{"interval":"5s"}}`, "health.interval: expected a whole number, got string"},
		{`{"resources":{"memory":"lots"}}`, `invalid value: "lots" is not a size`},
		{`{"volumes":[{"name":"v","target":"/d","mode":"rw"}]}`, `unknown field "mode"`},
		{`{"env":{"A":1}}`, "env: expected a string, got number"},
		{`{"security":{"cap_add":["SYS_ADMIN"]}}`, `unknown field "cap_add"`},
		{`{"privileged":true}`, `unknown field "privileged"`},
		{`{"port":70000000000000000000}`, "port: expected a whole number, got number"},
	}
	for _, tt := range tests {
		var c configs.Challenge
		e := decodeJSONBody(postBody(tt.body), &c, maxJSONBody)
		if e == nil || e.Status != 400 || !strings.Contains(e.Message, tt.msg) {
			t.Errorf("%s: got %+v, want a 400 containing %q", tt.body, e, tt.msg)
			continue
		}
		if bad := leaks(e.Message); bad != "" {
			t.Errorf("%s: message %q leaks %q", tt.body, e.Message, bad)
		}
	}
}

func TestRepeatedKey(t *testing.T) {
	tests := []struct {
		body, key string
	}{
		{`{"a":1,"b":2}`, ""},
		{`{"a":{"a":1},"b":[{"a":1},{"a":2}]}`, ""},
		{`{"a":[1,2],"a":3}`, "a"},
		{`{"a":{"x":1,"x":2}}`, "x"},
		{`{"l":[{"k":1,"k":2}]}`, "k"},
		{`{"a":{},"b":[],"a":null}`, "a"},
		{`{"env":{"A":"1","a":"2"}}`, ""}, // distinct keys
	}
	for _, tt := range tests {
		if got, _ := repeatedKey([]byte(tt.body)); got != tt.key {
			t.Errorf("repeatedKey(%s) = %q, want %q", tt.body, got, tt.key)
		}
	}
}

func TestValidateChallengeName(t *testing.T) {
	for _, ok := range []string{"a", "term-challenge", "0x", strings.Repeat("a", 63)} {
		if e := validateChallengeName(ok); e != nil {
			t.Errorf("validateChallengeName(%q) = %v", ok, e)
		}
	}
	for _, bad := range []string{"", "A", "-a", "a_b", "../etc", "a/b", "a b", "é", strings.Repeat("a", 64), strings.Repeat("x", 5000), "a\x00"} {
		e := validateChallengeName(bad)
		if e == nil || e.Status != 400 || e.Code != "bad_request" {
			t.Errorf("validateChallengeName(%.20q) = %+v, want 400 bad_request", bad, e)
			continue
		}
		if len(e.Message) > 300 {
			t.Errorf("message repeats %d bytes of input", len(e.Message))
		}
	}
}

func TestValidateVersion(t *testing.T) {
	for _, ok := range []string{"1.4.2", "v1.4.2", "latest", "^1.4", "~1.4.2", ">=1.2 <2"} {
		if e := validateVersion(ok); e != nil {
			t.Errorf("validateVersion(%q) = %v", ok, e)
		}
	}
	for _, bad := range []string{"", " ", ">>1", "1.0.0+build", "a/b", "1.0 ; rm -rf", strings.Repeat("9", 5000)} {
		e := validateVersion(bad)
		if e == nil || e.Status != 400 || !strings.HasPrefix(e.Message, "version: ") {
			t.Errorf("validateVersion(%.20q) = %+v, want 400 naming version", bad, e)
			continue
		}
		if len(e.Message) > 500 {
			t.Errorf("message repeats %d bytes of input", len(e.Message))
		}
	}
}

func FuzzDecodeJSONBody(f *testing.F) {
	for _, s := range []string{
		`{"version":"1.2.0"}`, `{"version":1}`, `{"version":"1"}{}`, `{"a":1,"a":2}`, `[]`, ``, `{"version":"\ud800"}`,
		`{"name":"a","image":"x/a","version":"1","env":{"K":"v"},"volumes":[{"name":"v","target":"/d"}],"resources":{"memory":"64m"}}`,
		`{"health":{"interval":5000000000}}`, `{"resources":{"memory":"1e400g"}}`, `{"port":-1.5}`,
	} {
		f.Add([]byte(s), uint16(4096), false)
		f.Add([]byte(s), uint16(4096), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, limit uint16, spec bool) {
		var dst any = &swapBody{}
		if spec {
			dst = &configs.Challenge{}
		}
		r := httptest.NewRequest(http.MethodPost, "/v1/x", bytes.NewReader(body))
		e := decodeJSONBody(r, dst, int64(limit))
		if e == nil {
			if len(body) > int(limit) {
				t.Fatalf("accepted %d bytes over a limit of %d", len(body), limit)
			}
			if !json.Valid(body) {
				t.Fatalf("accepted invalid JSON %q", body)
			}
			return
		}
		switch {
		case e.Status == 413 && e.Code == "too_large" && len(body) > int(limit):
		case e.Status == 400 && e.Code == "bad_request":
		default:
			t.Fatalf("got %d %s %q for %q", e.Status, e.Code, e.Message, body)
		}
		if e.Message == "" || len(e.Message) > 600 {
			t.Fatalf("message of %d bytes for %q", len(e.Message), body)
		}
		if bad := leaks(e.Message); bad != "" {
			t.Fatalf("message %q leaks %q", e.Message, bad)
		}
	})
}
