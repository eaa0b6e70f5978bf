// Package alerts posts alert-worthy events (a challenge given up on, a
// failed or rolled-back swap, the Docker engine gone) to the webhook in
// agent.alerts, at most one per challenge and event type per min_interval.
// It owns the rate limiter, the delivery queue and the webhook client.
//
// It reads events through the Feed interface it declares; package agent
// adapts the state store to it. Delivery is best effort and never blocks
// the feed's writers.
//
// It may import agent/challenge (event types and log field names), configs,
// supervisor (its clock and restart sentinel), the standard library and
// zerolog; not agent, statestore or docker.
package alerts
