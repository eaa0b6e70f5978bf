package agent

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"berth/agent/challenge"
	"berth/statestore"
	"berth/supervisor"
)

// ownerFixture is what an Agent's challenge owners need in a unit test: a
// store, a directory, a fake clock, and owners whose runtime is reported
// down, so they only take specs and answer requests.
type ownerFixture struct {
	store   *statestore.Store
	dir     *challenge.Directory
	clock   *supervisor.FakeClock
	deps    *challenge.Deps
	metrics *metrics // the owners' observer feeds it
}

func newOwnerFixture(tb testing.TB) *ownerFixture {
	tb.Helper()
	store, err := statestore.Open(tb.TempDir(), statestore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = store.Close() })
	f := &ownerFixture{store: store, dir: &challenge.Directory{}, clock: supervisor.NewFakeClock(time.Unix(1700000000, 0))}
	f.metrics = newMetrics(f.dir, func() bool { return false })
	f.deps = &challenge.Deps{Runtime: challenge.NewMemRuntime(), Store: lifeStore{store},
		Observer: observer{log: zerolog.Nop(), metrics: f.metrics},
		Traffic:  noTraffic{}, Prober: challenge.NewProber(), Clock: f.clock, Rand: func() float64 { return 0.5 },
		RuntimeUp: func() bool { return false }, Endpoint: "http://127.0.0.1:1"}
	return f
}
