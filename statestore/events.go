package statestore

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"

	badger "github.com/dgraph-io/badger/v4"
)

// MaxQueryEvents caps one Events call; page with Since for more.
const MaxQueryEvents = 10000

// trimChunk bounds the deletes of one transaction when Open or Restore
// shrinks a log that outgrew MaxEvents.
const trimChunk = 1000

// EventQuery selects events with Seq > Since, optionally for one challenge.
// Limit 0 (or above MaxQueryEvents) means MaxQueryEvents.
type EventQuery struct {
	Since     uint64
	Challenge string
	Limit     int
}

// Events returns matching events in ascending seq order.
func (s *Store) Events(q EventQuery) ([]Event, error) {
	limit := q.Limit
	if limit <= 0 || limit > MaxQueryEvents {
		limit = MaxQueryEvents
	}
	out := make([]Event, 0)
	if q.Since == math.MaxUint64 {
		return out, nil
	}
	err := s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{
			PrefetchValues: true,
			PrefetchSize:   64,
			Prefix:         []byte(prefixEvent),
		})
		defer it.Close()
		for it.Seek(eventKey(q.Since + 1)); it.Valid() && len(out) < limit; it.Next() {
			item := it.Item()
			var e Event
			err := item.Value(func(val []byte) error {
				var err error
				e, err = decodeEvent(item.Key(), val)
				return err
			})
			if err != nil {
				return err
			}
			if q.Challenge != "" && e.Challenge != q.Challenge {
				continue
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// loadSeq restores the seq bookkeeping from disk. next_seq outlives trimmed
// events; the newest event key covers stores written before it existed.
func (s *Store) loadSeq() error {
	var next, first uint64
	count := 0
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyNextSeq))
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("read %q: %w", keyNextSeq, err)
		default:
			if err := item.Value(func(val []byte) error {
				var err error
				next, err = decodeUint64(item.Key(), val)
				return err
			}); err != nil {
				return err
			}
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixEvent)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			seq, err := eventSeq(it.Item().Key())
			if err != nil {
				return err
			}
			if count == 0 {
				first = seq
			}
			count++
			if seq >= next {
				next = seq + 1
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if next == 0 {
		next = 1
	}
	if count == 0 {
		first = next
	}
	s.nextSeq, s.evFirst, s.evCount = next, first, count
	s.lastSeq.Store(next - 1)
	return nil
}

type trimResult struct {
	deleted   int
	nextFirst uint64 // seq after the last deleted event
}

// trimEvents deletes the oldest n events, seeking from first.
func trimEvents(txn *badger.Txn, first uint64, n int) (trimResult, error) {
	var res trimResult
	if n <= 0 {
		return res, nil
	}
	var keys [][]byte
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixEvent)})
	for it.Seek(eventKey(first)); it.Valid() && len(keys) < n; it.Next() {
		keys = append(keys, it.Item().KeyCopy(nil))
	}
	it.Close()
	for _, k := range keys {
		seq, err := eventSeq(k)
		if err != nil {
			return trimResult{}, err
		}
		if err := txn.Delete(k); err != nil {
			return trimResult{}, fmt.Errorf("trim event log: %w", err)
		}
		res.deleted++
		res.nextFirst = seq + 1
	}
	return res, nil
}

// trimAll brings the log within maxEvents, a chunk per transaction, for logs
// written under a larger bound. The caller holds wmu or owns the store.
func (s *Store) trimAll() error {
	for s.evCount > s.maxEvents {
		n := min(s.evCount-s.maxEvents, trimChunk)
		txn := s.db.NewTransaction(true)
		res, err := trimEvents(txn, s.evFirst, n)
		if err == nil {
			err = txn.Commit()
		}
		txn.Discard()
		if err != nil {
			return fmt.Errorf("trim event log: %w", err)
		}
		if res.deleted == 0 {
			// The count disagrees with what is stored; recount rather than spin.
			return s.loadSeq()
		}
		s.evCount -= res.deleted
		s.evFirst = res.nextFirst
	}
	return nil
}

// Subscription receives events committed after Subscribe returned. C is
// closed by Close or when the Store closes.
//
// Delivery never blocks writers: when C's buffer is full the event is dropped
// for this subscriber and counted in Dropped. Consumers detect the gap from
// Seq (each event's Seq is exactly one more than the previous committed one)
// and fill it with Store.Events(EventQuery{Since: lastSeenSeq}).
type Subscription struct {
	C <-chan Event

	c       chan Event // send side; guarded by store.subMu
	store   *Store
	dropped atomic.Uint64
}

// DefaultSubscriptionBuffer is used when Subscribe is given buffer <= 0.
const DefaultSubscriptionBuffer = 64

// Subscribe registers a subscriber with the given channel buffer. After the
// store is closed it returns a subscription whose C is already closed.
func (s *Store) Subscribe(buffer int) *Subscription {
	if buffer <= 0 {
		buffer = DefaultSubscriptionBuffer
	}
	c := make(chan Event, buffer)
	sub := &Subscription{C: c, c: c, store: s}
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if s.subsClosed {
		close(c)
		return sub
	}
	s.subs[sub] = struct{}{}
	return sub
}

// Close unregisters the subscription and closes C. It is idempotent.
func (sub *Subscription) Close() {
	s := sub.store
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if _, ok := s.subs[sub]; ok {
		delete(s.subs, sub)
		close(sub.c)
	}
}

// Dropped counts events this subscriber missed because its buffer was full.
func (sub *Subscription) Dropped() uint64 { return sub.dropped.Load() }

func (s *Store) publish(events []Event) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for sub := range s.subs {
		for _, e := range events {
			select {
			case sub.c <- e:
			default:
				sub.dropped.Add(1)
			}
		}
	}
}

func (s *Store) closeSubs() {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	s.subsClosed = true
	for sub := range s.subs {
		delete(s.subs, sub)
		close(sub.c)
	}
}
