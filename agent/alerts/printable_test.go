package alerts

import (
	"strings"
	"testing"
	"time"

	"berth/agent/challenge"
	"berth/internal/testkit"
)

func TestAlertsArePrintable(t *testing.T) {
	rc := newAlertReceiver(t, nil)
	h := startAlerter(t, rc, time.Minute, nil)
	defer h.close()
	h.feed.append(challenge.Event{Type: challenge.EventGaveUp, Challenge: "c", Message: "exited; last output: " + testkit.HostileOutput, Error: testkit.HostileOutput})
	p := rc.next(t)
	for what, s := range map[string]string{"message": p.Message, "error": p.Error, "event.message": p.Event.Message, "event.error": p.Event.Error} {
		if r, bad := testkit.Unprintable(s, true); bad {
			t.Errorf("alert %s %q carries %U", what, s, r)
		}
	}
	if !strings.Contains(p.Message, "first line red") {
		t.Errorf("alert message %q lost the readable text", p.Message)
	}
}
