package alerts

import (
	"testing"
	"time"
)

func TestAlertLimiter(t *testing.T) {
	l := newAlertLimiter(10 * time.Minute)
	a, b := alertKey{"a", "gave_up"}, alertKey{"b", "gave_up"}
	steps := []struct {
		key        alertKey
		at         time.Duration
		due        bool
		suppressed int // reported by take when due
	}{
		{a, 0, true, 0},
		{a, time.Minute, false, 0},
		{b, time.Minute, true, 0},
		{a, 9*time.Minute + 59*time.Second, false, 0},
		{a, 10 * time.Minute, true, 2},
		{a, 15 * time.Minute, false, 0},
		{a, 20 * time.Minute, true, 1},
	}
	for i, s := range steps {
		now := alertT0.Add(s.at)
		if got := l.due(s.key, now); got != s.due {
			t.Fatalf("step %d: due(%v, +%s) = %v, want %v", i, s.key, s.at, got, s.due)
		}
		if !s.due {
			l.suppress(s.key, now)
			continue
		}
		if n := l.take(s.key, now); n != s.suppressed {
			t.Fatalf("step %d: take reported %d suppressed, want %d", i, n, s.suppressed)
		}
	}
}
