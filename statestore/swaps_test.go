package statestore

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

func TestSwapPlanRoundTrip(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	plan := SwapPlan{ID: "s1", Challenge: "c", Phase: "starting", From: "1.0.0", To: "1.1.0", FromSlot: "a", ToSlot: "b"}
	if err := s.Update(func(tx *Tx) error { return tx.PutSwap(plan) }); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.GetSwap("c")
	if err != nil || !ok || got.Phase != "starting" || got.To != "1.1.0" {
		t.Fatalf("GetSwap = %+v %v %v", got, ok, err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.DeleteSwap("c") }); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.GetSwap("c"); ok {
		t.Error("plan still present after delete")
	}
}

func TestSnapshotsKeepNewestFiveAndCapSize(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	base := time.Unix(1700000000, 0)
	for i := range 8 {
		if _, err := s.PutSnapshot(Snapshot{Challenge: "c", Version: fmt.Sprint(i), Data: []byte{byte(i)}, Created: base.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	snaps, err := list[Snapshot](s, snapPrefix("c"))
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != SnapshotsKept || snaps[0].Version != "3" {
		t.Errorf("kept %d snapshots starting at version %s, want %d starting at 3", len(snaps), snaps[0].Version, SnapshotsKept)
	}
	latest, ok, err := s.LatestSnapshot("c")
	if err != nil || !ok || !bytes.Equal(latest.Data, []byte{7}) {
		t.Errorf("LatestSnapshot = %+v %v %v", latest, ok, err)
	}
	if _, err := s.PutSnapshot(Snapshot{Challenge: "c", Data: make([]byte, MaxSnapshotBytes+1)}); err == nil {
		t.Error("oversized snapshot accepted")
	}
	if _, ok, _ := s.LatestSnapshot("other"); ok {
		t.Error("snapshot found for a challenge that has none")
	}
}
