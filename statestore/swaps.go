package statestore

import (
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

func swapKey(name string) []byte { return []byte(prefixSwap + name) }

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
