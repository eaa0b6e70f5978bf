package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// hostile is container output a challenge controls: terminal escapes
// (window title, screen clear, colours, 8-bit CSI), a carriage return, a
// bell and a bidi override.
const hostile = "\x1b]0;owned\x07\x1b[2Jfirst line \x1b[31mred\x1b[0m\r\nsecond\tline\x07 \u009b31m\u202eevil"

func fakeAPI(tb testing.TB) string {
	tb.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		_ = json.NewEncoder(w).Encode(map[string]any{"seq": 1, "type": "exited", "challenge": "web",
			"message": "container exited with code 1; last output: " + hostile, "error": hostile})
	})
	web := map[string]any{"name": "web", "version": "1", "state": "failed", "last_error": hostile}
	mux.HandleFunc("GET /v1/challenges/web", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(web)
	})
	mux.HandleFunc("GET /v1/challenges", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode([]any{web})
	})
	mux.HandleFunc("GET /v1/challenges/web/logs", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, hostile+"\n")
	})
	mux.HandleFunc("POST /v1/challenges/web/restart", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "cannot: " + hostile, "code": "conflict"})
	})
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	return srv.URL
}

// terminalControl names the first rune in s a terminal would act on
// (newlines and tabs are text).
func terminalControl(s string) (rune, bool) {
	if !utf8.ValidString(s) {
		return utf8.RuneError, true
	}
	for _, r := range s {
		if r == '\n' || r == '\t' {
			continue
		}
		if unicode.IsControl(r) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			return r, true
		}
	}
	return 0, false
}

func TestCLIPrintsNoTerminalControls(t *testing.T) {
	addr := fakeAPI(t)
	for _, args := range [][]string{
		{"events", "--addr", addr},
		{"logs", "web", "--addr", addr},
		{"restart", "web", "--addr", addr},
		{"status", "-o", "wide", "--addr", addr},
		{"status", "web", "-o", "wide", "--addr", addr},
	} {
		t.Run(args[0], func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			run(args, &stdout, &stderr)
			for name, out := range map[string]string{"stdout": stdout.String(), "stderr": stderr.String()} {
				if r, bad := terminalControl(out); bad {
					t.Errorf("%s carries %U: %q", name, r, out)
				}
			}
			if all := stdout.String() + stderr.String(); !strings.Contains(all, "first line red") {
				t.Errorf("output lost the readable text: %q", all)
			}
		})
	}
}

// TestEventsOneRowPerEvent: an event quoting multi-line output is one row,
// its line breaks and tabs shown as \n and \t.
func TestEventsOneRowPerEvent(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"events", "--addr", fakeAPI(t)}, &stdout, &stderr); code != exitOK {
		t.Fatalf("events: exit %d, stderr %q", code, stderr.String())
	}
	out := stdout.String()
	if n := strings.Count(out, "\n"); n != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("one event printed as %d rows: %q", n, out)
	}
	if want := `last output: first line red\nsecond\tline`; !strings.Contains(out, want) {
		t.Errorf("row %q lacks %s", out, want)
	}
	if strings.Contains(out, "\t") {
		t.Errorf("row %q keeps a raw tab", out)
	}
}

// TestJSONOutputsPrintNoTerminalControls: -o json and inspect escape what
// encoding/json leaves raw (C1 controls, bidi overrides) and still decode
// to the text the API sent.
func TestJSONOutputsPrintNoTerminalControls(t *testing.T) {
	addr := fakeAPI(t)
	for _, tt := range []struct {
		args  []string
		field string
	}{
		{[]string{"inspect", "web"}, "last_error"},
		{[]string{"status", "web", "-o", "json"}, "last_error"},
		{[]string{"status", "-o", "json"}, "last_error"},
		{[]string{"events", "-o", "json"}, "error"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(append(tt.args, "--addr", addr), &stdout, &stderr); code != exitOK {
				t.Fatalf("exit %d, stderr %q", code, stderr.String())
			}
			if r, bad := terminalControl(stdout.String()); bad {
				t.Errorf("stdout carries %U: %q", r, stdout.String())
			}
			var obj map[string]any
			text := strings.TrimSpace(stdout.String())
			if strings.HasPrefix(text, "[") {
				var list []map[string]any
				if err := json.Unmarshal([]byte(text), &list); err != nil || len(list) != 1 {
					t.Fatalf("not a JSON list of one (%v): %q", err, text)
				}
				obj = list[0]
			} else if err := json.Unmarshal([]byte(text), &obj); err != nil {
				t.Fatalf("not JSON (%v): %q", err, text)
			}
			if obj[tt.field] != hostile {
				t.Errorf("%s = %q, want the API's %q", tt.field, obj[tt.field], hostile)
			}
		})
	}
}
