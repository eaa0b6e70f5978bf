package statestore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite "+goldenCheckpoint)

const goldenCheckpoint = "testdata/golden-v1.ckpt"

// Offsets of the documented header, spelled out independently of the code.
const (
	offVersion = 8
	offFlags   = 10
	offSeq     = 12
	offCreated = 20
	offLength  = 28
	offEvents  = 36
	offSum     = 44
	offPayload = 76
)

func writeCkpt(t testing.TB, s *Store, dir string, keep int) CheckpointInfo {
	t.Helper()
	info, err := s.WriteCheckpoint(dir, keep)
	if err != nil {
		t.Fatalf("WriteCheckpoint(%s, %d): %v", dir, keep, err)
	}
	return info
}

// dirNames lists dir, temp files included.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func ckptNames(seqs ...uint64) []string {
	out := make([]string, 0, len(seqs))
	for _, s := range seqs {
		out = append(out, checkpointName(s))
	}
	slices.Sort(out)
	return out
}

func rewrite(t testing.TB, path string, fn func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, fn(bytes.Clone(b)), 0o600); err != nil {
		t.Fatal(err)
	}
}

func flipPayloadByte(b []byte) []byte {
	b[offPayload+(len(b)-offPayload)/2] ^= 0x01
	return b
}

// rehash makes the header's hash and length match b's payload again.
func rehash(b []byte) []byte {
	binary.BigEndian.PutUint64(b[offLength:], uint64(len(b)-offPayload))
	sum := sha256.Sum256(b[offPayload:])
	copy(b[offSum:], sum[:])
	return b
}

