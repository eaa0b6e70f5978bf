// Package agent is berth's composition root: it wires the config, the Docker
// client, the state store and the supervisor tree, and runs one service per
// challenge (pull, create, start, probe, restart), the stable-endpoint proxy
// and the admin API.
//
// One goroutine owns each challenge; everything else talks to it through its
// inbox and reads its published, immutable status snapshot.
//
// The stable endpoint (agent/proxy) and the webhook alerter (agent/alerts)
// are packages of their own; they see the directory and the state store
// only through the adapters in routes.go and alertfeed.go.
//
// It may import every berth package (configs, docker, statestore, supervisor)
// and its chosen libraries (zerolog, semver).
package agent
