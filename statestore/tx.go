package statestore

import (
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Tx is one read-write transaction, valid only inside the Update callback
// that received it. It is not safe for concurrent use.
type Tx struct {
	txn    *badger.Txn
	next   uint64 // seq for the next AppendEvent in this transaction
	events []Event
	done   bool
}

// Update runs fn in one read-write transaction; all puts, deletes and
// appended events commit together or not at all. If fn returns an error it is
// returned unchanged and nothing is written. Events appended in a committed
// transaction are published to subscribers after commit, in seq order.
// Updates are serialised: fn should be quick and must not call back into the
// Store.
func (s *Store) Update(fn func(tx *Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.state.RLock()
	defer s.state.RUnlock()
	if s.closed {
		return ErrClosed
	}

	tx := &Tx{txn: s.db.NewTransaction(true), next: s.nextSeq}
	defer func() {
		tx.done = true
		tx.txn.Discard()
	}()
	if err := fn(tx); err != nil {
		return err
	}

	var trim trimResult
	if len(tx.events) > 0 {
		if err := tx.txn.Set([]byte(keyNextSeq), encodeUint64(tx.next)); err != nil {
			return fmt.Errorf("record next event seq: %w", err)
		}
		// Trimming rides in the same transaction: bounded by the number appended.
		excess := s.evCount + len(tx.events) - s.maxEvents
		var err error
		if trim, err = trimEvents(tx.txn, s.evFirst, excess); err != nil {
			return err
		}
	}
	if err := tx.txn.Commit(); err != nil {
		return fmt.Errorf("commit state store transaction: %w", safeErr(err))
	}
	if len(tx.events) > 0 {
		if s.evCount == 0 {
			s.evFirst = tx.events[0].Seq
		}
		s.evCount += len(tx.events) - trim.deleted
		if trim.deleted > 0 {
			s.evFirst = trim.nextFirst
		}
		s.nextSeq = tx.next
		s.lastSeq.Store(tx.next - 1)
		// Publishing under wmu keeps delivery in seq order across Updates.
		s.publish(tx.events)
	}
	return nil
}

// AppendEvent appends e in its own transaction and returns it with Seq and
// Time set.
func (s *Store) AppendEvent(e Event) (Event, error) {
	var out Event
	err := s.Update(func(tx *Tx) error {
		var err error
		out, err = tx.AppendEvent(e)
		return err
	})
	if err != nil {
		return Event{}, err
	}
	return out, nil
}

// PutSpec stores r under r.Name, replacing any previous record.
func (tx *Tx) PutSpec(r SpecRecord) error {
	if err := validName(r.Name); err != nil {
		return fmt.Errorf("put spec: %w", err)
	}
	return tx.put(specKey(r.Name), r)
}

// DeleteSpec removes the spec record for name; a missing record is not an error.
func (tx *Tx) DeleteSpec(name string) error { return tx.del(specKey(name)) }

// GetSpec reads the spec record for name, including this transaction's writes.
func (tx *Tx) GetSpec(name string) (r SpecRecord, ok bool, err error) {
	if tx.done {
		return r, false, ErrTxDone
	}
	ok, err = get(tx.txn, specKey(name), &r)
	return r, ok, err
}

// PutRuntime stores r under r.Name, keeping only the newest MaxRestartTimes
// restart times.
func (tx *Tx) PutRuntime(r RuntimeRecord) error {
	if err := validName(r.Name); err != nil {
		return fmt.Errorf("put runtime: %w", err)
	}
	if n := len(r.RestartTimes); n > MaxRestartTimes {
		r.RestartTimes = r.RestartTimes[n-MaxRestartTimes:]
	}
	return tx.put(runtimeKey(r.Name), r)
}

// DeleteRuntime removes the runtime record for name; a missing record is not an error.
func (tx *Tx) DeleteRuntime(name string) error { return tx.del(runtimeKey(name)) }

// GetRuntime reads the runtime record for name, including this transaction's writes.
func (tx *Tx) GetRuntime(name string) (r RuntimeRecord, ok bool, err error) {
	if tx.done {
		return r, false, ErrTxDone
	}
	ok, err = get(tx.txn, runtimeKey(name), &r)
	return r, ok, err
}

// AppendEvent adds e to the log and returns it with Seq assigned and Time set
// to now if zero. The seq only becomes final if the transaction commits.
func (tx *Tx) AppendEvent(e Event) (Event, error) {
	if tx.done {
		return Event{}, ErrTxDone
	}
	if e.Type == "" {
		return Event{}, errors.New("append event: type is empty")
	}
	e.Seq = tx.next
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	key := eventKey(e.Seq)
	val, err := encode(key, e)
	if err != nil {
		return Event{}, err
	}
	if err := tx.txn.Set(key, val); err != nil {
		return Event{}, fmt.Errorf("append event: %w", safeErr(err))
	}
	tx.next++
	tx.events = append(tx.events, e)
	return e, nil
}

func (tx *Tx) put(key []byte, v any) error {
	if tx.done {
		return ErrTxDone
	}
	val, err := encode(key, v)
	if err != nil {
		return err
	}
	return tx.setRaw(key, val)
}

// setRaw stores val as is; the error names the key and size, never the value.
func (tx *Tx) setRaw(key, val []byte) error {
	if tx.done {
		return ErrTxDone
	}
	if err := tx.txn.Set(key, val); err != nil {
		return fmt.Errorf("write record %q (%d bytes): %w", key, len(val), safeErr(err))
	}
	return nil
}

func (tx *Tx) del(key []byte) error {
	if tx.done {
		return ErrTxDone
	}
	if err := tx.txn.Delete(key); err != nil {
		return fmt.Errorf("delete record %q: %w", key, safeErr(err))
	}
	return nil
}
