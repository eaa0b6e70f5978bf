package challenge

import (
	"testing"
	"time"
)

// The ring keeps the newest ProbeHistorySize samples, oldest first.
func TestProbeHistoryKeepsTheNewestInOrder(t *testing.T) {
	for _, n := range []int{0, 1, ProbeHistorySize - 1, ProbeHistorySize, ProbeHistorySize + 1, 3*ProbeHistorySize + 7} {
		h := NewHandle("web")
		base := time.Unix(1000, 0)
		for i := range n {
			h.RecordProbe(ProbeSample{At: base.Add(time.Duration(i) * time.Second), MS: float64(i), OK: i%2 == 0})
		}
		got := h.Probes()
		want := min(n, ProbeHistorySize)
		if len(got) != want {
			t.Fatalf("after %d probes: %d samples, want %d", n, len(got), want)
		}
		for i, s := range got {
			seq := n - want + i
			if s.MS != float64(seq) || !s.At.Equal(base.Add(time.Duration(seq)*time.Second)) || s.OK != (seq%2 == 0) {
				t.Fatalf("after %d probes: sample %d is %+v, want probe %d", n, i, s, seq)
			}
		}
	}
}

// Probes hands out a copy: the caller may keep or change it.
func TestProbeHistoryReturnsACopy(t *testing.T) {
	h := NewHandle("web")
	h.RecordProbe(ProbeSample{MS: 1, OK: true})
	got := h.Probes()
	got[0].MS = 99
	if h.Probes()[0].MS != 1 {
		t.Fatal("changing the returned slice changed the history")
	}
}

// The owner records each probe of its instance, passing and failing, with
// its response time.
func TestOwnerRecordsProbeHistory(t *testing.T) {
	f := newFixture(t)
	ver := newVersion(t)
	spec := testSpec()
	spec.Restart.OnUnhealthy = false // keep the sick instance so its failures are probed
	spec.Update.AutoRollback = false
	f.rt.SetAddress(spec.Version, ver.srv.URL)
	f.start(spec)
	scWaitServing(t, f)
	eventually(t, 5*time.Second, func() bool { return countOK(f.handle.Probes(), true) >= 3 },
		"no passing probes recorded: %v", func() any { return f.handle.Probes() })
	ver.healthy.Store(false)
	eventually(t, 5*time.Second, func() bool { return countOK(f.handle.Probes(), false) >= 2 },
		"no failing probes recorded: %v", func() any { return f.handle.Probes() })
	got := f.handle.Probes()
	for i, s := range got {
		if s.At.IsZero() || s.MS < 0 || (i > 0 && s.At.Before(got[i-1].At)) {
			t.Fatalf("sample %d out of order or empty: %+v", i, got)
		}
	}
	if len(got) > ProbeHistorySize {
		t.Fatalf("%d samples held, more than %d", len(got), ProbeHistorySize)
	}
}

func countOK(samples []ProbeSample, ok bool) int {
	n := 0
	for _, s := range samples {
		if s.OK == ok {
			n++
		}
	}
	return n
}
