package statestore

import (
	"bytes"
	"fmt"
	"strings"
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
		if _, err := s.PutSnapshot(Snapshot{Challenge: "c", Version: fmt.Sprint(i), Data: []byte{byte(i)}, Created: base.Add(time.Duration(i) * time.Second)}, 0); err != nil {
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
	if _, err := s.PutSnapshot(Snapshot{Challenge: "c", Data: make([]byte, MaxSnapshotBytes+1)}, 0); err == nil {
		t.Error("oversized snapshot accepted")
	}
	if _, ok, _ := s.LatestSnapshot("other"); ok {
		t.Error("snapshot found for a challenge that has none")
	}
}

// snapshotPattern fills n bytes with a marker that shows up in any dump of
// the data (raw, hex or base64).
func snapshotPattern(n int) []byte {
	return bytes.Repeat([]byte("SECRETSTATE-"), n/12+1)[:n]
}

// leaksData reports whether msg carries any rendering of snapshotPattern.
func leaksData(msg string) bool {
	for _, s := range []string{"SECRET", "ECRETS", "53 45 43 52", "U0VDUkVU", "RUNSRVRT"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return len(msg) > 1000
}

func TestSnapshotNearCapIsStoredAndSurvivesReopenAndBackup(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	data := snapshotPattern(15 << 20)
	base := time.Unix(1700000000, 0)
	for i := range 2 {
		if _, err := s.PutSnapshot(Snapshot{Challenge: "c", Version: fmt.Sprint(i), Data: data, Created: base.Add(time.Duration(i) * time.Second)}, 0); err != nil {
			msg := err.Error()
			if len(msg) > 300 {
				msg = msg[:300] + "…"
			}
			t.Fatalf("PutSnapshot(15 MiB) #%d: %s", i, msg)
		}
	}
	check := func(s *Store, what string) {
		t.Helper()
		got, ok, err := s.LatestSnapshot("c")
		if err != nil || !ok {
			t.Fatalf("%s: LatestSnapshot = ok %v, err %v", what, ok, err)
		}
		if got.Version != "1" || !bytes.Equal(got.Data, data) {
			t.Fatalf("%s: LatestSnapshot version %q, %d bytes; want version 1, %d identical bytes", what, got.Version, len(got.Data), len(data))
		}
	}
	check(s, "open store")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, Options{})
	check(s, "reopened store")

	var buf bytes.Buffer
	if err := s.Backup(&buf); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	dst := openStore(t, "", Options{})
	if err := dst.Restore(&buf); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	check(dst, "restored store")
}

func TestSnapshotOverCapErrorCarriesNoData(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	_, err := s.PutSnapshot(Snapshot{Challenge: "c", Data: snapshotPattern(MaxSnapshotBytes + 1)}, 0)
	if err == nil {
		t.Fatal("oversized snapshot accepted")
	}
	if leaksData(err.Error()) {
		t.Errorf("error echoes stored data: %.300s", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprint(MaxSnapshotBytes)) {
		t.Errorf("error %q does not name the limit", err)
	}
}

// Whatever Badger refuses, its error must not carry the value it refused.
func TestOversizedRecordErrorCarriesNoData(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	err := s.Update(func(tx *Tx) error {
		return tx.PutSpec(SpecRecord{Name: "c", Spec: snapshotPattern(20 << 20)})
	})
	if err == nil {
		t.Fatal("20 MiB record accepted")
	}
	if leaksData(err.Error()) {
		t.Errorf("error echoes stored data: %.300s", err)
	}
}

// The last chunk of a snapshot is stored inline: the largest one, with the
// oldest snapshots trimmed in the same transaction, must still fit.
func TestSnapshotWorstCaseSizesFit(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	base := time.Unix(1700000000, 0)
	sizes := []int{MaxSnapshotBytes, MaxSnapshotBytes - 1, snapChunkBytes - 1, snapChunkBytes, snapChunkBytes + 1, MaxSnapshotBytes - 1, MaxSnapshotBytes, 0, MaxSnapshotBytes - 1}
	for i, n := range sizes {
		if _, err := s.PutSnapshot(Snapshot{Challenge: "c", Version: fmt.Sprint(i), Data: snapshotPattern(n), Created: base.Add(time.Duration(i) * time.Second)}, 0); err != nil {
			t.Fatalf("PutSnapshot(%d bytes) #%d: %.300s", n, i, err)
		}
		got, ok, err := s.LatestSnapshot("c")
		if err != nil || !ok || got.Version != fmt.Sprint(i) || len(got.Data) != n {
			t.Fatalf("after #%d (%d bytes): LatestSnapshot version %q, %d bytes, ok %v, err %v", i, n, got.Version, len(got.Data), ok, err)
		}
	}
	keys := 0
	if err := s.Update(func(tx *Tx) error {
		k, err := tx.keys(prefixSnapData)
		keys = len(k)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, n := range sizes[len(sizes)-SnapshotsKept:] {
		want += (n + snapChunkBytes - 1) / snapChunkBytes
	}
	if keys != want {
		t.Errorf("%d chunk records stored, want %d (trimmed snapshots must take their chunks along)", keys, want)
	}
}
