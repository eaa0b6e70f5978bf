// Package statestore keeps berth's durable state in an embedded Badger
// database behind typed records: desired challenge specs, per-challenge
// runtime state (lifecycle, health, slots, restart counters) and a bounded,
// append-only event log.
//
// Every state transition is written with [Store.Update], which runs in one
// read-write transaction: puts, deletes and appended events commit together
// or not at all. Writes are serialised, so event sequence numbers are
// assigned without gaps from committed transactions and are never reused,
// even across restarts.
//
// Committed events are fanned out to [Subscription]s. Delivery never blocks a
// writer: a subscriber whose buffer is full misses events and sees a gap in
// Seq; it fills the gap with [Store.Events] using the last Seq it saw.
//
// [Store.Backup] and [Store.Restore] move a consistent snapshot in a
// self-describing, checksummed stream, so checkpoints never depend on
// Badger's on-disk format. No Badger type appears in this package's API.
//
// [Store.WriteCheckpoint] puts a Backup stream in a file named
// checkpoint-<sequence, 20 digits>.ckpt behind a fixed 76-byte header,
// integers big-endian:
//
//	magic "BERTHCKP"[8] | format version uint16 (1) | flags uint16 (0) |
//	sequence uint64 | created unix nanos int64 | payload length uint64 |
//	events uint64 (LastSeq in the snapshot) | SHA-256 of the payload [32] |
//	payload
//
// Files are written to a temp file in the same directory, synced, renamed
// and the directory synced; the keep newest valid files are kept. Readers
// check the payload length against [MaxCheckpointPayload] and the file size
// before reading it, so a damaged header cannot force a large allocation.
// [NewestValidCheckpoint] skips files that do not verify.
//
// The package starts no goroutines of its own; Badger's are stopped by
// [Store.Close].
package statestore
