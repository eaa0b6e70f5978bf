package statestore

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Checkpoint file layout, integers big-endian:
//
//	offset  size  field
//	     0     8  magic "BERTHCKP"
//	     8     2  format version (1)
//	    10     2  flags (0)
//	    12     8  sequence
//	    20     8  created, unix nanoseconds
//	    28     8  payload length
//	    36     8  events: the store's LastSeq in the snapshot (informational)
//	    44    32  SHA-256 of the payload
//	    76     …  payload: one Backup stream
//
// A file is exactly 76 bytes plus the payload length. The hash covers only
// the payload; the sequence is cross-checked against the file name
// checkpoint-<sequence, 20 digits>.ckpt.
const (
	CheckpointMagic         = "BERTHCKP"
	CheckpointFormatVersion = 1
	// MaxCheckpointPayload bounds the declared payload length; readers refuse
	// larger values before reading or allocating anything.
	MaxCheckpointPayload = 1 << 30
)

const (
	checkpointHeaderSize  = 76
	checkpointPrefix      = "checkpoint-"
	checkpointSuffix      = ".ckpt"
	checkpointTempPrefix  = ".checkpoint-"
	checkpointTempSuffix  = ".tmp"
	checkpointReadBufSize = 64 << 10 // matches readBackup's, so it reuses ours
)

// ErrNoCheckpoint is returned by NewestValidCheckpoint when no file verifies.
var ErrNoCheckpoint = errors.New("no valid checkpoint")

// CheckpointInfo describes one checkpoint file.
type CheckpointInfo struct {
	Path     string    `json:"path"`
	Sequence uint64    `json:"sequence"`
	Created  time.Time `json:"created"`
	Bytes    int64     `json:"bytes"`  // whole file size
	SHA256   string    `json:"sha256"` // hex of the payload hash
	Events   uint64    `json:"events"` // LastSeq of the store at write time (informational)
}

// CheckpointEntry is one file found by ListCheckpoints. When Err is set only
// Path, Sequence (from the file name) and Bytes are meaningful.
type CheckpointEntry struct {
	CheckpointInfo
	Err error `json:"-"`
}

// checkpointMu serialises WriteCheckpoint process-wide: choosing the next
// sequence and pruning both read the directory, so writers must not interleave.
var checkpointMu sync.Mutex

// WriteCheckpoint snapshots s into dir (created 0700 if missing) as
// checkpoint-<seq>.ckpt, where seq is one more than the highest sequence
// named in dir, valid or not, so a sequence is never reused. It then keeps the
// keep newest valid files (at least 1) and removes everything older.
// Concurrent calls are serialised; writers of s wait only until the snapshot
// transaction is open. Do not call it from an Update callback.
//
// If writing fails, the temp file is removed and nothing else changes. If only
// the pruning fails, the new checkpoint is in place: its info is returned
// along with the error.
func (s *Store) WriteCheckpoint(dir string, keep int) (CheckpointInfo, error) {
	keep = max(keep, 1)
	checkpointMu.Lock()
	defer checkpointMu.Unlock()

	info, err := s.writeCheckpoint(dir)
	if err != nil {
		return CheckpointInfo{}, fmt.Errorf("write checkpoint in %s: %w", dir, err)
	}
	if err := pruneCheckpoints(dir, info.Sequence, keep); err != nil {
		return info, fmt.Errorf("checkpoint %s written, but removing older checkpoints failed: %w", info.Path, err)
	}
	return info, nil
}

