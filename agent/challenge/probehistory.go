package challenge

import (
	"sync"
	"time"
)

// ProbeHistorySize is how many recent probes each challenge keeps: enough
// for a response-time sparkline without Prometheus, small enough that 200
// challenges cost a few hundred kilobytes.
const ProbeHistorySize = 60

// ProbeSample is one health probe as the status page draws it.
type ProbeSample struct {
	At time.Time `json:"at"`
	MS float64   `json:"ms"` // response time in milliseconds
	OK bool      `json:"ok"`
}

// probeHistory is a bounded ring of a challenge's recent probes. The owner
// writes it; API readers copy it out. Its own mutex keeps readers off the
// owner's goroutine, which never waits on them for long.
type probeHistory struct {
	mu    sync.Mutex
	ring  [ProbeHistorySize]ProbeSample
	next  int // index the next sample goes to
	count int // samples held, at most ProbeHistorySize
}

func (p *probeHistory) add(s ProbeSample) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ring[p.next] = s
	p.next = (p.next + 1) % len(p.ring)
	p.count = min(p.count+1, len(p.ring))
}

// samples returns the held samples, oldest first, in a fresh slice.
func (p *probeHistory) samples() []ProbeSample {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ProbeSample, 0, p.count)
	start := (p.next - p.count + len(p.ring)) % len(p.ring)
	for i := range p.count {
		out = append(out, p.ring[(start+i)%len(p.ring)])
	}
	return out
}

// sampleOf is the sample a probe result leaves in the history.
func sampleOf(r ProbeResult) ProbeSample {
	return ProbeSample{At: r.At, MS: float64(r.Duration.Microseconds()) / 1000, OK: r.Pass}
}

// RecordProbe adds one probe to the challenge's recent history. The owner
// calls it for each probe of its current instance; fakes may too.
func (h *Handle) RecordProbe(s ProbeSample) { h.probes.add(s) }

// Probes returns the challenge's recent probes, oldest first, at most
// ProbeHistorySize of them. The slice is the caller's.
func (h *Handle) Probes() []ProbeSample { return h.probes.samples() }