// backupStream builds a Backup stream by hand, valid checksum included.
func backupStream(records ...[2]string) []byte {
	b := []byte(backupMagic)
	for _, r := range records {
		b = append(b, tagEntry)
		b = binary.AppendUvarint(b, uint64(len(r[0])))
		b = append(b, r[0]...)
		b = binary.AppendUvarint(b, uint64(len(r[1])))
		b = append(b, r[1]...)
	}
	b = append(b, tagEnd)
	b = binary.AppendUvarint(b, uint64(len(records)))
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// withPayload is a sequence-1 checkpoint file around payload.
func withPayload(payload string) []byte {
	b := make([]byte, offPayload, offPayload+len(payload))
	copy(b, CheckpointMagic)
	binary.BigEndian.PutUint16(b[offVersion:], 1)
	binary.BigEndian.PutUint64(b[offSeq:], 1)
	return rehash(append(b, payload...))
}

// smallCheckpoint returns the bytes of a valid sequence-1 checkpoint of a
// populated store.
func smallCheckpoint(t *testing.T) []byte {
	t.Helper()
	s := openStore(t, "", Options{})
	populate(t, s)
	info := writeCkpt(t, s, t.TempDir(), 1)
	b, err := os.ReadFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fill adds n specs with runtime records and events events, in batches.
func fill(t testing.TB, s *Store, n, events int) {
	t.Helper()
	mustUpdate(t, s, func(tx *Tx) error {
		for i := range n {
			name := fmt.Sprintf("chal-%04d", i)
			if err := tx.PutSpec(sampleSpec(name)); err != nil {
				return err
			}
			if err := tx.PutRuntime(sampleRuntime(name)); err != nil {
				return err
			}
		}
		return nil
	})
	for done := 0; done < events; {
		batch := min(1000, events-done)
		mustUpdate(t, s, func(tx *Tx) error {
			for i := range batch {
				e := Event{Type: "health_changed", Challenge: fmt.Sprintf("chal-%04d", (done+i)%max(n, 1)),
					Health: "healthy", From: "unknown", To: "healthy", Message: "probe ok", Time: t0}
				if _, err := tx.AppendEvent(e); err != nil {
					return err
				}
			}
			return nil
		})
		done += batch
	}
}

// allEvents pages through the whole log and checks it is contiguous.
func allEvents(t testing.TB, s *Store) int {
	t.Helper()
	n, since := 0, uint64(0)
	for {
		evs, err := s.Events(EventQuery{Since: since})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return n
		}
		for _, e := range evs {
			if n > 0 && e.Seq != since+1 {
				t.Fatalf("gap in log: %d after %d", e.Seq, since)
			}
			since = e.Seq
			n++
		}
	}
}

func storeSnap(t *testing.T, dir string, opts Options) snapshot {
	t.Helper()
	s := openStore(t, dir, opts)
	defer s.Close()
	return snap(t, s)
}

func TestCheckpointRoundTrip(t *testing.T) {
	src := openStore(t, "", Options{})
	populate(t, src)
	want := snap(t, src)
	dir := filepath.Join(t.TempDir(), "checkpoints")

	before := time.Now()
	info := writeCkpt(t, src, dir, 3)
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("checkpoint dir: %v, %v; want mode 0700", fi.Mode(), err)
	}
	raw, err := os.ReadFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw[offPayload:])
	wantInfo := CheckpointInfo{
		Path:     filepath.Join(dir, "checkpoint-00000000000000000001.ckpt"),
		Sequence: 1,
		Created:  info.Created,
		Bytes:    int64(len(raw)),
		SHA256:   hex.EncodeToString(sum[:]),
		Events:   want.LastSeq,
	}
	if info != wantInfo {
		t.Fatalf("info = %+v\nwant %+v", info, wantInfo)
	}
	if info.Created.Before(before.Add(-time.Second)) || info.Created.After(time.Now().Add(time.Second)) {
		t.Fatalf("Created = %v, not now", info.Created)
	}
	if vinfo, err := VerifyCheckpoint(info.Path); err != nil || vinfo != info {
		t.Fatalf("VerifyCheckpoint = %+v, %v; want %+v", vinfo, err, info)
	}

	storeDir := filepath.Join(t.TempDir(), "restored", "badger")
	rinfo, err := RestoreCheckpoint(info.Path, storeDir)
	if err != nil || rinfo != info {
		t.Fatalf("RestoreCheckpoint = %+v, %v", rinfo, err)
	}
	dst := openStore(t, storeDir, Options{})
	if got := snap(t, dst); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored state differs\n got %+v\nwant %+v", got, want)
	}
	if e := mustAppend(t, dst, Event{Type: "x"}); e.Seq != want.LastSeq+1 {
		t.Fatalf("seq after restore = %d, want %d", e.Seq, want.LastSeq+1)
	}

	// The next checkpoint advances the sequence and the first is kept.
	info2 := writeCkpt(t, src, dir, 3)
	if info2.Sequence != 2 || filepath.Base(info2.Path) != "checkpoint-00000000000000000002.ckpt" {
		t.Fatalf("second checkpoint = %+v", info2)
	}
	if got := dirNames(t, dir); !reflect.DeepEqual(got, ckptNames(1, 2)) {
		t.Fatalf("dir = %v", got)
	}
}

func TestCheckpointHeaderLayout(t *testing.T) {
	s := openStore(t, "", Options{})
	populate(t, s)
	info := writeCkpt(t, s, t.TempDir(), 1)
	b, err := os.ReadFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	be := binary.BigEndian
	if string(b[:8]) != "BERTHCKP" || be.Uint16(b[offVersion:]) != 1 || be.Uint16(b[offFlags:]) != 0 {
		t.Fatalf("magic/version/flags = %q %d %d", b[:8], be.Uint16(b[offVersion:]), be.Uint16(b[offFlags:]))
	}
	if got := be.Uint64(b[offSeq:]); got != info.Sequence {
		t.Fatalf("sequence = %d, want %d", got, info.Sequence)
	}
	if got := int64(be.Uint64(b[offCreated:])); got != info.Created.UnixNano() {
		t.Fatalf("created = %d, want %d", got, info.Created.UnixNano())
	}
	if got := be.Uint64(b[offLength:]); got != uint64(len(b)-offPayload) {
		t.Fatalf("payload length = %d, file has %d", got, len(b)-offPayload)
	}
	if got := be.Uint64(b[offEvents:]); got != s.LastSeq() || got != info.Events {
		t.Fatalf("events = %d, LastSeq %d", got, s.LastSeq())
	}
	if sum := sha256.Sum256(b[offPayload:]); !bytes.Equal(b[offSum:offPayload], sum[:]) {
		t.Fatal("header hash is not the payload's SHA-256")
	}
	// The payload is exactly a Backup stream.
	if !bytes.Equal(b[offPayload:], backup(t, s)) {
		t.Fatal("payload differs from Backup output")
	}
}

