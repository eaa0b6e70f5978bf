package statestore

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func putSnaps(t *testing.T, s *Store, name string, keep int, versions ...string) []Snapshot {
	t.Helper()
	base := time.Unix(1700000000, 0)
	var out []Snapshot
	for i, v := range versions {
		snap, err := s.PutSnapshot(Snapshot{Challenge: name, Version: v, Data: []byte(fmt.Sprintf("state %d", i)),
			Created: base.Add(time.Duration(i) * time.Second)}, keep)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, snap)
	}
	return out
}

func snapSeqs(snaps []Snapshot) []uint64 {
	var out []uint64
	for _, s := range snaps {
		out = append(out, s.Seq)
	}
	return out
}

func TestSnapshotsNumberedAndKeptPerChallenge(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	put := putSnaps(t, s, "c", 3, "1.0.0", "1.0.0", "1.1.0", "1.1.0", "2.0.0")
	if got := snapSeqs(put); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("numbers %v", got)
	}
	list, err := s.Snapshots("c")
	if err != nil {
		t.Fatal(err)
	}
	if got := snapSeqs(list); !slices.Equal(got, []uint64{5, 4, 3}) {
		t.Fatalf("kept %v, want the newest 3 newest first", got)
	}
	if list[0].Data != nil || list[0].Bytes != len("state 4") || list[0].SHA256 == "" || list[0].Version != "2.0.0" {
		t.Errorf("listing %+v", list[0])
	}
	// Numbers keep rising after the oldest were dropped.
	if more := putSnaps(t, s, "c", 3, "2.0.0"); more[0].Seq != 6 {
		t.Errorf("next number %d, want 6", more[0].Seq)
	}
	if other, _ := s.Snapshots("other"); len(other) != 0 {
		t.Errorf("another challenge sees %v", other)
	}
}

func TestSnapshotBySeq(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	putSnaps(t, s, "c", 0, "1.0.0", "1.1.0")
	snap, err := s.SnapshotBySeq("c", 1)
	if err != nil || string(snap.Data) != "state 0" || snap.Version != "1.0.0" {
		t.Fatalf("seq 1: %+v, %v", snap, err)
	}
	if _, err := s.SnapshotBySeq("c", 9); !errors.Is(err, ErrNoSnapshot) {
		t.Errorf("seq 9: %v", err)
	}
	corruptSnapshot(t, s, "c", 2)
	if _, err := s.SnapshotBySeq("c", 2); !errors.Is(err, ErrSnapshotCorrupt) {
		t.Errorf("corrupt seq 2: %v", err)
	}
}

// The newest usable snapshot is picked; a corrupt one is skipped for the
// next older, and the filter (a version rule) is applied first.
func TestNewestSnapshotSkipsCorruptAndUnusable(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	putSnaps(t, s, "c", 0, "1.0.0", "1.1.0", "1.2.0", "2.0.0")
	corruptSnapshot(t, s, "c", 3)
	major1 := func(sn Snapshot) bool { return sn.Version[0] == '1' }
	pick, err := s.NewestSnapshot("c", major1)
	if err != nil || !pick.Found || pick.Snapshot.Seq != 2 || string(pick.Snapshot.Data) != "state 1" || !slices.Equal(pick.Corrupt, []uint64{3}) {
		t.Fatalf("pick %+v, %v; want seq 2 with 3 skipped as corrupt", pick, err)
	}
	if pick, _ := s.NewestSnapshot("c", nil); pick.Snapshot.Seq != 4 {
		t.Errorf("any version: seq %d, want 4", pick.Snapshot.Seq)
	}
	if pick, _ := s.NewestSnapshot("c", func(Snapshot) bool { return false }); pick.Found {
		t.Errorf("nothing usable but found %+v", pick)
	}
}

// corruptSnapshot overwrites the first chunk of snapshot seq of name.
func corruptSnapshot(t *testing.T, s *Store, name string, seq uint64) {
	t.Helper()
	mustUpdate(t, s, func(tx *Tx) error {
		return eachSnapshotRecord(tx.txn, name, true, func(key []byte, rec Snapshot) (bool, error) {
			if rec.Seq != seq {
				return true, nil
			}
			return false, tx.setRaw(snapChunkKey(key, 0), []byte("tampered"))
		})
	})
}
