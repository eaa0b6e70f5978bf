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

// MaxSnapshotBytes caps one state snapshot.
const MaxSnapshotBytes = 16 << 20

// SnapshotsKept is how many snapshots are kept per challenge unless the
// challenge says otherwise; MaxSnapshotsKept bounds what it may say.
const (
	SnapshotsKept    = 5
	MaxSnapshotsKept = 100
)

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

// Snapshot is challenge state exported from a container.
type Snapshot struct {
	Challenge string `json:"challenge"`
	// Seq numbers a challenge's snapshots from 1 in the order they were
	// taken; 0 marks one stored before snapshots were numbered.
	Seq     uint64 `json:"seq,omitempty"`
	Version string `json:"version"`
	// Data is the state itself. It is stored raw in chunks beside the
	// record; records written before chunking carry it inline. Listings
	// leave it out.
	Data    []byte    `json:"data,omitempty"`
	SHA256  string    `json:"sha256"`
	Created time.Time `json:"created"`
	Bytes   int       `json:"bytes"`
	Chunks  int       `json:"chunks,omitempty"`
}

// ErrNoSnapshot: no snapshot of that challenge has that number.
var ErrNoSnapshot = errors.New("no such snapshot")

// ErrSnapshotCorrupt: a snapshot's bytes no longer match its checksum.
var ErrSnapshotCorrupt = errors.New("snapshot does not match its checksum")

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