func (s *Store) writeCheckpoint(dir string) (info CheckpointInfo, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return info, err
	}
	files, err := checkpointFiles(dir)
	if err != nil {
		return info, err
	}
	var high uint64
	for _, f := range files {
		if f.named {
			high = max(high, f.seq)
		}
	}
	if high == math.MaxUint64 {
		return info, errors.New("checkpoint sequence exhausted")
	}
	seq := high + 1
	final := filepath.Join(dir, checkpointName(seq))

	f, err := os.CreateTemp(dir, checkpointTempPrefix+"*"+checkpointTempSuffix)
	if err != nil {
		return info, err
	}
	tmp, closed := f.Name(), false
	defer func() {
		if err != nil {
			if !closed {
				_ = f.Close()
			}
			_ = os.Remove(tmp)
		}
	}()

	// Placeholder header; the real one needs the payload's length and hash.
	if _, err = f.Write(make([]byte, checkpointHeaderSize)); err != nil {
		return info, err
	}
	pw := &payloadWriter{w: f, h: sha256.New()}
	events, err := s.checkpointPayload(pw)
	if err != nil {
		return info, err
	}
	hdr := checkpointHeader{
		version: CheckpointFormatVersion,
		seq:     seq,
		created: time.Now().UnixNano(),
		length:  uint64(pw.n),
		events:  events,
	}
	pw.h.Sum(hdr.sum[:0])
	if _, err = f.WriteAt(hdr.marshal(), 0); err != nil {
		return info, err
	}
	if err = f.Sync(); err != nil {
		return info, err
	}
	closed = true
	if err = f.Close(); err != nil {
		return info, err
	}
	if err = os.Rename(tmp, final); err != nil {
		return info, err
	}
	if err = syncDir(dir); err != nil {
		// Not known to be durable: take it back so the sequence does not advance.
		_ = os.Remove(final)
		return info, err
	}
	return hdr.info(final, checkpointHeaderSize+pw.n), nil
}

// checkpointPayload runs Backup into w and returns the LastSeq its snapshot
// holds. Writers are held off from reading LastSeq until Backup emits its
// first byte: by then its read transaction is open, so no commit can fall in
// between.
func (s *Store) checkpointPayload(w io.Writer) (uint64, error) {
	s.wmu.Lock()
	held := true
	release := func() {
		if held {
			held = false
			s.wmu.Unlock()
		}
	}
	defer release()
	events := s.lastSeq.Load()
	if err := s.Backup(&releaseOnWrite{w: w, release: release}); err != nil {
		return 0, err
	}
	return events, nil
}

type releaseOnWrite struct {
	w       io.Writer
	release func()
}

func (r *releaseOnWrite) Write(p []byte) (int, error) {
	r.release()
	return r.w.Write(p)
}

// payloadWriter hashes and counts the payload and refuses to grow it past
// MaxCheckpointPayload.
type payloadWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (p *payloadWriter) Write(b []byte) (int, error) {
	if p.n+int64(len(b)) > MaxCheckpointPayload {
		return 0, fmt.Errorf("state store snapshot exceeds the checkpoint limit of %d bytes", MaxCheckpointPayload)
	}
	n, err := p.w.Write(b)
	p.h.Write(b[:n])
	p.n += int64(n)
	return n, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// pruneCheckpoints keeps the keep newest valid checkpoints and removes every
// named checkpoint older than the oldest kept one, valid or not. Invalid
// files newer than that stay until they age out. justWritten is known valid.
func pruneCheckpoints(dir string, justWritten uint64, keep int) error {
	files, err := checkpointFiles(dir)
	if err != nil {
		return err
	}
	var errs []error
	kept, removed := 0, false
	for _, f := range files {
		if !f.named {
			continue // not ours to remove
		}
		path := filepath.Join(dir, f.name)
		switch {
		case kept >= keep:
			if err := os.Remove(path); err != nil {
				errs = append(errs, err)
			}
			removed = true
		case f.seq == justWritten:
			kept++
		default:
			if _, err := VerifyCheckpoint(path); err == nil {
				kept++
			}
		}
	}
	// Leftovers of writes that crashed; the caller holds checkpointMu.
	entries, err := os.ReadDir(dir)
	if err != nil {
		errs = append(errs, err)
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, checkpointTempPrefix) && strings.HasSuffix(n, checkpointTempSuffix) {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				errs = append(errs, err)
			}
			removed = true
		}
	}
	if removed {
		if err := syncDir(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// VerifyCheckpoint fully reads and checks one file: header, lengths, payload
// hash, and that the payload decodes as a Backup stream. It touches no store.
// Errors name the file and the problem; damage matches ErrCorrupt. On error
// only Path and Bytes of the info are meaningful.
func VerifyCheckpoint(path string) (CheckpointInfo, error) {
	f, info, hdr, err := openCheckpoint(path)
	if err != nil {
		return info, err
	}
	defer f.Close()
	if _, err := checkPayload(f, path, hdr); err != nil {
		return CheckpointInfo{Path: path, Bytes: info.Bytes}, err
	}
	return info, nil
}

// ListCheckpoints returns every checkpoint-*.ckpt in dir, newest sequence
// first (files whose name carries no sequence last), each verified. A missing
// dir gives an empty list.
func ListCheckpoints(dir string) ([]CheckpointEntry, error) {
	files, err := checkpointFiles(dir)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints in %s: %w", dir, err)
	}
	out := make([]CheckpointEntry, 0, len(files))
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if !f.named {
			e := CheckpointEntry{CheckpointInfo: CheckpointInfo{Path: path}, Err: badName(path)}
			if fi, err := os.Stat(path); err == nil {
				e.Bytes = fi.Size()
			}
			out = append(out, e)
			continue
		}
		info, err := VerifyCheckpoint(path)
		info.Sequence = f.seq
		out = append(out, CheckpointEntry{CheckpointInfo: info, Err: err})
	}
	return out, nil
}

