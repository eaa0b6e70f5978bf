package supervisor

import (
	"math"
	"time"
)

// Backoff is a pure restart-delay policy: exponential growth up to a cap, spread by
// jitter so that services failing together do not restart in lockstep.
type Backoff struct {
	Initial    time.Duration // delay before the first restart
	Max        time.Duration // cap before jitter; zero or negative means no cap
	Multiplier float64       // growth per attempt; values below 1 mean no growth
	Jitter     float64       // relative spread, clamped to [0, 1]
}

// defaultBackoff is used when Spec.Backoff is the zero value.
var defaultBackoff = Backoff{
	Initial:    100 * time.Millisecond,
	Max:        30 * time.Second,
	Multiplier: 2,
	Jitter:     0.2,
}

// maxDuration is the largest representable delay; results saturate there.
const maxDuration = time.Duration(math.MaxInt64)

// Delay returns the delay before restart attempt n (n >= 1; smaller n counts as 1):
//
//	min(Max, Initial*Multiplier^(n-1)) * (1 + Jitter*(2r-1))
//
// r in [0, 1) is supplied by the caller so that Delay stays pure and table-testable;
// values outside that range are clamped. The growth is capped before jitter is
// applied and the result saturates instead of overflowing for huge n.
func (b Backoff) Delay(n int, r float64) time.Duration {
	if n < 1 {
		n = 1
	}
	if b.Initial <= 0 {
		return 0
	}
	limit := float64(maxDuration)
	if b.Max > 0 {
		limit = float64(b.Max)
	}
	mult := b.Multiplier
	if mult < 1 || math.IsNaN(mult) {
		mult = 1
	}
	// Float math saturates to +Inf instead of wrapping, so huge n is harmless.
	d := float64(b.Initial) * math.Pow(mult, float64(n-1))
	if d > limit || math.IsInf(d, 0) || math.IsNaN(d) {
		d = limit
	}
	d *= 1 + clamp(b.Jitter, 0, 1)*(2*clamp(r, 0, 1)-1)
	if d >= float64(maxDuration) {
		return maxDuration
	}
	return time.Duration(math.Round(d))
}

func clamp(v, lo, hi float64) float64 {
	if math.IsNaN(v) || v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}
