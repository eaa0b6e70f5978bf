// Package alerts posts alert-worthy events (a challenge given up on or OOM
// killed, a failed or rolled-back swap, the Docker engine gone) and the
// alerts it derives from several events (crash_loop, recovered) to the
// webhook in agent.alerts, as berth's JSON or a Slack or Discord message,
// at most one per challenge and alert type per min_interval. It owns the
// rate limiter, the restart history, the delivery queue and the webhook
// client; delivery results go to a callback, so it needs no metrics library.
//
// It reads events through the Feed interface it declares; package agent
// adapts the state store to it. Delivery is best effort and never blocks
// the feed's writers.
//
// It may import agent/challenge (event types and log field names), configs,
// supervisor (its clock and restart sentinel), the standard library and
// zerolog; not agent, statestore or docker.
package alerts
