// Package api is berth's admin API (SPEC §5.8): the HTTP routes under /v1,
// the probes /healthz and /readyz, and /metrics as handed to it. It owns
// authentication, the browser guard (Host, Origin, media type), request
// decoding and its limits, the follow streams of events and logs, and the
// one JSON error shape, {"error","code"}, rendered from [APIError].
//
// It holds no state of its own beyond the open follow streams. It reads the
// challenges' published statuses from a challenge.Directory, talks to a
// challenge's owner only through its challenge.Handle, and reaches the rest
// of berth through the narrow interfaces it declares, which package agent
// implements with small adapters: the event log ([EventLog]), changes to the
// desired set of challenges ([Desired]), checkpoints ([Checkpoints]), and
// the readiness and health funcs of [Options].
//
// It may import agent/challenge (types, sentinel errors, events), configs,
// the standard library and zerolog; not agent, statestore, docker or
// Prometheus.
package api