// NewestValidCheckpoint returns the newest checkpoint in dir that verifies,
// or an error wrapping ErrNoCheckpoint that says why each file was refused.
func NewestValidCheckpoint(dir string) (CheckpointInfo, error) {
	files, err := checkpointFiles(dir)
	if err != nil {
		return CheckpointInfo{}, fmt.Errorf("find checkpoint in %s: %w", dir, err)
	}
	if len(files) == 0 {
		return CheckpointInfo{}, fmt.Errorf("%w in %s: it holds no checkpoint files", ErrNoCheckpoint, dir)
	}
	reasons := make([]string, 0, len(files))
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if !f.named {
			reasons = append(reasons, badName(path).Error())
			continue
		}
		info, err := VerifyCheckpoint(path)
		if err == nil {
			return info, nil
		}
		reasons = append(reasons, err.Error())
	}
	return CheckpointInfo{}, fmt.Errorf("%w in %s: %s", ErrNoCheckpoint, dir, strings.Join(reasons, "; "))
}

// RestoreCheckpoint verifies path and loads it into a new store at storeDir,
// which must be missing or empty, then closes that store. On failure storeDir
// is left as it was found. The restored store keeps every event of the
// checkpoint; the next Open trims to its own MaxEvents.
func RestoreCheckpoint(path, storeDir string) (CheckpointInfo, error) {
	created, err := prepareRestoreDir(storeDir)
	if err != nil {
		return CheckpointInfo{}, fmt.Errorf("restore checkpoint %s: %w", path, err)
	}
	info, err := restoreCheckpoint(path, storeDir)
	if err != nil {
		if cerr := clearRestoreDir(storeDir, created); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up %s: %w", storeDir, cerr))
		}
		return CheckpointInfo{}, fmt.Errorf("restore checkpoint into %s: %w", storeDir, err)
	}
	return info, nil
}

func restoreCheckpoint(path, storeDir string) (CheckpointInfo, error) {
	f, info, hdr, err := openCheckpoint(path)
	if err != nil {
		return CheckpointInfo{}, err
	}
	defer f.Close()
	// Verify first so a bad file never reaches Badger.
	events, err := checkPayload(f, path, hdr)
	if err != nil {
		return CheckpointInfo{}, err
	}
	if _, err := f.Seek(checkpointHeaderSize, io.SeekStart); err != nil {
		return CheckpointInfo{}, fmt.Errorf("read checkpoint: %w", err)
	}
	s, err := Open(storeDir, Options{MaxEvents: max(events, DefaultMaxEvents)})
	if err != nil {
		return CheckpointInfo{}, err
	}
	// Hash again: the file must not have changed since it was verified.
	h := sha256.New()
	lr := &io.LimitedReader{R: f, N: int64(hdr.length)}
	br := bufio.NewReaderSize(io.TeeReader(lr, h), checkpointReadBufSize)
	err = s.Restore(br)
	if err == nil {
		if _, err = io.Copy(io.Discard, br); err == nil && (lr.N != 0 || !bytes.Equal(h.Sum(nil), hdr.sum[:])) {
			err = damaged(path, nil, "file changed while it was being restored")
		}
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return CheckpointInfo{}, err
	}
	return info, nil
}

// prepareRestoreDir checks that dir is missing or empty and creates it.
func prepareRestoreDir(dir string) (created bool, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true, os.MkdirAll(dir, 0o700)
	case err != nil:
		return false, err
	case len(entries) > 0:
		return false, fmt.Errorf("%s holds %d entries: %w", dir, len(entries), ErrNotEmpty)
	}
	return false, nil
}

