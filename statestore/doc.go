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
// The package starts no goroutines of its own; Badger's are stopped by
// [Store.Close].
package statestore