func TestCheckpointSequenceNeverReused(t *testing.T) {
	s := openStore(t, "", Options{})
	populate(t, s)
	dir := t.TempDir()
	for i := uint64(1); i <= 3; i++ {
		if info := writeCkpt(t, s, dir, 10); info.Sequence != i {
			t.Fatalf("write %d got sequence %d", i, info.Sequence)
		}
	}
	// A corrupt newest file still counts.
	rewrite(t, filepath.Join(dir, checkpointName(3)), func([]byte) []byte { return []byte("junk") })
	if info := writeCkpt(t, s, dir, 10); info.Sequence != 4 {
		t.Fatalf("after corrupting 3: sequence %d, want 4", info.Sequence)
	}
	for _, seq := range []uint64{1, 2} {
		if err := os.Remove(filepath.Join(dir, checkpointName(seq))); err != nil {
			t.Fatal(err)
		}
	}
	if info := writeCkpt(t, s, dir, 10); info.Sequence != 5 {
		t.Fatalf("after deleting 1 and 2: sequence %d, want 5", info.Sequence)
	}
	// An empty file with a higher (unpadded) sequence in its name counts too.
	if err := os.WriteFile(filepath.Join(dir, "checkpoint-41.ckpt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if info := writeCkpt(t, s, dir, 10); info.Sequence != 42 {
		t.Fatalf("after checkpoint-41.ckpt: sequence %d, want 42", info.Sequence)
	}
}

func TestCheckpointKeepPrunesOldest(t *testing.T) {
	s := openStore(t, "", Options{})
	populate(t, s)

	t.Run("all valid", func(t *testing.T) {
		dir := t.TempDir()
		for range 5 {
			writeCkpt(t, s, dir, 3)
		}
		if got := dirNames(t, dir); !reflect.DeepEqual(got, ckptNames(3, 4, 5)) {
			t.Fatalf("dir = %v", got)
		}
		writeCkpt(t, s, dir, 0) // below 1 means 1
		if got := dirNames(t, dir); !reflect.DeepEqual(got, ckptNames(6)) {
			t.Fatalf("keep 0: dir = %v", got)
		}
	})

	// Only valid files count toward keep; corrupt ones older than the oldest
	// kept go, newer ones stay until they age out.
	t.Run("corrupt inside window", func(t *testing.T) {
		dir := t.TempDir()
		for range 3 {
			writeCkpt(t, s, dir, 10)
		}
		rewrite(t, filepath.Join(dir, checkpointName(3)), flipPayloadByte)
		writeCkpt(t, s, dir, 2)
		if got := dirNames(t, dir); !reflect.DeepEqual(got, ckptNames(2, 3, 4)) {
			t.Fatalf("dir = %v, want 2 (valid), 3 (corrupt), 4", got)
		}
	})
	t.Run("corrupt below window", func(t *testing.T) {
		dir := t.TempDir()
		for range 3 {
			writeCkpt(t, s, dir, 10)
		}
		rewrite(t, filepath.Join(dir, checkpointName(2)), flipPayloadByte)
		writeCkpt(t, s, dir, 2)
		if got := dirNames(t, dir); !reflect.DeepEqual(got, ckptNames(3, 4)) {
			t.Fatalf("dir = %v", got)
		}
	})
	t.Run("foreign names and stale temps", func(t *testing.T) {
		dir := t.TempDir()
		for _, n := range []string{"checkpoint-old.ckpt", "notes.txt", ".checkpoint-123.tmp"} {
			if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		writeCkpt(t, s, dir, 1)
		writeCkpt(t, s, dir, 1)
		want := append(ckptNames(2), "checkpoint-old.ckpt", "notes.txt")
		slices.Sort(want)
		if got := dirNames(t, dir); !reflect.DeepEqual(got, want) {
			t.Fatalf("dir = %v, want %v", got, want)
		}
	})
}

func TestCheckpointFailedWriteChangesNothing(t *testing.T) {
	t.Run("store closed", func(t *testing.T) {
		dir := t.TempDir()
		s := openStore(t, "", Options{})
		populate(t, s)
		writeCkpt(t, s, dir, 10)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		info, err := s.WriteCheckpoint(dir, 1)
		if !errors.Is(err, ErrClosed) || info != (CheckpointInfo{}) {
			t.Fatalf("WriteCheckpoint on closed store = %+v, %v", info, err)
		}
		if got := dirNames(t, dir); !reflect.DeepEqual(got, ckptNames(1)) {
			t.Fatalf("dir after failed write = %v (keep 1 must not prune on failure)", got)
		}
		s2 := openStore(t, "", Options{})
		if info := writeCkpt(t, s2, dir, 10); info.Sequence != 2 {
			t.Fatalf("sequence after failed write = %d, want 2", info.Sequence)
		}
	})
	t.Run("dir is a file", func(t *testing.T) {
		s := openStore(t, "", Options{})
		file := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WriteCheckpoint(file, 1); err == nil || !strings.Contains(err.Error(), file) {
			t.Fatalf("WriteCheckpoint into a file = %v", err)
		}
	})
	t.Run("dir not writable", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root ignores directory permissions")
		}
		s := openStore(t, "", Options{})
		dir := t.TempDir()
		writeCkpt(t, s, dir, 10)
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		if _, err := s.WriteCheckpoint(dir, 10); err == nil {
			t.Fatal("write into read-only dir succeeded")
		}
		if got := dirNames(t, dir); !reflect.DeepEqual(got, ckptNames(1)) {
			t.Fatalf("dir = %v", got)
		}
	})
	t.Run("prune fails after a good write", func(t *testing.T) {
		s := openStore(t, "", Options{})
		dir := t.TempDir()
		// A non-empty directory in place of checkpoint 1 cannot be removed.
		if err := os.MkdirAll(filepath.Join(dir, checkpointName(1), "x"), 0o700); err != nil {
			t.Fatal(err)
		}
		info, err := s.WriteCheckpoint(dir, 1)
		if err == nil || !strings.Contains(err.Error(), "removing older checkpoints failed") || info.Sequence != 2 {
			t.Fatalf("WriteCheckpoint = %+v, %v", info, err)
		}
		if _, err := VerifyCheckpoint(info.Path); err != nil {
			t.Fatalf("new checkpoint not in place: %v", err)
		}
	})
	t.Run("payload over limit", func(t *testing.T) {
		// Drive the writer's limit directly: a real store over 1 GiB is too slow.
		pw := &payloadWriter{w: io.Discard, h: sha256.New(), n: MaxCheckpointPayload - 1}
		if _, err := pw.Write([]byte("ab")); err == nil || !strings.Contains(err.Error(), "limit") {
			t.Fatalf("write past limit = %v", err)
		}
	})
}

