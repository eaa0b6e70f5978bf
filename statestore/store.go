package statestore

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// DefaultMaxEvents is the event log bound when Options.MaxEvents is zero.
const DefaultMaxEvents = 10000

// Options configures Open.
type Options struct {
	MaxEvents int  // event log bound, default DefaultMaxEvents; oldest trimmed
	InMemory  bool // keep everything in memory (tests); dir is ignored
}

// Store is berth's state database. It is safe for concurrent use; writes are
// serialised.
type Store struct {
	dir       string
	maxEvents int
	inMemory  bool

	// wmu serialises writers (Update, Restore) and guards the seq bookkeeping.
	wmu     sync.Mutex
	nextSeq uint64 // seq the next appended event gets
	evFirst uint64 // lowest retained event seq (seek hint for trimming)
	evCount int    // retained events

	// lastSeq mirrors nextSeq-1 so LastSeq never waits behind a writer.
	lastSeq atomic.Uint64

	// state guards db against Close: operations hold it shared, Close exclusively.
	state    sync.RWMutex
	closed   bool
	db       *badger.DB
	dbClosed chan error // the database's close result, once Close began it

	subMu      sync.Mutex
	subs       map[*Subscription]struct{}
	subsClosed bool
}

// Open opens (creating if needed) the store in dir. A directory held by
// another process fails with an error wrapping ErrLocked.
func Open(dir string, opts Options) (*Store, error) {
	if opts.MaxEvents < 0 {
		return nil, fmt.Errorf("open state store at %s: max events must not be negative", dir)
	}
	if opts.MaxEvents == 0 {
		opts.MaxEvents = DefaultMaxEvents
	}
	bopts := badgerOptions(dir, opts.InMemory)
	db, err := badger.Open(bopts)
	if err != nil {
		// Badger flattens the flock error to text, so match its message.
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, fmt.Errorf("open state store at %s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("open state store at %s: %w", dir, err)
	}
	s := &Store{
		dir:       dir,
		maxEvents: opts.MaxEvents,
		inMemory:  opts.InMemory,
		db:        db,
		subs:      make(map[*Subscription]struct{}),
	}
	err = s.loadSeq()
	if err == nil {
		err = s.trimAll()
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open state store at %s: %w", dir, err)
	}
	return s, nil
}

// valueThreshold is the value size from which Badger keeps values in its
// value log rather than in the LSM tree (and the largest value the in-memory
// store accepts); it is Badger's default, pinned here because snapshot
// chunks are sized by it. A transaction may carry at most 15% of the
// memtable (1.2 MiB) inline, so one value below the threshold fits.
const valueThreshold = 1 << 20

// badgerOptions sizes Badger for berth's data, which is a few hundred
// records and a bounded log: small memtables and caches keep RSS low.
func badgerOptions(dir string, inMemory bool) badger.Options {
	if inMemory {
		dir = ""
	}
	return badger.DefaultOptions(dir).
		WithInMemory(inMemory).
		WithLogger(nil).
		// A transition must be on disk before berth acts on it.
		WithSyncWrites(!inMemory).
		WithMetricsEnabled(false).
		WithNumMemtables(2).
		WithMemTableSize(8 << 20).
		WithValueLogFileSize(16 << 20).
		WithValueThreshold(valueThreshold).
		WithBaseTableSize(1 << 20).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithBlockCacheSize(4 << 20).
		WithIndexCacheSize(2 << 20)
}

// closeTimeout bounds Close: Badger retries a failing memtable flush every
// second for ever (the data dir removed or unwritable under berth), and
// berth must still exit.
var closeTimeout = 30 * time.Second

// Close closes all subscriptions and the database. It waits for in-flight
// operations to finish, up to closeTimeout. Calling Close again returns
// ErrClosed.
func (s *Store) Close() error {
	s.state.Lock()
	defer s.state.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	s.closeSubs()
	s.dbClosed = make(chan error, 1)
	go func() { s.dbClosed <- s.db.Close() }()
	select {
	case err := <-s.dbClosed:
		if err != nil {
			return fmt.Errorf("close state store at %s: %w", s.dir, err)
		}
		return nil
	case <-time.After(closeTimeout):
		return fmt.Errorf("close state store at %s: not closed after %s; is the data dir still there and writable?", s.dir, closeTimeout)
	}
}

// Check is a cheap health check: it runs one read transaction.
func (s *Store) Check() error {
	return s.view(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte(keyNextSeq))
		if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("state store check: %w", err)
		}
		return nil
	})
}

// LastSeq is the seq of the newest committed event, 0 if none ever was.
func (s *Store) LastSeq() uint64 { return s.lastSeq.Load() }

// view runs fn in a read transaction unless the store is closed.
func (s *Store) view(fn func(txn *badger.Txn) error) error {
	s.state.RLock()
	defer s.state.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.View(fn)
}

// GetSpec returns the spec record for name; ok is false if there is none.
func (s *Store) GetSpec(name string) (r SpecRecord, ok bool, err error) {
	err = s.view(func(txn *badger.Txn) error {
		ok, err = get(txn, specKey(name), &r)
		return err
	})
	return r, ok, err
}

// ListSpecs returns all spec records sorted by name.
func (s *Store) ListSpecs() ([]SpecRecord, error) {
	return list[SpecRecord](s, prefixSpec)
}

// GetRuntime returns the runtime record for name; ok is false if there is none.
func (s *Store) GetRuntime(name string) (r RuntimeRecord, ok bool, err error) {
	err = s.view(func(txn *badger.Txn) error {
		ok, err = get(txn, runtimeKey(name), &r)
		return err
	})
	return r, ok, err
}

// ListRuntime returns all runtime records sorted by name.
func (s *Store) ListRuntime() ([]RuntimeRecord, error) {
	return list[RuntimeRecord](s, prefixRuntime)
}

func get(txn *badger.Txn, key []byte, v any) (bool, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read record %q: %w", key, safeErr(err))
	}
	if err := item.Value(func(val []byte) error { return decode(key, val, v) }); err != nil {
		return false, err
	}
	return true, nil
}

// list relies on Badger's byte-ordered keys for the sort by name.
func list[T any](s *Store, prefix string) ([]T, error) {
	out := make([]T, 0)
	err := s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{
			PrefetchValues: true,
			PrefetchSize:   16,
			Prefix:         []byte(prefix),
		})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			var v T
			if err := item.Value(func(val []byte) error { return decode(item.Key(), val, &v) }); err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
