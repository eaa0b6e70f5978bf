package challenge

import (
	"strings"
	"testing"
	"time"

	"berth/configs"
)

// update.auto notify checks the registry like auto-update but only says a
// newer version is out, once per version, and never swaps.
func TestScenarioAutoUpdateNotify(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	spec := testSpec()
	spec.Version = "^1.0.0"
	spec.Update.Auto = configs.AutoNotify
	spec.Update.CheckInterval = time.Minute
	v1 := newVersion(t)
	f.rt.SetAddress("1.0.0", v1.srv.URL)
	f.rt.SetTags("1.0.0", "2.0.0")
	f.start(spec)
	scWaitServing(t, f)
	clk.Advance(2 * time.Minute)
	scNoChange(t, 30*time.Millisecond, "notifies without a newer tag", func() bool { return f.store.hasEvent(EventUpdateAvailable) }, false)

	f.rt.SetTags("1.0.0", "1.1.0", "2.0.0")
	scAdvanceUntil(t, clk, 5*time.Second, func() bool { return f.store.hasEvent(EventUpdateAvailable) }, "no update_available")
	ev := scWaitEvent(t, f.store, EventUpdateAvailable, 1)
	if ev.From != "1.0.0" || ev.To != "1.1.0" || !strings.Contains(ev.Message, "berth swap web 1.1.0") {
		t.Fatalf("update_available %+v", ev)
	}
	// Later checks find the same version: no second event, and never a swap.
	for range 5 {
		clk.Advance(2 * time.Minute)
	}
	scNoChange(t, 50*time.Millisecond, "update_available events", func() int { return f.store.countEvents(EventUpdateAvailable) }, 1)
	if f.store.hasEvent(EventSwapStarted) || f.status().Version != "1.0.0" {
		t.Fatalf("notify swapped: %v, version %s", swapEventTypes(f.store), f.status().Version)
	}
	// A still newer version is news again.
	f.rt.SetTags("1.0.0", "1.1.0", "1.2.0")
	scAdvanceUntil(t, clk, 5*time.Second, func() bool { return f.store.countEvents(EventUpdateAvailable) == 2 }, "1.2.0 not notified")
	if ev := scWaitEvent(t, f.store, EventUpdateAvailable, 2); ev.To != "1.2.0" {
		t.Fatalf("second update_available %+v", ev)
	}
}

// keep_previous after a swap the kept instance is removed and then its
// image, unless prune_images is off; an image still in use stays.
func TestScenarioPruneImageAfterKeepPrevious(t *testing.T) {
	for _, tc := range []struct {
		name  string
		prune bool
	}{{"on", true}, {"off", false}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			clk := scFakeClock(f)
			spec := testSpec()
			spec.Update.KeepPrevious = 10 * time.Second
			spec.Update.PruneImages = new(tc.prune)
			scStartSeeded(t, f, spec)
			v2 := newVersion(t)
			f.rt.SetAddress("2.0.0", v2.srv.URL)
			if _, err := f.handle.Swap(scCtx(t), "2.0.0"); err != nil {
				t.Fatal(err)
			}
			scAdvanceUntil(t, clk, 100*time.Millisecond, func() bool { return f.store.hasEvent(EventSwapCompleted) }, "no swap_completed")
			oldRef := spec.Image + ":1.0.0"
			if n := f.rt.Count("remove_image", oldRef); n != 0 {
				t.Fatalf("image removed while its instance is kept (%d)", n)
			}
			clk.Advance(10 * time.Second)
			eventually(t, 5*time.Second, func() bool { _, ok := f.rt.Get("old01"); return !ok }, "kept old01 not removed")
			if tc.prune {
				eventually(t, 5*time.Second, func() bool { return f.rt.Count("remove_image", oldRef) == 1 }, "old image not pruned")
			} else {
				scNoChange(t, 50*time.Millisecond, "image removals", func() int { return f.rt.Count("remove_image", oldRef) }, 0)
			}
			if n := f.rt.Count("remove_image", spec.Image+":2.0.0"); n != 0 {
				t.Fatalf("the serving image was removed (%d)", n)
			}
		})
	}
}

// An image another instance uses is refused by the runtime; the owner keeps
// serving and does not retry.
func TestScenarioPruneImageInUseIsKept(t *testing.T) {
	f := newFixture(t)
	clk := scFakeClock(f)
	spec := testSpec()
	spec.Update.KeepPrevious = 10 * time.Second
	scStartSeeded(t, f, spec)
	oldRef := spec.Image + ":1.0.0"
	f.rt.Add(Instance{ID: "other01", Name: "berth-other-a", Challenge: "other", Slot: slotA, Image: oldRef})
	v2 := newVersion(t)
	f.rt.SetAddress("2.0.0", v2.srv.URL)
	if _, err := f.handle.Swap(scCtx(t), "2.0.0"); err != nil {
		t.Fatal(err)
	}
	scAdvanceUntil(t, clk, 100*time.Millisecond, func() bool { return f.store.hasEvent(EventSwapCompleted) }, "no swap_completed")
	clk.Advance(10 * time.Second)
	eventually(t, 5*time.Second, func() bool { return f.rt.Count("remove_image", oldRef) == 1 }, "prune not tried")
	if _, ok := f.rt.Get("other01"); !ok {
		t.Fatal("the other challenge's instance is gone")
	}
	clk.Advance(time.Hour)
	scNoChange(t, 50*time.Millisecond, "image removals", func() int { return f.rt.Count("remove_image", oldRef) }, 1)
	if st := f.status(); st.Version != "2.0.0" || st.Health != HealthHealthy {
		t.Fatalf("after a refused prune: %+v", st)
	}
}
