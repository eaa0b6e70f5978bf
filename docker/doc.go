// Package docker is berth's only door to the Docker Engine and to image
// registries. It wraps the Docker SDK and go-connections behind a narrow
// client in domain verbs (ping, pull, create, start, stop, remove, inspect,
// list, events, logs, tags; and for the swarm backend, services, tasks and
// nodes), classifies engine errors once, owns the label
// keys and applies container hardening at creation.
//
// It may import the Docker SDK, go-connections, go-containerregistry (registry
// tag listing and credentials) and the standard library; no berth package.
package docker
