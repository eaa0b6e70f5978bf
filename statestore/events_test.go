package statestore

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestAppendAssignsSeqAndTime(t *testing.T) {
	s := openStore(t, "", Options{})
	before := time.Now()
	e := mustAppend(t, s, Event{Type: "registered", Challenge: "web"})
	if e.Seq != 1 || e.Time.Before(before.Add(-time.Second)) {
		t.Fatalf("first event = %+v", e)
	}
	given := t0
	e2 := mustAppend(t, s, Event{Type: "pulled", Time: given})
	if e2.Seq != 2 || !e2.Time.Equal(given) {
		t.Fatalf("second event = %+v", e2)
	}
	if s.LastSeq() != 2 {
		t.Fatalf("LastSeq = %d", s.LastSeq())
	}
	if _, err := s.AppendEvent(Event{}); err == nil {
		t.Fatal("event without type accepted")
	}
}

func TestEventRoundTrip(t *testing.T) {
	s := openStore(t, "", Options{})
	code := 1
	in := Event{
		Time: t0, Type: "exited", Challenge: "web", ContainerID: "cid", Version: "1.0.0",
		Message: "m", ExitCode: &code, OOM: true, Health: "unhealthy", From: "1.0.0", To: "1.1.0",
		Phase: "drain", Error: "e", Attempt: 3, DelayMS: 1500,
	}
	out := mustAppend(t, s, in)
	evs, err := s.Events(EventQuery{})
	if err != nil || len(evs) != 1 {
		t.Fatalf("Events = %v, %v", evs, err)
	}
	in.Seq = out.Seq
	if !reflect.DeepEqual(evs[0], in) {
		t.Fatalf("stored event = %+v, want %+v", evs[0], in)
	}
}

func TestSeqMonotonicAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{MaxEvents: 2})
	mustUpdate(t, s, func(tx *Tx) error {
		for i := range 3 {
			e, err := tx.AppendEvent(Event{Type: "x"})
			if err != nil {
				return err
			}
			if e.Seq != uint64(i+1) {
				return fmt.Errorf("in-tx seq %d, want %d", e.Seq, i+1)
			}
		}
		return nil
	})
	mustAppend(t, s, Event{Type: "x"})
	mustAppend(t, s, Event{Type: "x"})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir, Options{MaxEvents: 2})
	if s.LastSeq() != 5 {
		t.Fatalf("LastSeq after reopen = %d, want 5", s.LastSeq())
	}
	if e := mustAppend(t, s, Event{Type: "x"}); e.Seq != 6 {
		t.Fatalf("seq after reopen = %d, want 6", e.Seq)
	}
	evs, _ := s.Events(EventQuery{})
	if got := seqs(evs); !reflect.DeepEqual(got, []uint64{5, 6}) {
		t.Fatalf("retained seqs = %v, want [5 6]", got)
	}
}

func TestSeqNotReusedWhenNewestEventGone(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	mustAppend(t, s, Event{Type: "x"})
	mustAppend(t, s, Event{Type: "x"})
	// Even with the log emptied behind our back, next_seq keeps seqs unique.
	txn := s.db.NewTransaction(true)
	for _, seq := range []uint64{1, 2} {
		if err := txn.Delete(eventKey(seq)); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, dir, Options{})
	if e := mustAppend(t, s, Event{Type: "x"}); e.Seq != 3 {
		t.Fatalf("seq = %d, want 3", e.Seq)
	}
}

