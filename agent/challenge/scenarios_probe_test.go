package challenge

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// A probe still in flight when its instance is restarted answers for the
// instance it asked, not for the one started since: its failure must not
// count against the fresh instance.
func TestScenarioStaleProbeIgnoredAfterRestart(t *testing.T) {
	f := newFixture(t)
	var hang atomic.Bool
	hanging := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			select {
			case hanging <- struct{}{}:
			default:
			}
			<-r.Context().Done()
		}
	}))
	t.Cleanup(srv.Close)
	spec := testSpec()
	spec.Health.Timeout = 300 * time.Millisecond
	f.rt.SetAddress("1.0.0", srv.URL)
	f.start(spec)
	id := scWaitServing(t, f).ContainerID

	hang.Store(true)
	select {
	case <-hanging:
	case <-time.After(5 * time.Second):
		t.Fatal("no probe reached the hanging endpoint")
	}
	if err := f.handle.Restart(scCtx(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return f.rt.Count("start", id) == 2 }, "not restarted")
	hang.Store(false)
	// The hung probe times out after the restart; the fresh instance answers.
	eventually(t, 5*time.Second, func() bool { return f.status().Health == HealthHealthy && f.status().State == Running },
		"fresh instance not healthy: %+v", func() any { return f.status() })
	time.Sleep(spec.Health.Timeout + 100*time.Millisecond)
	if f.store.hasEvent(EventUnhealthy) || f.store.countEvents(EventRestarting) != 1 || f.rt.Count("start", id) != 2 {
		t.Fatalf("the stale probe's timeout counted against the restarted instance: starts %d, events %v",
			f.rt.Count("start", id), f.store.eventTypes())
	}
}