func TestVerifyCheckpointRejects(t *testing.T) {
	good := smallCheckpoint(t)
	n := len(good)
	set16 := func(off int, v uint16) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint16(b[off:], v); return b }
	}
	set64 := func(off int, v uint64) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint64(b[off:], v); return b }
	}
	cut := func(k int) func([]byte) []byte { return func(b []byte) []byte { return b[:k] } }

	cases := []struct {
		name string
		mut  func([]byte) []byte
		want string
	}{
		{"empty", cut(0), "empty file"},
		{"bad magic", func(b []byte) []byte { copy(b, "NOTBERTH"); return b }, "bad magic"},
		{"short garbage", func([]byte) []byte { return []byte("hello") }, "bad magic"},
		{"newer version", set16(offVersion, 7), "format version 7 is newer than this berth supports (1)"},
		{"version 0", set16(offVersion, 0), "format version 0 is invalid"},
		{"flags", set16(offFlags, 1), "unknown flags 0x0001"},
		{"flipped payload byte", flipPayloadByte, "SHA-256 mismatch"},
		{"flipped hash byte", func(b []byte) []byte { b[offSum] ^= 0x80; return b }, "SHA-256 mismatch"},
		{"huge length", set64(offLength, 1<<62), fmt.Sprintf("payload length %d exceeds limit %d", uint64(1<<62), MaxCheckpointPayload)},
		{"length above file", set64(offLength, uint64(n)), fmt.Sprintf("truncated: header says %d payload bytes, file has %d", n, n-offPayload)},
		{"trailing bytes", func(b []byte) []byte { return append(b, 0) }, "1 unexpected bytes after"},
		{"sequence vs name", set64(offSeq, 9), "header sequence 9 does not match the file name"},
		{"payload not a backup", func(b []byte) []byte { return rehash(append(b[:offPayload], "not a backup"...)) }, "payload is not a valid state store backup"},
		{"bad next_seq", func([]byte) []byte { return withPayload(string(backupStream([2]string{keyNextSeq, "abc"}))) }, "decode record \"meta/next_seq\""},
		{"payload has extra bytes", func(b []byte) []byte { return rehash(append(b, "x"...)) }, "payload has 1 bytes after the end of the backup stream"},
	}
	for _, k := range []int{1, 7, 8, 9, 43, 75} {
		cases = append(cases, struct {
			name string
			mut  func([]byte) []byte
			want string
		}{fmt.Sprintf("cut at %d", k), cut(k), fmt.Sprintf("truncated: file has %d bytes, the header alone needs 76", k)})
	}
	for _, k := range []int{76, 77, offPayload + (n-offPayload)/2, n - 1} {
		cases = append(cases, struct {
			name string
			mut  func([]byte) []byte
			want string
		}{fmt.Sprintf("cut at %d", k), cut(k), fmt.Sprintf("truncated: header says %d payload bytes, file has %d", n-offPayload, k-offPayload)})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), checkpointName(1))
			if err := os.WriteFile(path, c.mut(bytes.Clone(good)), 0o600); err != nil {
				t.Fatal(err)
			}
			info, err := VerifyCheckpoint(path)
			if err == nil {
				t.Fatalf("damaged checkpoint accepted: %+v", info)
			}
			if !strings.HasPrefix(err.Error(), path+": ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %q\nwant %q naming the file", err, c.want)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("err %v is not ErrCorrupt", err)
			}
		})
	}

	t.Run("valid", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), checkpointName(1))
		if err := os.WriteFile(path, good, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := VerifyCheckpoint(path); err != nil {
			t.Fatal(err)
		}
		// A hand-built stream verifies, so the cases above fail for their own reason.
		hand := withPayload(string(backupStream([2]string{keyNextSeq, "\x00\x00\x00\x00\x00\x00\x00\x05"})))
		if err := os.WriteFile(path, hand, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := VerifyCheckpoint(path); err != nil {
			t.Fatal(err)
		}
		// Any name works outside the checkpoint dir naming scheme.
		other := filepath.Join(t.TempDir(), "copy.ckpt")
		if err := os.WriteFile(other, good, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := VerifyCheckpoint(other); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("missing and not regular", func(t *testing.T) {
		dir := t.TempDir()
		missing := filepath.Join(dir, "nope.ckpt")
		if _, err := VerifyCheckpoint(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
			t.Fatalf("missing file: %v", err)
		}
		if _, err := VerifyCheckpoint(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("directory: %v", err)
		}
	})
}

// A header declaring a huge payload must be refused before anything of that
// size is allocated or read.
func TestVerifyCheckpointHugeLengthIsCheap(t *testing.T) {
	// Built by hand: no store runs in the background while allocations are counted.
	good := withPayload(string(backupStream([2]string{"spec/a", "{}"})))
	for _, length := range []uint64{1 << 62, MaxCheckpointPayload} {
		b := bytes.Clone(good)
		binary.BigEndian.PutUint64(b[offLength:], length)
		path := filepath.Join(t.TempDir(), checkpointName(1))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		const runs = 20
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		for range runs {
			if _, err := VerifyCheckpoint(path); err == nil {
				t.Fatal("accepted")
			}
		}
		elapsed := time.Since(start)
		runtime.ReadMemStats(&after)
		if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 1<<20 {
			t.Fatalf("length %d: verify allocated %d bytes per run", length, per)
		}
		if elapsed > 2*time.Second {
			t.Fatalf("length %d: %d verifies took %v", length, runs, elapsed)
		}
	}
}

func TestListCheckpoints(t *testing.T) {
	if got, err := ListCheckpoints(filepath.Join(t.TempDir(), "missing")); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("missing dir: %v, %v; want empty list", got, err)
	}
	s := openStore(t, "", Options{})
	populate(t, s)
	dir := t.TempDir()
	var infos []CheckpointInfo
	for range 3 {
		infos = append(infos, writeCkpt(t, s, dir, 10))
	}
	rewrite(t, infos[1].Path, flipPayloadByte)
	for n, data := range map[string]string{"checkpoint-x.ckpt": "x", "other.ckpt": "x", ".checkpoint-1.tmp": "x"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	got, err := ListCheckpoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("got %d entries: %+v", len(got), got)
	}
	if got[0].Err != nil || got[0].CheckpointInfo != infos[2] {
		t.Fatalf("entry 0 = %+v, want %+v", got[0], infos[2])
	}
	if got[1].Err == nil || !strings.Contains(got[1].Err.Error(), "SHA-256 mismatch") ||
		got[1].Path != infos[1].Path || got[1].Sequence != 2 || got[1].Bytes != infos[1].Bytes {
		t.Fatalf("entry 1 = %+v", got[1])
	}
	if got[2].Err != nil || got[2].CheckpointInfo != infos[0] {
		t.Fatalf("entry 2 = %+v", got[2])
	}
	if got[3].Path != filepath.Join(dir, "checkpoint-x.ckpt") || got[3].Err == nil ||
		!strings.Contains(got[3].Err.Error(), "carries no sequence") || got[3].Bytes != 1 {
		t.Fatalf("entry 3 = %+v", got[3])
	}
}

func TestNewestValidCheckpointSkipsCorrupt(t *testing.T) {
	s := openStore(t, "", Options{})
	populate(t, s)
	dir := t.TempDir()
	first := writeCkpt(t, s, dir, 10)
	mustAppend(t, s, Event{Type: "x"})
	second := writeCkpt(t, s, dir, 10)

	if got, err := NewestValidCheckpoint(dir); err != nil || got != second {
		t.Fatalf("NewestValidCheckpoint = %+v, %v; want %+v", got, err, second)
	}
	rewrite(t, second.Path, func(b []byte) []byte { return b[:len(b)-3] })
	if got, err := NewestValidCheckpoint(dir); err != nil || got != first {
		t.Fatalf("with newest truncated = %+v, %v; want %+v", got, err, first)
	}
}

func TestNewestValidCheckpointNone(t *testing.T) {
	for _, dir := range []string{filepath.Join(t.TempDir(), "missing"), t.TempDir()} {
		if _, err := NewestValidCheckpoint(dir); !errors.Is(err, ErrNoCheckpoint) || !strings.Contains(err.Error(), "no checkpoint files") {
			t.Fatalf("empty dir %s: %v", dir, err)
		}
	}

	s := openStore(t, "", Options{})
	populate(t, s)
	dir := t.TempDir()
	a := writeCkpt(t, s, dir, 10)
	b := writeCkpt(t, s, dir, 10)
	rewrite(t, a.Path, func(b []byte) []byte { copy(b, "XXXX"); return b })
	rewrite(t, b.Path, flipPayloadByte)
	_, err := NewestValidCheckpoint(dir)
	if !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("err = %v, want ErrNoCheckpoint", err)
	}
	msg := err.Error()
	for _, want := range []string{b.Path + ": SHA-256 mismatch", a.Path + ": bad magic"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("message %q does not contain %q", msg, want)
		}
	}
	if strings.Index(msg, b.Path) > strings.Index(msg, a.Path) {
		t.Fatalf("reasons not newest first: %q", msg)
	}
}

