// Package challenge is the lifecycle of one challenge: the owner goroutine
// and everything it decides — the lifecycle table, health tracking, restart
// decisions, the blue-green swap phases, crash recovery of swaps and the
// state hand-off.
//
// It depends only on what it declares here, in its own terms: a [Runtime]
// that runs instances (containers on one Docker Engine today, services on a
// Swarm next to it), a [Store] of the records it reads and writes, an
// [Observer] for events and measurements (it writes neither logs nor
// metrics itself), a [Traffic] view of the stable endpoint, and a clock. It
// imports configs, supervisor and the standard library; never the Docker
// SDK, the database, Prometheus or a logging library. Adding a runtime means
// implementing Runtime, not editing this package.
//
// # Ownership
//
//   - One [Owner] goroutine (Serve) per challenge owns every field of its
//     Owner: the record, lifecycle, health tracker, current instance, timers
//     and swap bookkeeping. Nothing else reads or writes them.
//   - Others reach an owner only through its [Handle]: requests (restart,
//     swap, rollback) and runtime hints go into its inbox as sealed
//     messages; spec changes go through a latest-value slot that never
//     blocks and never loses the newest spec; the owner publishes an
//     immutable [Status] after every change, which anyone may read.
//   - Slow work runs as jobs the owner starts: image pulls, stops, probes
//     and swaps. A job holds copies of what it needs (never the Owner),
//     talks to the Runtime and Store itself, and reports back to the owner
//     by message; the owner stays free to answer the API meanwhile. Only
//     short runtime calls (inspect, create, start, remove) run in the owner.
//   - A swap's runner owns its phases up to the cut-over; the cut-over
//     itself (the new active slot) is applied by the owner, on the runner's
//     message, in one store transaction. After it the runner only drains
//     and stops the old instance; a rollback meanwhile routes back to that
//     instance, and the runner's swapJob mutex orders that against the stop.
//   - Serve returns only after every job it started has ended, so an owner
//     restarted by the supervisor begins again from the store.
//
// The decisions that need no goroutine — restart or give up
// ([DecideRestart]), the swap phase table ([NextPhase]), how to settle a swap
// a crash interrupted ([RecoverSwap]), auto-rollback, version precedence and
// health thresholds — are pure functions with table tests.
package challenge