func countEventKeys(t *testing.T, s *Store) int {
	t.Helper()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	evs, err := s.Events(EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != s.evCount {
		t.Fatalf("stored events %d, bookkeeping says %d", len(evs), s.evCount)
	}
	return len(evs)
}

func TestEventLogTrimmed(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{MaxEvents: 5})
	for range 7 {
		mustAppend(t, s, Event{Type: "x"})
	}
	mustUpdate(t, s, func(tx *Tx) error {
		for range 5 {
			if _, err := tx.AppendEvent(Event{Type: "batch"}); err != nil {
				return err
			}
		}
		return nil
	})
	if n := countEventKeys(t, s); n != 5 {
		t.Fatalf("retained %d events, want 5", n)
	}
	evs, _ := s.Events(EventQuery{})
	if got := seqs(evs); !reflect.DeepEqual(got, []uint64{8, 9, 10, 11, 12}) {
		t.Fatalf("retained seqs = %v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A smaller bound at the next start trims the backlog.
	s = openStore(t, dir, Options{MaxEvents: 3})
	if n := countEventKeys(t, s); n != 3 {
		t.Fatalf("after reopen retained %d events, want 3", n)
	}
	evs, _ = s.Events(EventQuery{})
	if got := seqs(evs); !reflect.DeepEqual(got, []uint64{10, 11, 12}) {
		t.Fatalf("after reopen retained seqs = %v", got)
	}
	mustAppend(t, s, Event{Type: "x"})
	evs, _ = s.Events(EventQuery{})
	if got := seqs(evs); !reflect.DeepEqual(got, []uint64{11, 12, 13}) {
		t.Fatalf("after append retained seqs = %v", got)
	}
}

func TestTrimOnOpenLargeBacklog(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{MaxEvents: 2500})
	for range 5 {
		mustUpdate(t, s, func(tx *Tx) error {
			for range 500 {
				if _, err := tx.AppendEvent(Event{Type: "x"}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	s.Close()
	s = openStore(t, dir, Options{MaxEvents: 10})
	if n := countEventKeys(t, s); n != 10 {
		t.Fatalf("retained %d, want 10", n)
	}
	if evs, _ := s.Events(EventQuery{Limit: 1}); len(evs) != 1 || evs[0].Seq != 2491 {
		t.Fatalf("oldest retained = %v, want seq 2491", evs)
	}
}

func TestEventsQuery(t *testing.T) {
	s := openStore(t, "", Options{})
	for i := range 10 {
		ch := "a"
		if i%2 == 1 {
			ch = "b"
		}
		mustAppend(t, s, Event{Type: "x", Challenge: ch})
	}
	tests := []struct {
		name string
		q    EventQuery
		want []uint64
	}{
		{"all", EventQuery{}, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"since", EventQuery{Since: 7}, []uint64{8, 9, 10}},
		{"since last", EventQuery{Since: 10}, []uint64{}},
		{"since beyond", EventQuery{Since: 1 << 63}, []uint64{}},
		{"since max", EventQuery{Since: ^uint64(0)}, []uint64{}},
		{"challenge", EventQuery{Challenge: "b"}, []uint64{2, 4, 6, 8, 10}},
		{"challenge unknown", EventQuery{Challenge: "zzz"}, []uint64{}},
		{"limit", EventQuery{Limit: 3}, []uint64{1, 2, 3}},
		{"since+challenge+limit", EventQuery{Since: 3, Challenge: "a", Limit: 2}, []uint64{5, 7}},
		{"negative limit", EventQuery{Limit: -1}, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := s.Events(tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := seqs(evs); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("seqs = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEventsLimitCapped(t *testing.T) {
	s := openStore(t, "", Options{MaxEvents: MaxQueryEvents + 10})
	mustUpdate(t, s, func(tx *Tx) error {
		for range MaxQueryEvents + 5 {
			if _, err := tx.AppendEvent(Event{Type: "x"}); err != nil {
				return err
			}
		}
		return nil
	})
	evs, err := s.Events(EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != MaxQueryEvents {
		t.Fatalf("Events returned %d, want cap %d", len(evs), MaxQueryEvents)
	}
}

func TestSubscriberReceivesCommittedInOrder(t *testing.T) {
	s := openStore(t, "", Options{})
	sub := s.Subscribe(1000)
	defer sub.Close()

	const writers, per = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if _, err := s.AppendEvent(Event{Type: "x", Message: fmt.Sprint(w, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	// A failing Update in the mix must not publish.
	_ = s.Update(func(tx *Tx) error {
		_, _ = tx.AppendEvent(Event{Type: "never"})
		return errors.New("abort")
	})
	wg.Wait()

	for want := uint64(1); want <= writers*per; want++ {
		select {
		case e := <-sub.C:
			if e.Seq != want {
				t.Fatalf("got seq %d, want %d", e.Seq, want)
			}
			if e.Type == "never" {
				t.Fatal("event from aborted Update delivered")
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("timed out waiting for seq %d", want)
		}
	}
	select {
	case e := <-sub.C:
		t.Fatalf("unexpected extra event %+v", e)
	default:
	}
	if sub.Dropped() != 0 {
		t.Fatalf("Dropped = %d", sub.Dropped())
	}
}

func TestSlowSubscriberDoesNotBlockWriters(t *testing.T) {
	s := openStore(t, "", Options{})
	slow := s.Subscribe(1) // never read
	defer slow.Close()
	fast := s.Subscribe(200)
	defer fast.Close()

	done := make(chan error, 1)
	go func() {
		for range 100 {
			if _, err := s.AppendEvent(Event{Type: "x"}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("writers blocked by a slow subscriber")
	}
	if slow.Dropped() != 99 {
		t.Fatalf("slow Dropped = %d, want 99", slow.Dropped())
	}
	if e := <-slow.C; e.Seq != 1 {
		t.Fatalf("slow got seq %d first, want 1", e.Seq)
	}
	// The gap is recoverable from the log.
	rest, err := s.Events(EventQuery{Since: 1})
	if err != nil || len(rest) != 99 {
		t.Fatalf("refill: %d events, %v", len(rest), err)
	}
	if fast.Dropped() != 0 || len(fast.C) != 100 {
		t.Fatalf("fast subscriber: dropped %d, buffered %d", fast.Dropped(), len(fast.C))
	}
}

func TestSubscriptionClose(t *testing.T) {
	s := openStore(t, "", Options{})
	sub := s.Subscribe(4)
	sub.Close()
	sub.Close() // idempotent
	if _, ok := <-sub.C; ok {
		t.Fatal("C not closed after Close")
	}
	mustAppend(t, s, Event{Type: "x"}) // must not panic on the closed channel

	live := s.Subscribe(0)
	if cap(live.C) != DefaultSubscriptionBuffer {
		t.Fatalf("default buffer = %d", cap(live.C))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-live.C; ok {
		t.Fatal("C not closed by store Close")
	}
	live.Close()

	after := s.Subscribe(1)
	if _, ok := <-after.C; ok {
		t.Fatal("Subscribe after Close returned an open channel")
	}
	after.Close()
}