func TestRestoreCheckpointTarget(t *testing.T) {
	good := smallCheckpoint(t)
	path := filepath.Join(t.TempDir(), checkpointName(1))
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("non-empty dir refused", func(t *testing.T) {
		dir := t.TempDir()
		keepFile := filepath.Join(dir, "MANIFEST")
		if err := os.WriteFile(keepFile, []byte("mine"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := RestoreCheckpoint(path, dir)
		if !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("err = %v, want ErrNotEmpty naming %s", err, dir)
		}
		if b, err := os.ReadFile(keepFile); err != nil || string(b) != "mine" || len(dirNames(t, dir)) != 1 {
			t.Fatalf("target changed: %q %v %v", b, err, dirNames(t, dir))
		}
	})
	t.Run("target is a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := RestoreCheckpoint(path, file); err == nil {
			t.Fatal("restore into a file succeeded")
		}
	})
	t.Run("existing empty dir", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := RestoreCheckpoint(path, dir); err != nil {
			t.Fatal(err)
		}
		if got := storeSnap(t, dir, Options{}); len(got.Specs) != 3 || got.LastSeq != 8 {
			t.Fatalf("restored %+v", got)
		}
	})

	bad := filepath.Join(t.TempDir(), checkpointName(1))
	if err := os.WriteFile(bad, flipPayloadByte(bytes.Clone(good)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("corrupt leaves missing dir missing", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "store")
		if _, err := RestoreCheckpoint(bad, dir); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "SHA-256 mismatch") {
			t.Fatalf("err = %v", err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("target dir left behind: %v", err)
		}
	})
	t.Run("corrupt leaves empty dir empty", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := RestoreCheckpoint(bad, dir); err == nil {
			t.Fatal("corrupt checkpoint restored")
		}
		if got := dirNames(t, dir); len(got) != 0 {
			t.Fatalf("target dir holds %v", got)
		}
	})
}

