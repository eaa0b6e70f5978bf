package alerts

import (
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"berth/agent/challenge"
)

// hostileOutput is what a challenge might print: a window-title OSC, a
// screen clear, colours, an 8-bit CSI, a carriage return that overwrites
// the line, a bell and a bidi override.
const hostileOutput = "\x1b]0;owned\x07\x1b[2Jfirst line \x1b[31mred\x1b[0m\r\nsecond\tline\x07 \u009b31m\u202eevil\r\n"

// unprintable names the first byte or rune of s a terminal would act on;
// newlines and tabs are allowed when multiline.
func unprintable(s string, multiline bool) (rune, bool) {
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

func TestAlertsArePrintable(t *testing.T) {
	rc := newAlertReceiver(t, nil)
	h := startAlerter(t, rc, time.Minute, nil)
	defer h.close()
	h.feed.append(challenge.Event{Type: challenge.EventGaveUp, Challenge: "c", Message: "exited; last output: " + hostileOutput, Error: hostileOutput})
	p := rc.next(t)
	for what, s := range map[string]string{"message": p.Message, "error": p.Error, "event.message": p.Event.Message, "event.error": p.Event.Error} {
		if r, bad := unprintable(s, true); bad {
			t.Errorf("alert %s %q carries %U", what, s, r)
		}
	}
	if !strings.Contains(p.Message, "first line red") {
		t.Errorf("alert message %q lost the readable text", p.Message)
	}
}
