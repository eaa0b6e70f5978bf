package challenge

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"berth/internal/testkit"
)

func TestProbeErrorIsPrintable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, testkit.HostileOutput)
	}))
	defer srv.Close()
	res := NewProber().Probe(context.Background(), srv.URL, 2*time.Second)
	if res.Pass {
		t.Fatal("503 passed")
	}
	if r, bad := testkit.Unprintable(res.Err, false); bad {
		t.Errorf("probe error %q carries %U", res.Err, r)
	}
	if !strings.Contains(res.Err, "first line red") || !strings.Contains(res.Err, "second line") {
		t.Errorf("probe error %q lost the readable text", res.Err)
	}
}

func TestExitOutputIsPrintable(t *testing.T) {
	f := newFixture(t)
	f.rt.SetLogs(testkit.HostileOutput)
	c := New(f.deps, NewHandle("out"), testSpec(), false)
	got := c.lastOutput(context.Background(), "abc")
	// One line: newlines and tabs are escaped, so the exit event is one
	// log line and one row of berth events.
	if r, bad := testkit.Unprintable(got, false); bad {
		t.Errorf("last output %q carries %U", got, r)
	}
	if want := `first line red\nsecond\tline`; !strings.Contains(got, want) {
		t.Errorf("last output %q lost its text or escaped line breaks %s", got, want)
	}
	if strings.HasSuffix(got, `\n`) {
		t.Errorf("last output %q ends with an escaped newline", got)
	}
}

func TestOneLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"a\nb", `a\nb`},
		{"a\tb", `a\tb`},
		{"a\r\nb\x1b[31m!\x07", `a\nb!`},
		{`already \n literal`, `already \n literal`},
	}
	for _, tt := range tests {
		if got := OneLine(tt.in); got != tt.want {
			t.Errorf("OneLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if r, bad := testkit.Unprintable(OneLine(tt.in), false); bad {
			t.Errorf("OneLine(%q) keeps %U", tt.in, r)
		}
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct {
		name, in, line, multi string
	}{
		{"plain", "hello, wörld ✓", "hello, wörld ✓", "hello, wörld ✓"},
		{"newline and tab", "a\tb\nc", "a b c", "a\tb\nc"},
		{"crlf", "a\r\nb\rc", "a bc", "a\nbc"},
		{"csi colours", "\x1b[1;31mred\x1b[0m!", "red!", "red!"},
		{"csi private", "\x1b[?25lhidden\x1b[?1049h", "hidden", "hidden"},
		{"osc title bel", "\x1b]0;title\x07after", "after", "after"},
		{"osc hyperlink st", "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link", "link"},
		{"unterminated osc stops at newline", "\x1b]0;title\nnext", " next", "\nnext"},
		{"dcs", "\x1bPq#0;2;0;0;0\x1b\\x", "x", "x"},
		{"charset and reset", "\x1b(Ba\x1bcb", "ab", "ab"},
		{"lone escape at end", "a\x1b", "a", "a"},
		{"escape before newline", "a\x1b\nb", "a b", "a\nb"},
		{"c0 bell backspace nul del", "a\x07\x08\x00\x7fb", "ab", "ab"},
		{"c1 csi", "a\u009b31mb\u0085c", "a31mbc", "a31mbc"},
		{"bidi", "a\u202eb\u2066c\u2069", "abc", "abc"},
		{"invalid utf8", "a\xff\xfeb", "ab", "ab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Printable(tt.in, false); got != tt.line {
				t.Errorf("Printable(%q, false) = %q, want %q", tt.in, got, tt.line)
			}
			if got := Printable(tt.in, true); got != tt.multi {
				t.Errorf("Printable(%q, true) = %q, want %q", tt.in, got, tt.multi)
			}
		})
	}
}

func FuzzPrintable(f *testing.F) {
	f.Add(testkit.HostileOutput)
	f.Add("\x1b[")
	f.Add("\x1b]")
	f.Fuzz(func(t *testing.T, s string) {
		for _, multi := range []bool{false, true} {
			if r, bad := testkit.Unprintable(Printable(s, multi), multi); bad {
				t.Fatalf("Printable(%q, %v) keeps %U", s, multi, r)
			}
		}
		if r, bad := testkit.Unprintable(OneLine(s), false); bad {
			t.Fatalf("OneLine(%q) keeps %U", s, r)
		}
	})
}
