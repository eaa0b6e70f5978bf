package supervisor_test

import (
	"strings"
	"testing"
	"time"

	"berth/supervisor"
)

func TestEventStrings(t *testing.T) {
	tests := []struct {
		ev   supervisor.Event
		want []string
	}{
		{supervisor.EventServiceStarted{Supervisor: "root", Service: "web"}, []string{`"root"`, `"web"`, "started"}},
		{supervisor.EventServiceFailed{Supervisor: "root", Service: "web", Err: errBoom, Failures: 3}, []string{`"web"`, "failed", "failure 3", "boom"}},
		{supervisor.EventServiceFailed{Supervisor: "root", Service: "web", Err: errBoom, Panic: true, Failures: 1}, []string{"panicked"}},
		{supervisor.EventServiceBackoff{Supervisor: "root", Service: "web", Delay: 1500 * time.Millisecond, Attempt: 2}, []string{`"web"`, "1.5s", "attempt 2"}},
		{supervisor.EventServiceCompleted{Supervisor: "root", Service: "web"}, []string{`"web"`, "completed"}},
		{supervisor.EventStopTimeout{Supervisor: "root", Service: "web"}, []string{`"web"`, "did not stop"}},
	}
	for _, tt := range tests {
		s := tt.ev.String()
		for _, w := range tt.want {
			if !strings.Contains(s, w) {
				t.Errorf("%T.String() = %q, missing %q", tt.ev, s, w)
			}
		}
	}
}
