package statestore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// SwapPlan is a version swap in progress, written before each phase so a
// berth that crashed mid-swap can roll it back or complete it.
type SwapPlan struct {
	ID            string    `json:"id"`
	Challenge     string    `json:"challenge"`
	Phase         string    `json:"phase"`
	From          string    `json:"from"`
	To            string    `json:"to"`
	Delta         string    `json:"delta,omitempty"` // major, minor, patch, downgrade, same or other
	FromSlot      string    `json:"from_slot"`
	ToSlot        string    `json:"to_slot"`
	ToContainerID string    `json:"to_container_id,omitempty"`
	CutOver       bool      `json:"cut_over"`
	Error         string    `json:"error,omitempty"`
	StartedAt     time.Time `json:"started_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// MaxSnapshotBytes caps one state snapshot.
const MaxSnapshotBytes = 16 << 20

// SnapshotsKept is how many snapshots are kept per challenge.
const SnapshotsKept = 5

// snapChunkBytes is the size of the raw chunks a snapshot's bytes are stored
// in on disk. It equals the store's value threshold: full chunks live in
// Badger's value log and only the last, shorter one inline, so a 16 MiB
// snapshot exceeds neither Badger's value limit nor its transaction size.
// The in-memory store (tests) has no value log and takes chunks one byte
// smaller, so it holds snapshots up to about 1 MiB.
const snapChunkBytes = valueThreshold

// maxSnapChunks bounds the chunk count a record may claim.
const maxSnapChunks = MaxSnapshotBytes/(snapChunkBytes-1) + 1

func (s *Store) snapChunkSize() int {
	if s.inMemory {
		return snapChunkBytes - 1
	}
	return snapChunkBytes
}

// Snapshot is challenge state exported during a swap.
type Snapshot struct {
	Challenge string `json:"challenge"`
	Version   string `json:"version"`
	// Data is the state itself. It is stored raw in chunks beside the
	// record; records written before chunking carry it inline.
	Data    []byte    `json:"data,omitempty"`
	SHA256  string    `json:"sha256"`
	Created time.Time `json:"created"`
	Bytes   int       `json:"bytes"`
	Chunks  int       `json:"chunks,omitempty"`
}

func swapKey(name string) []byte { return []byte(prefixSwap + name) }

func snapPrefix(name string) string { return prefixSnap + name + "/" }

// snapKey is a snapshot's record; its chunks live under snapDataPrefix with
// the same suffix, outside snapPrefix, so listing records never reads data.
func snapKey(name string, created time.Time) string {
	return fmt.Sprintf("%s%020d", snapPrefix(name), created.UnixNano())
}

func snapDataPrefix(recordKey []byte) string {
	return prefixSnapData + strings.TrimPrefix(string(recordKey), prefixSnap) + "/"
}

func snapChunkKey(recordKey []byte, i int) []byte {
	return []byte(fmt.Sprintf("%s%06d", snapDataPrefix(recordKey), i))
}

// PutSwap stores the plan under its challenge name.
func (tx *Tx) PutSwap(p SwapPlan) error {
	if err := validName(p.Challenge); err != nil {
		return fmt.Errorf("put swap: %w", err)
	}
	return tx.put(swapKey(p.Challenge), p)
}

// DeleteSwap removes a challenge's plan; a missing plan is not an error.
func (tx *Tx) DeleteSwap(name string) error { return tx.del(swapKey(name)) }

// ListSwaps returns every persisted plan, in challenge name order.
func (s *Store) ListSwaps() ([]SwapPlan, error) { return list[SwapPlan](s, prefixSwap) }

// GetSwap reads a challenge's plan.
func (s *Store) GetSwap(name string) (p SwapPlan, ok bool, err error) {
	err = s.view(func(txn *badger.Txn) error {
		ok, err = get(txn, swapKey(name), &p)
		return err
	})
	return p, ok, err
}

// PutSnapshot stores a checksummed snapshot and keeps the newest
// SnapshotsKept. The returned Snapshot carries its record fields; errors never
// include the data.
func (s *Store) PutSnapshot(snap Snapshot) (Snapshot, error) {
	if len(snap.Data) > MaxSnapshotBytes {
		return snap, fmt.Errorf("state snapshot of %s is %d bytes, more than the limit of %d", snap.Challenge, len(snap.Data), MaxSnapshotBytes)
	}
	if snap.Created.IsZero() {
		snap.Created = time.Now()
	}
	sum := sha256.Sum256(snap.Data)
	snap.SHA256 = hex.EncodeToString(sum[:])
	snap.Bytes = len(snap.Data)
	size := s.snapChunkSize()
	snap.Chunks = (len(snap.Data) + size - 1) / size
	data := snap.Data
	rec := snap
	rec.Data = nil
	key := []byte(snapKey(snap.Challenge, snap.Created))
	err := s.Update(func(tx *Tx) error {
		if err := validName(snap.Challenge); err != nil {
			return err
		}
		// A record with the same key is replaced whole, chunks included.
		if err := tx.deleteSnapshot(key); err != nil {
			return err
		}
		for i := 0; i < rec.Chunks; i++ {
			chunk := data[i*size : min(len(data), (i+1)*size)]
			if err := tx.setRaw(snapChunkKey(key, i), chunk); err != nil {
				return err
			}
		}
		if err := tx.put(key, rec); err != nil {
			return err
		}
		keys, err := tx.keys(snapPrefix(snap.Challenge))
		if err != nil {
			return err
		}
		for len(keys) > SnapshotsKept {
			if err := tx.deleteSnapshot(keys[0]); err != nil {
				return err
			}
			keys = keys[1:]
		}
		return nil
	})
	if err != nil {
		return snap, fmt.Errorf("store state snapshot of %s (%d bytes): %w", snap.Challenge, len(data), err)
	}
	return snap, nil
}

// deleteSnapshot removes a snapshot record and its chunks.
func (tx *Tx) deleteSnapshot(recordKey []byte) error {
	chunks, err := tx.keys(snapDataPrefix(recordKey))
	if err != nil {
		return err
	}
	for _, k := range chunks {
		if err := tx.del(k); err != nil {
			return err
		}
	}
	return tx.del(recordKey)
}

// LatestSnapshot returns the newest snapshot of a challenge whose checksum holds.
func (s *Store) LatestSnapshot(name string) (Snapshot, bool, error) {
	var out Snapshot
	found := false
	err := s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(snapPrefix(name)), Reverse: true})
		defer it.Close()
		// A reverse iteration starts at the greatest key up to the seek key.
		for it.Seek([]byte(snapPrefix(name) + "~")); it.Valid(); it.Next() {
			item := it.Item()
			var snap Snapshot
			if err := item.Value(func(val []byte) error { return decode(item.Key(), val, &snap) }); err != nil {
				return err
			}
			if snap.Chunks > 0 {
				data, err := readChunks(txn, item.KeyCopy(nil), snap)
				if err != nil {
					return err
				}
				snap.Data = data
			}
			sum := sha256.Sum256(snap.Data)
			if hex.EncodeToString(sum[:]) == snap.SHA256 {
				snap.Bytes = len(snap.Data)
				out, found = snap, true
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return Snapshot{}, false, err
	}
	return out, found, nil
}

// readChunks joins a snapshot's chunks; missing chunks or a wrong length
// leave a short result that the checksum then rejects.
func readChunks(txn *badger.Txn, recordKey []byte, snap Snapshot) ([]byte, error) {
	if snap.Bytes < 0 || snap.Bytes > MaxSnapshotBytes || snap.Chunks > maxSnapChunks {
		return nil, nil
	}
	data := make([]byte, 0, snap.Bytes)
	for i := 0; i < snap.Chunks; i++ {
		k := snapChunkKey(recordKey, i)
		item, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read record %q: %w", k, safeErr(err))
		}
		if err := item.Value(func(val []byte) error {
			if len(data)+len(val) > snap.Bytes {
				return errTooLong
			}
			data = append(data, val...)
			return nil
		}); errors.Is(err, errTooLong) {
			return nil, nil
		} else if err != nil {
			return nil, fmt.Errorf("read record %q: %w", k, safeErr(err))
		}
	}
	return data, nil
}

var errTooLong = errors.New("snapshot chunks longer than the record says")

// keys lists the keys under prefix in byte order.
func (tx *Tx) keys(prefix string) ([][]byte, error) {
	if tx.done {
		return nil, ErrTxDone
	}
	it := tx.txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
	defer it.Close()
	var out [][]byte
	for it.Rewind(); it.Valid(); it.Next() {
		out = append(out, it.Item().KeyCopy(nil))
	}
	return out, nil
}
