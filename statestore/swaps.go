package statestore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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

// Snapshot is challenge state exported during a swap.
type Snapshot struct {
	Challenge string    `json:"challenge"`
	Version   string    `json:"version"`
	Data      []byte    `json:"data"`
	SHA256    string    `json:"sha256"`
	Created   time.Time `json:"created"`
}

func swapKey(name string) []byte { return []byte(prefixSwap + name) }

func snapPrefix(name string) string { return prefixSnap + name + "/" }

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

// PutSnapshot stores a checksummed snapshot and keeps the newest SnapshotsKept.
func (s *Store) PutSnapshot(snap Snapshot) (Snapshot, error) {
	if len(snap.Data) > MaxSnapshotBytes {
		return snap, fmt.Errorf("state snapshot of %s is %d bytes, more than the limit of %d", snap.Challenge, len(snap.Data), MaxSnapshotBytes)
	}
	if snap.Created.IsZero() {
		snap.Created = time.Now()
	}
	sum := sha256.Sum256(snap.Data)
	snap.SHA256 = hex.EncodeToString(sum[:])
	key := fmt.Sprintf("%s%020d", snapPrefix(snap.Challenge), snap.Created.UnixNano())
	err := s.Update(func(tx *Tx) error {
		if err := validName(snap.Challenge); err != nil {
			return err
		}
		if err := tx.put([]byte(key), snap); err != nil {
			return err
		}
		keys, err := tx.keys(snapPrefix(snap.Challenge))
		if err != nil {
			return err
		}
		for len(keys) > SnapshotsKept {
			if err := tx.del(keys[0]); err != nil {
				return err
			}
			keys = keys[1:]
		}
		return nil
	})
	return snap, err
}

// LatestSnapshot returns the newest snapshot of a challenge whose checksum holds.
func (s *Store) LatestSnapshot(name string) (Snapshot, bool, error) {
	snaps, err := list[Snapshot](s, snapPrefix(name))
	if err != nil {
		return Snapshot{}, false, err
	}
	for i := len(snaps) - 1; i >= 0; i-- {
		sum := sha256.Sum256(snaps[i].Data)
		if hex.EncodeToString(sum[:]) == snaps[i].SHA256 {
			return snaps[i], true, nil
		}
	}
	return Snapshot{}, false, nil
}

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
