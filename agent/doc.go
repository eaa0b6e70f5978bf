// Package agent is berth's composition root. It wires the config in force,
// the Docker client, the state store and the supervisor tree, and keeps what
// belongs to no single challenge: New and Run, reload and the reconciler,
// the engine watcher, the orphan reaper, the checkpoint schedule, sd_notify
// and the metrics registry.
//
// Everything else has a room of its own, joined here by small adapters:
//
//   - agent/challenge: one challenge's lifecycle, one owner goroutine each,
//     run by challenge.New as a supervisor service. It reaches the world
//     through interfaces it declares: the Runtime (agent/dockerrt or
//     agent/swarmrt, as agent.backend says; backend.go), the
//     Store (lifestore.go, over statestore), the Observer (observer.go: logs
//     and Prometheus) and the stable endpoint's Traffic (agent/proxy).
//   - agent/dockerrt: the Docker Engine runtime; agent/swarmrt: the Swarm one.
//   - agent/proxy: the stable endpoint, reading routes from the challenges'
//     published statuses (routes.go).
//   - agent/alerts: webhook alerts, reading the event log (alertfeed.go).
//   - agent/api: the admin API. It reads the event log and hands
//     desired-state changes to the reconciler through the interfaces it
//     declares (apibackend.go); the checkpointer serves its checkpoints.
//
// It may import every berth package and its chosen libraries (zerolog,
// Prometheus).
package agent
