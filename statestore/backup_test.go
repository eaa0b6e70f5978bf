package statestore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func populate(t *testing.T, s *Store) {
	t.Helper()
	for _, n := range []string{"a", "b", "c"} {
		mustUpdate(t, s, func(tx *Tx) error {
			if err := tx.PutSpec(sampleSpec(n)); err != nil {
				return err
			}
			if err := tx.PutRuntime(sampleRuntime(n)); err != nil {
				return err
			}
			_, err := tx.AppendEvent(Event{Type: "registered", Challenge: n, Time: t0})
			return err
		})
	}
	for range 5 {
		mustAppend(t, s, Event{Type: "health_changed", Challenge: "b", Health: "healthy", Time: t0})
	}
}

type snapshot struct {
	Specs   []SpecRecord
	Runtime []RuntimeRecord
	Events  []Event
	LastSeq uint64
}

func snap(t *testing.T, s *Store) snapshot {
	t.Helper()
	specs, err := s.ListSpecs()
	if err != nil {
		t.Fatal(err)
	}
	rts, err := s.ListRuntime()
	if err != nil {
		t.Fatal(err)
	}
	evs, err := s.Events(EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{specs, rts, evs, s.LastSeq()}
}

func backup(t *testing.T, s *Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Backup(&buf); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	return buf.Bytes()
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	src := openStore(t, "", Options{MaxEvents: 6})
	populate(t, src)
	want := snap(t, src)
	data := backup(t, src)

	dstDir := t.TempDir()
	dst := openStore(t, dstDir, Options{MaxEvents: 6})
	// Trailing bytes belong to whoever framed the backup; Restore stops at its end.
	if err := dst.Restore(io.MultiReader(bytes.NewReader(data), strings.NewReader("trailer"))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := snap(t, dst); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored state differs\n got %+v\nwant %+v", got, want)
	}
	if e := mustAppend(t, dst, Event{Type: "x"}); e.Seq != want.LastSeq+1 {
		t.Fatalf("seq after restore = %d, want %d", e.Seq, want.LastSeq+1)
	}
	if n := countEventKeys(t, dst); n != 6 {
		t.Fatalf("events after restore+append = %d, want bound 6", n)
	}

	// Persisted, and seq still continues after a reopen.
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	dst = openStore(t, dstDir, Options{MaxEvents: 6})
	if dst.LastSeq() != want.LastSeq+1 {
		t.Fatalf("LastSeq after reopen = %d", dst.LastSeq())
	}
	if got := snap(t, dst); !reflect.DeepEqual(got.Specs, want.Specs) || !reflect.DeepEqual(got.Runtime, want.Runtime) {
		t.Fatal("records lost after reopen")
	}
}

func TestRestoreTrimsToSmallerBound(t *testing.T) {
	src := openStore(t, "", Options{})
	populate(t, src)
	dst := openStore(t, "", Options{MaxEvents: 2})
	if err := dst.Restore(bytes.NewReader(backup(t, src))); err != nil {
		t.Fatal(err)
	}
	evs, _ := dst.Events(EventQuery{})
	if got := seqs(evs); !reflect.DeepEqual(got, []uint64{7, 8}) {
		t.Fatalf("seqs = %v, want [7 8]", got)
	}
}

func TestRestoreRefusesNonEmpty(t *testing.T) {
	src := openStore(t, "", Options{})
	populate(t, src)
	data := backup(t, src)

	dst := openStore(t, "", Options{})
	mustUpdate(t, dst, func(tx *Tx) error { return tx.PutSpec(sampleSpec("existing")) })
	err := dst.Restore(bytes.NewReader(data))
	if !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("Restore into non-empty store = %v, want ErrNotEmpty", err)
	}
	specs, _ := dst.ListSpecs()
	if len(specs) != 1 || specs[0].Name != "existing" {
		t.Fatalf("non-empty store changed: %+v", specs)
	}
}

func TestRestoreEmptyBackup(t *testing.T) {
	src := openStore(t, "", Options{})
	dst := openStore(t, "", Options{})
	if err := dst.Restore(bytes.NewReader(backup(t, src))); err != nil {
		t.Fatal(err)
	}
	if e := mustAppend(t, dst, Event{Type: "x"}); e.Seq != 1 {
		t.Fatalf("seq = %d", e.Seq)
	}
}

func TestRestoreRejectsDamage(t *testing.T) {
	src := openStore(t, "", Options{})
	populate(t, src)
	good := backup(t, src)

	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x40
		return b
	}
	hugeLen := func() []byte {
		b := []byte(backupMagic)
		b = append(b, tagEntry)
		b = binary.AppendUvarint(b, 5)
		b = append(b, "spec/"...)
		return binary.AppendUvarint(b, 1<<40)
	}
	cases := map[string][]byte{
		"empty":          nil,
		"bad magic":      flip(0),
		"flipped value":  flip(len(good) / 2),
		"flipped crc":    flip(len(good) - 1),
		"truncated":      good[:len(good)-10],
		"no trailer":     good[:len(good)-4],
		"huge length":    hugeLen(),
		"unknown prefix": append(append([]byte(backupMagic), tagEntry, 3), "zz/"...),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			dst := openStore(t, "", Options{})
			err := dst.Restore(bytes.NewReader(data))
			if err == nil {
				t.Fatal("damaged backup accepted")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("err %v is not ErrCorrupt", err)
			}
			// All or nothing: the store is still empty and usable.
			if got := snap(t, dst); len(got.Specs)+len(got.Runtime)+len(got.Events) != 0 || got.LastSeq != 0 {
				t.Fatalf("partial restore left data: %+v", got)
			}
			if err := dst.Restore(bytes.NewReader(good)); err != nil {
				t.Fatalf("Restore of good backup after a failed one: %v", err)
			}
		})
	}
}

func TestBackupWhileWriting(t *testing.T) {
	s := openStore(t, "", Options{})
	populate(t, s)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.AppendEvent(Event{Type: "x"}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() {
		close(stop)
		<-done
	}()
	for range 5 {
		data := backup(t, s)
		dst, err := Open("", Options{InMemory: true})
		if err != nil {
			t.Fatal(err)
		}
		err = dst.Restore(bytes.NewReader(data))
		if err == nil {
			// A consistent snapshot has a contiguous log ending at its next_seq.
			evs, _ := dst.Events(EventQuery{})
			for i := 1; i < len(evs); i++ {
				if evs[i].Seq != evs[i-1].Seq+1 {
					err = errors.New("gap in restored log")
				}
			}
			if len(evs) > 0 && evs[len(evs)-1].Seq != dst.LastSeq() {
				err = errors.New("restored log does not end at LastSeq")
			}
		}
		dst.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}