// clearRestoreDir puts dir back the way prepareRestoreDir found it.
func clearRestoreDir(dir string, created bool) error {
	if created {
		return os.RemoveAll(dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	return errors.Join(errs...)
}

type checkpointHeader struct {
	version uint16
	flags   uint16
	seq     uint64
	created int64
	length  uint64
	events  uint64
	sum     [sha256.Size]byte
}

func (h *checkpointHeader) marshal() []byte {
	b := make([]byte, 0, checkpointHeaderSize)
	b = append(b, CheckpointMagic...)
	b = binary.BigEndian.AppendUint16(b, h.version)
	b = binary.BigEndian.AppendUint16(b, h.flags)
	b = binary.BigEndian.AppendUint64(b, h.seq)
	b = binary.BigEndian.AppendUint64(b, uint64(h.created))
	b = binary.BigEndian.AppendUint64(b, h.length)
	b = binary.BigEndian.AppendUint64(b, h.events)
	return append(b, h.sum[:]...)
}

func parseCheckpointHeader(b []byte) checkpointHeader {
	be := binary.BigEndian
	h := checkpointHeader{
		version: be.Uint16(b[8:]),
		flags:   be.Uint16(b[10:]),
		seq:     be.Uint64(b[12:]),
		created: int64(be.Uint64(b[20:])),
		length:  be.Uint64(b[28:]),
		events:  be.Uint64(b[36:]),
	}
	copy(h.sum[:], b[44:checkpointHeaderSize])
	return h
}

func (h *checkpointHeader) info(path string, size int64) CheckpointInfo {
	return CheckpointInfo{
		Path:     path,
		Sequence: h.seq,
		Created:  time.Unix(0, h.created).UTC(),
		Bytes:    size,
		SHA256:   hex.EncodeToString(h.sum[:]),
		Events:   h.events,
	}
}

// openCheckpoint opens path and checks everything but the payload. Every
// length is checked against the limit and the file size before any read
// depends on it.
func openCheckpoint(path string) (*os.File, CheckpointInfo, checkpointHeader, error) {
	info := CheckpointInfo{Path: path}
	var hdr checkpointHeader
	// Stat before opening: opening a FIFO would block.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, info, hdr, fmt.Errorf("read checkpoint: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, info, hdr, fmt.Errorf("%s: not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, info, hdr, fmt.Errorf("read checkpoint: %w", err)
	}
	hdr, info.Bytes, err = readCheckpointHeader(f, path)
	if err != nil {
		f.Close()
		return nil, info, hdr, err
	}
	return f, hdr.info(path, info.Bytes), hdr, nil
}

func readCheckpointHeader(f *os.File, path string) (hdr checkpointHeader, size int64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return hdr, 0, fmt.Errorf("read checkpoint: %w", err)
	}
	size = fi.Size()
	if size == 0 {
		return hdr, size, damaged(path, nil, "empty file")
	}
	var buf [checkpointHeaderSize]byte
	n, err := io.ReadFull(f, buf[:min(size, checkpointHeaderSize)])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return hdr, size, fmt.Errorf("read checkpoint: %w", err)
	}
	magic := buf[:min(n, len(CheckpointMagic))]
	if !bytes.HasPrefix([]byte(CheckpointMagic), magic) || n == 0 {
		return hdr, size, damaged(path, nil, "bad magic %q: not a berth checkpoint", magic)
	}
	if n < checkpointHeaderSize {
		return hdr, size, damaged(path, nil, "truncated: file has %d bytes, the header alone needs %d", n, checkpointHeaderSize)
	}
	hdr = parseCheckpointHeader(buf[:])
	switch {
	case hdr.version == 0:
		return hdr, size, damaged(path, nil, "format version 0 is invalid")
	case hdr.version > CheckpointFormatVersion:
		return hdr, size, damaged(path, nil, "format version %d is newer than this berth supports (%d)", hdr.version, CheckpointFormatVersion)
	case hdr.flags != 0:
		return hdr, size, damaged(path, nil, "unknown flags 0x%04x", hdr.flags)
	case hdr.length > MaxCheckpointPayload:
		return hdr, size, damaged(path, nil, "payload length %d exceeds limit %d", hdr.length, MaxCheckpointPayload)
	}
	if have := uint64(size - checkpointHeaderSize); have < hdr.length {
		return hdr, size, damaged(path, nil, "truncated: header says %d payload bytes, file has %d", hdr.length, have)
	} else if have > hdr.length {
		return hdr, size, damaged(path, nil, "%d unexpected bytes after the %d-byte payload", have-hdr.length, hdr.length)
	}
	if seq, ok := parseCheckpointName(filepath.Base(path)); ok && seq != hdr.seq {
		return hdr, size, damaged(path, nil, "header sequence %d does not match the file name", hdr.seq)
	}
	return hdr, size, nil
}

