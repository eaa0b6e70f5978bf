// Command harness measures berth against the tools validators would otherwise
// use (Docker's restart policy, HEALTHCHECK plus an autoheal-style loop, and
// stop-first recreation) on a real Docker Engine, and writes
// bench/results.json and BENCHMARKS.md. scripts/bench.sh builds berth, the
// images and this harness, runs it, and cleans up after it.
//
// Every container, network and image it makes carries the run id (in the
// io.berth.bench label, the berth agent id or the name), so the script's trap
// can remove them even when the harness dies.
package main
