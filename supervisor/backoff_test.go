package supervisor_test

import (
	"math"
	"testing"
	"time"

	"berth/supervisor"
)

func TestBackoffDelay(t *testing.T) {
	std := supervisor.Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2, Jitter: 0.2}
	almostOne := math.Nextafter(1, 0)
	const maxDuration = time.Duration(math.MaxInt64)

	tests := []struct {
		name string
		b    supervisor.Backoff
		n    int
		r    float64
		want time.Duration
	}{
		{"first attempt", std, 1, 0.5, 100 * time.Millisecond},
		{"grows", std, 2, 0.5, 200 * time.Millisecond},
		{"grows more", std, 4, 0.5, 800 * time.Millisecond},
		{"just under cap", std, 7, 0.5, 6400 * time.Millisecond},
		{"capped", std, 8, 0.5, 10 * time.Second},
		{"stays capped", std, 100, 0.5, 10 * time.Second},
		{"huge n does not overflow", std, math.MaxInt, 0.5, 10 * time.Second},
		{"n zero is first", std, 0, 0.5, 100 * time.Millisecond},
		{"negative n is first", std, -7, 0.5, 100 * time.Millisecond},
		{"min jitter", std, 1, 0, 80 * time.Millisecond},
		{"max jitter", std, 1, almostOne, 120 * time.Millisecond},
		{"min jitter at cap", std, 50, 0, 8 * time.Second},
		{"max jitter at cap", std, 50, almostOne, 12 * time.Second},
		{"rounds to nearest", supervisor.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 1.1, Jitter: 0.2}, 1, 0.3, 920 * time.Millisecond},
		{"r below range clamps", std, 1, -3, 80 * time.Millisecond},
		{"r above range clamps", std, 1, 7, 120 * time.Millisecond},
		{"no jitter ignores r", supervisor.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 2}, 3, 0, 4 * time.Second},
		{"fractional multiplier", supervisor.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 1.5}, 3, 0.5, 2250 * time.Millisecond},
		{"multiplier one is constant", supervisor.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 1}, 40, 0.5, time.Second},
		{"multiplier below one is constant", supervisor.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 0.5}, 5, 0.5, time.Second},
		{"max below initial caps", supervisor.Backoff{Initial: time.Minute, Max: time.Second, Multiplier: 2}, 1, 0.5, time.Second},
		{"jitter above one clamps", supervisor.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 2, Jitter: 5}, 1, 0, 0},
		{"zero initial", supervisor.Backoff{Max: time.Minute, Multiplier: 2, Jitter: 0.2}, 5, 0.9, 0},
		{"no cap saturates", supervisor.Backoff{Initial: time.Second, Multiplier: 2}, math.MaxInt, 0.5, maxDuration},
		{"no cap saturates with jitter", supervisor.Backoff{Initial: time.Second, Multiplier: 2, Jitter: 0.5}, 1000, almostOne, maxDuration},
		{"huge initial saturates", supervisor.Backoff{Initial: maxDuration / 2, Multiplier: 4}, 3, 0.5, maxDuration},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Delay(tt.n, tt.r); got != tt.want {
				t.Errorf("%+v.Delay(%d, %v) = %v, want %v", tt.b, tt.n, tt.r, got, tt.want)
			}
		})
	}
}

// Every r in [0, 1) must land within ±Jitter of the un-jittered delay.
func TestBackoffDelayJitterBounds(t *testing.T) {
	b := supervisor.Backoff{Initial: 300 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2, Jitter: 0.25}
	for n := 1; n <= 12; n++ {
		base := float64(min(30*time.Second, 300*time.Millisecond<<(n-1)))
		lo, hi := time.Duration(base*0.75), time.Duration(base*1.25)
		for i := range 100 {
			r := float64(i) / 100
			if d := b.Delay(n, r); d < lo || d > hi {
				t.Fatalf("Delay(%d, %v) = %v, outside [%v, %v]", n, r, d, lo, hi)
			}
		}
		if b.Delay(n, 0.1) >= b.Delay(n, 0.9) {
			t.Fatalf("Delay(%d, r) does not grow with r", n)
		}
	}
}
