package statestore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
)

// Backup stream layout (all lengths uvarint):
//
//	magic
//	{ 'K' keyLen key valLen value }   one per record
//	'E' count crc32c(big-endian, over every byte before it)
//
// Limits on lengths mean a corrupt stream can never force a large allocation.
const (
	backupMagic    = "berth-statestore-backup-v1\n"
	tagEntry       = 'K'
	tagEnd         = 'E'
	maxBackupKey   = 64 << 10
	maxBackupValue = 16 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Backup writes a consistent snapshot of the whole store to w. It reads from
// one transaction, so concurrent writers neither block nor tear it.
func (s *Store) Backup(w io.Writer) error {
	h := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 64<<10)
	err := s.view(func(txn *badger.Txn) error {
		if _, err := bw.WriteString(backupMagic); err != nil {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		var count uint64
		var lenBuf [binary.MaxVarintLen64]byte
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if err := bw.WriteByte(tagEntry); err != nil {
				return err
			}
			if err := writeBytes(bw, lenBuf[:], item.Key()); err != nil {
				return err
			}
			if err := item.Value(func(val []byte) error { return writeBytes(bw, lenBuf[:], val) }); err != nil {
				return err
			}
			count++
		}
		if err := bw.WriteByte(tagEnd); err != nil {
			return err
		}
		if _, err := bw.Write(binary.AppendUvarint(nil, count)); err != nil {
			return err
		}
		// Everything so far must reach h before the sum is taken.
		if err := bw.Flush(); err != nil {
			return err
		}
		_, err := w.Write(binary.BigEndian.AppendUint32(nil, h.Sum32()))
		return err
	})
	if err != nil {
		return fmt.Errorf("back up state store: %w", err)
	}
	return nil
}

func writeBytes(w *bufio.Writer, lenBuf []byte, b []byte) error {
	n := binary.PutUvarint(lenBuf, uint64(len(b)))
	if _, err := w.Write(lenBuf[:n]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

// Restore loads a stream written by Backup into an empty store and fails with
// ErrNotEmpty otherwise. It reads exactly one backup from r and stops, so r
// may continue past it. On any error the store is left empty.
func (s *Store) Restore(r io.Reader) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.state.RLock()
	defer s.state.RUnlock()
	if s.closed {
		return ErrClosed
	}
	empty, err := s.isEmpty()
	if err != nil {
		return fmt.Errorf("restore state store: %w", err)
	}
	if !empty {
		return fmt.Errorf("restore state store: %w", ErrNotEmpty)
	}

	wb := s.db.NewWriteBatch()
	set := func(k, v []byte) error {
		// Badger's in-memory mode has no value log and crashes on a value of
		// exactly its threshold; refuse instead.
		if s.inMemory && len(v) >= valueThreshold {
			return fmt.Errorf("value of %d bytes is too large for an in-memory store", len(v))
		}
		return safeErr(wb.Set(k, v))
	}
	err = readBackup(r, set)
	if err == nil {
		err = wb.Flush()
	} else {
		wb.Cancel()
	}
	if err == nil {
		err = s.loadSeq()
	}
	if err == nil {
		err = s.trimAll()
	}
	if err != nil {
		// Batches may already have committed; put the store back to empty.
		if derr := s.db.DropAll(); derr != nil {
			err = errors.Join(err, fmt.Errorf("clear partial restore: %w", derr))
		}
		_ = s.loadSeq()
		return fmt.Errorf("restore state store: %w", err)
	}
	return nil
}

func (s *Store) isEmpty() (bool, error) {
	empty := true
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		it.Rewind()
		empty = !it.Valid()
		return nil
	})
	return empty, err
}

// hashReader feeds every byte it hands out into h.
type hashReader struct {
	r   *bufio.Reader
	h   hash.Hash32
	one [1]byte
}

func (hr *hashReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	return n, err
}

func (hr *hashReader) ReadByte() (byte, error) {
	b, err := hr.r.ReadByte()
	if err == nil {
		hr.one[0] = b
		hr.h.Write(hr.one[:])
	}
	return b, err
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("backup stream: %w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// readBackup validates the stream as it goes and hands each record to set;
// the checksum is only known at the end, so the caller must undo on error.
func readBackup(r io.Reader, set func(k, v []byte) error) error {
	hr := &hashReader{r: bufio.NewReaderSize(r, 64<<10), h: crc32.New(castagnoli)}
	magic := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(hr, magic); err != nil {
		return corrupt("read header: %v", err)
	}
	if string(magic) != backupMagic {
		return corrupt("not a berth state store backup")
	}
	var count uint64
	for {
		tag, err := hr.ReadByte()
		if err != nil {
			return corrupt("truncated after %d records: %v", count, err)
		}
		switch tag {
		case tagEntry:
			key, err := readBytes(hr, maxBackupKey)
			if err != nil {
				return corrupt("record %d key: %v", count, err)
			}
			if err := checkBackupKey(key); err != nil {
				return err
			}
			val, err := readBytes(hr, maxBackupValue)
			if err != nil {
				return corrupt("record %q value: %v", key, err)
			}
			if err := set(key, val); err != nil {
				return fmt.Errorf("write record %q: %w", key, err)
			}
			count++
		case tagEnd:
			want, err := binary.ReadUvarint(hr)
			if err != nil {
				return corrupt("read trailer: %v", err)
			}
			if want != count {
				return corrupt("trailer says %d records, read %d", want, count)
			}
			sum := hr.h.Sum32()
			var crc [4]byte
			if _, err := io.ReadFull(hr.r, crc[:]); err != nil {
				return corrupt("read checksum: %v", err)
			}
			if got := binary.BigEndian.Uint32(crc[:]); got != sum {
				return corrupt("checksum mismatch: stored %08x, computed %08x", got, sum)
			}
			return nil
		default:
			return corrupt("unexpected tag 0x%02x after %d records", tag, count)
		}
	}
}

func readBytes(hr *hashReader, limit uint64) ([]byte, error) {
	n, err := binary.ReadUvarint(hr)
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("length %d exceeds limit %d", n, limit)
	}
	if n <= 64<<10 {
		b := make([]byte, n)
		_, err := io.ReadFull(hr, b)
		return b, err
	}
	// Grow with the data actually read, not the claimed length.
	var buf bytes.Buffer
	if _, err := io.CopyN(&buf, hr, int64(n)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func checkBackupKey(key []byte) error {
	k := string(key)
	for _, p := range knownPrefixes {
		if strings.HasPrefix(k, p) {
			if p == prefixEvent {
				if _, err := eventSeq(key); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return corrupt("unexpected key %q", key)
}
