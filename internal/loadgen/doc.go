// Package loadgen drives steady client traffic at a stable endpoint and
// counts what the clients see. The real-engine tests and the benchmark
// harness share it; it imports no test helpers so the harness binary does
// not link package testing.
package loadgen
