// Package proxy is berth's stable endpoint: /<challenge>/<rest> is
// forwarded to the challenge's serving container as /<rest>, streamed both
// ways, with every wait on the client bounded and none on the challenge.
// It owns the upstream transport, the per-upstream in-flight counts a swap
// drains on, and the client-side timeouts.
//
// It learns where each challenge is through the Routes interface it
// declares; package agent adapts its challenge directory to it and counts
// requests through Options.OnRequest, so this package holds no challenge
// state and no metrics.
//
// It may import agent/challenge (names and types), configs, the standard
// library and zerolog; not agent, statestore, docker or Prometheus.
package proxy