// The restore must not trim to the default bound: the next Open applies the
// configured one.
func TestRestoreCheckpointKeepsAllEvents(t *testing.T) {
	const events = DefaultMaxEvents + 500
	s := openStore(t, "", Options{MaxEvents: 2 * DefaultMaxEvents})
	fill(t, s, 3, events)
	info := writeCkpt(t, s, t.TempDir(), 1)
	dir := t.TempDir()
	if _, err := RestoreCheckpoint(info.Path, dir); err != nil {
		t.Fatal(err)
	}
	// Open counts the stored event keys; a trimmed restore would show fewer.
	dst := openStore(t, dir, Options{MaxEvents: 2 * DefaultMaxEvents})
	if n := dst.evCount; n != events || dst.LastSeq() != events {
		t.Fatalf("restored %d events, want %d", n, events)
	}
}

// Events must equal the snapshot's LastSeq even while writers commit, and
// concurrent writes must get distinct sequences.
func TestWriteCheckpointConcurrent(t *testing.T) {
	s := openStore(t, "", Options{MaxEvents: 100000})
	populate(t, s)
	dir := t.TempDir()

	stop := make(chan struct{})
	var writers sync.WaitGroup
	for range 2 {
		writers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.AppendEvent(Event{Type: "x"}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	const n = 6
	infos := make([]CheckpointInfo, n)
	errs := make([]error, n)
	var ckpts sync.WaitGroup
	for i := range n {
		ckpts.Go(func() { infos[i], errs[i] = s.WriteCheckpoint(dir, n) })
	}
	ckpts.Wait()
	close(stop)
	writers.Wait()

	var got []uint64
	for i, info := range infos {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		got = append(got, info.Sequence)
		sdir := t.TempDir()
		if _, err := RestoreCheckpoint(info.Path, sdir); err != nil {
			t.Fatal(err)
		}
		dst := openStore(t, sdir, Options{MaxEvents: 100000})
		if dst.LastSeq() != info.Events {
			t.Fatalf("checkpoint %d: header events %d, snapshot LastSeq %d", info.Sequence, info.Events, dst.LastSeq())
		}
		// Seqs start at 1 and nothing was trimmed, so a full log has LastSeq events.
		if n := allEvents(t, dst); uint64(n) != info.Events {
			t.Fatalf("checkpoint %d: %d events, LastSeq %d", info.Sequence, n, info.Events)
		}
		dst.Close()
	}
	slices.Sort(got)
	if !reflect.DeepEqual(got, []uint64{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("sequences = %v", got)
	}
}

// The v1 file in testdata must keep loading: the format is on operators' disks.
func TestCheckpointGoldenV1(t *testing.T) {
	src := openStore(t, "", Options{})
	populate(t, src)
	want := snap(t, src)
	if *updateGolden {
		info := writeCkpt(t, src, t.TempDir(), 1)
		b, err := os.ReadFile(info.Path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenCheckpoint, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	info, err := VerifyCheckpoint(goldenCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	if info.Sequence != 1 || info.Events != 8 {
		t.Fatalf("golden info = %+v", info)
	}
	dir := t.TempDir()
	if _, err := RestoreCheckpoint(goldenCheckpoint, dir); err != nil {
		t.Fatal(err)
	}
	if got := storeSnap(t, dir, Options{}); !reflect.DeepEqual(got, want) {
		t.Fatalf("golden restores to\n %+v\nwant %+v", got, want)
	}
}

func FuzzVerifyCheckpoint(f *testing.F) {
	// Small seeds keep minimisation quick.
	s := openStore(f, "", Options{})
	empty := writeCkpt(f, s, f.TempDir(), 1)
	mustUpdate(f, s, func(tx *Tx) error {
		if err := tx.PutSpec(SpecRecord{Name: "a", Spec: []byte(`{}`)}); err != nil {
			return err
		}
		_, err := tx.AppendEvent(Event{Type: "x", Time: t0})
		return err
	})
	one := writeCkpt(f, s, f.TempDir(), 1)
	for _, info := range []CheckpointInfo{empty, one} {
		good, err := os.ReadFile(info.Path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(good, false)
		f.Add(good, true)
		for _, k := range []int{1, 8, 40, 75, 76, 77, len(good) / 2, len(good) - 1} {
			f.Add(bytes.Clone(good[:min(k, len(good))]), false)
		}
		bad := bytes.Clone(good)
		copy(bad, "BERTHCKQ")
		f.Add(bad, false)
	}
	f.Add([]byte{}, false)
	f.Add(withPayload(backupMagic+"K\x03ev/"), true)
	f.Add(withPayload(string(backupStream([2]string{keyNextSeq, "\x00\x00\x00\x00\x00\x00\x00\x05"}, [2]string{"ev/\x00\x00\x00\x00\x00\x00\x00\x04", "{}"}))), true)

	// One path per process: the fuzz function runs inputs one at a time.
	// Removing first is much faster than truncating on ext4.
	path := filepath.Join(f.TempDir(), checkpointName(1))
	// fixHeader makes length and hash match the payload so that mutations
	// reach the Backup decoder instead of stopping at the hash check.
	f.Fuzz(func(t *testing.T, data []byte, fixHeader bool) {
		if fixHeader && len(data) >= offPayload && len(data)-offPayload <= MaxCheckpointPayload {
			data = rehash(bytes.Clone(data))
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		info, err := VerifyCheckpoint(path)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || !strings.HasPrefix(err.Error(), path+": ") {
				t.Fatalf("error %q is not ErrCorrupt naming the file", err)
			}
			return
		}
		if info.Bytes != int64(len(data)) || info.Sequence != 1 {
			t.Fatalf("accepted with info %+v for %d bytes", info, len(data))
		}
		// Whatever verifies must restore.
		if _, err := RestoreCheckpoint(path, filepath.Join(t.TempDir(), "store")); err != nil {
			t.Fatalf("verified checkpoint does not restore: %v", err)
		}
	})
}

func benchStore(b *testing.B) *Store {
	b.Helper()
	s := openStore(b, "", Options{MaxEvents: 100000})
	fill(b, s, 200, 100000)
	return s
}

func BenchmarkWriteCheckpoint(b *testing.B) {
	s := benchStore(b)
	for _, keep := range []int{1, 3} {
		b.Run(fmt.Sprintf("keep=%d", keep), func(b *testing.B) {
			dir := b.TempDir()
			var size int64
			for b.Loop() {
				size = writeCkpt(b, s, dir, keep).Bytes
			}
			b.SetBytes(size)
		})
	}
}

func BenchmarkVerifyCheckpoint(b *testing.B) {
	s := benchStore(b)
	info := writeCkpt(b, s, b.TempDir(), 1)
	b.SetBytes(info.Bytes)
	for b.Loop() {
		if _, err := VerifyCheckpoint(info.Path); err != nil {
			b.Fatal(err)
		}
	}
}