// PutSnapshot stores a checksummed snapshot, numbered after the newest one,
// and keeps the newest keep (SnapshotsKept when keep is 0). The returned
// Snapshot carries its record fields; errors never include the data.
func (s *Store) PutSnapshot(snap Snapshot, keep int) (Snapshot, error) {
	if len(snap.Data) > MaxSnapshotBytes {
		return snap, fmt.Errorf("state snapshot of %s is %d bytes, more than the limit of %d", snap.Challenge, len(snap.Data), MaxSnapshotBytes)
	}
	if keep <= 0 {
		keep = SnapshotsKept
	}
	keep = min(keep, MaxSnapshotsKept)
	if snap.Created.IsZero() {
		snap.Created = time.Now()
	}
	sum := sha256.Sum256(snap.Data)
	snap.SHA256 = hex.EncodeToString(sum[:])
	snap.Bytes = len(snap.Data)
	size := s.snapChunkSize()
	snap.Chunks = (len(snap.Data) + size - 1) / size
	data := snap.Data
	key := []byte(snapKey(snap.Challenge, snap.Created))
	err := s.Update(func(tx *Tx) error {
		if err := validName(snap.Challenge); err != nil {
			return err
		}
		// A record with the same key is replaced whole, chunks included.
		if err := tx.deleteSnapshot(key); err != nil {
			return err
		}
		last, err := tx.lastSnapshotSeq(snap.Challenge)
		if err != nil {
			return err
		}
		snap.Seq = last + 1
		for i := 0; i < snap.Chunks; i++ {
			chunk := data[i*size : min(len(data), (i+1)*size)]
			if err := tx.setRaw(snapChunkKey(key, i), chunk); err != nil {
				return err
			}
		}
		rec := snap
		rec.Data = nil
		if err := tx.put(key, rec); err != nil {
			return err
		}
		keys, err := tx.keys(snapPrefix(snap.Challenge))
		if err != nil {
			return err
		}
		for len(keys) > keep {
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
	snap.Data = data
	return snap, nil
}

// lastSnapshotSeq is the highest number among name's snapshots, 0 for none.
func (tx *Tx) lastSnapshotSeq(name string) (uint64, error) {
	if tx.done {
		return 0, ErrTxDone
	}
	var last uint64
	err := eachSnapshotRecord(tx.txn, name, false, func(_ []byte, rec Snapshot) (bool, error) {
		last = max(last, rec.Seq)
		return true, nil
	})
	return last, err
}

// eachSnapshotRecord visits name's snapshot records (without their data),
// oldest first or newest first, until fn says stop.
func eachSnapshotRecord(txn *badger.Txn, name string, newestFirst bool, fn func(key []byte, rec Snapshot) (bool, error)) error {
	prefix := []byte(snapPrefix(name))
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: newestFirst})
	defer it.Close()
	if newestFirst {
		// A reverse iteration starts at the greatest key up to the seek key.
		it.Seek(append(prefix, '~'))
	} else {
		it.Rewind()
	}
	for ; it.Valid(); it.Next() {
		item := it.Item()
		var rec Snapshot
		if err := item.Value(func(val []byte) error { return decode(item.Key(), val, &rec) }); err != nil {
			return err
		}
		more, err := fn(item.KeyCopy(nil), rec)
		if err != nil || !more {
			return err
		}
	}
	return nil
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

// Snapshots lists name's snapshots newest first, without their data.
func (s *Store) Snapshots(name string) ([]Snapshot, error) {
	var out []Snapshot
	err := s.view(func(txn *badger.Txn) error {
		return eachSnapshotRecord(txn, name, true, func(_ []byte, rec Snapshot) (bool, error) {
			rec.Data = nil
			out = append(out, rec)
			return true, nil
		})
	})
	return out, err
}

// SnapshotBySeq returns snapshot seq of name with its data; ErrNoSnapshot
// when there is none, ErrSnapshotCorrupt when its bytes fail the checksum.
func (s *Store) SnapshotBySeq(name string, seq uint64) (Snapshot, error) {
	var out Snapshot
	found := false
	err := s.view(func(txn *badger.Txn) error {
		return eachSnapshotRecord(txn, name, true, func(key []byte, rec Snapshot) (bool, error) {
			if seq == 0 || rec.Seq != seq {
				return true, nil
			}
			found = true
			snap, ok, err := withData(txn, key, rec)
			if err != nil {
				return false, err
			}
			if !ok {
				return false, fmt.Errorf("snapshot %d of %s: %w", seq, name, ErrSnapshotCorrupt)
			}
			out = snap
			return false, nil
		})
	})
	if err == nil && !found {
		err = fmt.Errorf("snapshot %d of %s: %w", seq, name, ErrNoSnapshot)
	}
	return out, err
}

// SnapshotPick is the snapshot NewestSnapshot chose and the newer ones it
// passed over because their bytes failed the checksum.
type SnapshotPick struct {
	Snapshot Snapshot
	Found    bool
	Corrupt  []uint64
}

// NewestSnapshot returns the newest snapshot of name that usable accepts
// (nil accepts any) and whose checksum holds; a corrupt one is skipped for
// the next older.
func (s *Store) NewestSnapshot(name string, usable func(Snapshot) bool) (SnapshotPick, error) {
	var pick SnapshotPick
	err := s.view(func(txn *badger.Txn) error {
		return eachSnapshotRecord(txn, name, true, func(key []byte, rec Snapshot) (bool, error) {
			if usable != nil && !usable(rec) {
				return true, nil
			}
			snap, ok, err := withData(txn, key, rec)
			if err != nil {
				return false, err
			}
			if !ok {
				pick.Corrupt = append(pick.Corrupt, rec.Seq)
				return true, nil
			}
			pick.Snapshot, pick.Found = snap, true
			return false, nil
		})
	})
	if err != nil {
		return SnapshotPick{}, err
	}
	return pick, nil
}

// LatestSnapshot returns the newest snapshot of a challenge whose checksum holds.
func (s *Store) LatestSnapshot(name string) (Snapshot, bool, error) {
	pick, err := s.NewestSnapshot(name, nil)
	return pick.Snapshot, pick.Found, err
}

// withData reads rec's bytes; ok is false when they fail its checksum.
func withData(txn *badger.Txn, key []byte, rec Snapshot) (Snapshot, bool, error) {
	if rec.Chunks > 0 {
		data, err := readChunks(txn, key, rec)
		if err != nil {
			return Snapshot{}, false, err
		}
		rec.Data = data
	}
	sum := sha256.Sum256(rec.Data)
	if hex.EncodeToString(sum[:]) != rec.SHA256 {
		return Snapshot{}, false, nil
	}
	rec.Bytes = len(rec.Data)
	return rec, true, nil
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