// checkPayload streams the payload through SHA-256 and the Backup decoder and
// returns the number of events it holds. f is positioned after the header.
func checkPayload(f *os.File, path string, hdr checkpointHeader) (events int, err error) {
	h := sha256.New()
	lr := &io.LimitedReader{R: f, N: int64(hdr.length)}
	br := bufio.NewReaderSize(io.TeeReader(lr, h), checkpointReadBufSize)
	decErr := readBackup(br, func(k, v []byte) error {
		if bytes.HasPrefix(k, []byte(prefixEvent)) {
			events++
		}
		// Open reads this on every start; a bad one would fail the restore.
		if string(k) == keyNextSeq {
			_, err := decodeUint64(k, v)
			return err
		}
		return nil
	})
	// Hash what the decoder left, so damage reads as a hash mismatch first.
	rest, err := io.Copy(io.Discard, br)
	if err != nil {
		return 0, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	if lr.N != 0 {
		return 0, damaged(path, nil, "truncated: file ended %d bytes before the declared payload end", lr.N)
	}
	if got := h.Sum(nil); !bytes.Equal(got, hdr.sum[:]) {
		return 0, damaged(path, nil, "SHA-256 mismatch: header says %x, payload hashes to %x", hdr.sum, got)
	}
	if decErr != nil {
		return 0, damaged(path, decErr, "payload is not a valid state store backup")
	}
	if rest > 0 {
		return 0, damaged(path, nil, "payload has %d bytes after the end of the backup stream", rest)
	}
	return events, nil
}

// checkpointDamage is a checkpoint file that is not what it should be. It
// matches ErrCorrupt.
type checkpointDamage struct {
	path, problem string
	cause         error
}

func damaged(path string, cause error, format string, args ...any) error {
	return &checkpointDamage{path: path, problem: fmt.Sprintf(format, args...), cause: cause}
}

func (d *checkpointDamage) Error() string {
	if d.cause != nil {
		return d.path + ": " + d.problem + ": " + d.cause.Error()
	}
	return d.path + ": " + d.problem
}

func (d *checkpointDamage) Is(target error) bool { return target == ErrCorrupt }
func (d *checkpointDamage) Unwrap() error        { return d.cause }

func badName(path string) error {
	return fmt.Errorf("%s: file name carries no sequence (want %s<number>%s)", path, checkpointPrefix, checkpointSuffix)
}

func checkpointName(seq uint64) string {
	return fmt.Sprintf("%s%020d%s", checkpointPrefix, seq, checkpointSuffix)
}

func parseCheckpointName(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, checkpointPrefix)
	if !ok {
		return 0, false
	}
	if digits, ok = strings.CutSuffix(digits, checkpointSuffix); !ok || digits == "" {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

type checkpointFile struct {
	name  string
	seq   uint64
	named bool // name carries a sequence
}

// checkpointFiles lists checkpoint-*.ckpt in dir, newest sequence first and
// names without a sequence last. A missing dir has none.
func checkpointFiles(dir string) ([]checkpointFile, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []checkpointFile
	for _, e := range entries {
		n := e.Name()
		if !strings.HasPrefix(n, checkpointPrefix) || !strings.HasSuffix(n, checkpointSuffix) {
			continue
		}
		seq, ok := parseCheckpointName(n)
		out = append(out, checkpointFile{name: n, seq: seq, named: ok})
	}
	slices.SortStableFunc(out, func(a, b checkpointFile) int {
		if a.named != b.named {
			if a.named {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(b.seq, a.seq); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return out, nil
}
