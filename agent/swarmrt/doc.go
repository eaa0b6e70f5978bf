// Package swarmrt runs challenge instances as Docker Swarm services: it
// implements the lifecycle's Runtime on berth's docker client, on an engine
// that manages a swarm. One instance is one service (berth-<agent>-
// <challenge>-<slot>), created with no replicas and scaled up by Start;
// Swarm's restart policy is "none" so that berth alone decides restarts.
//
// berth reaches a task at its node's address and the port the engine
// published for it in host mode (reach: published), or at its address on
// the attachable overlay agent.network (reach: network, berth in a
// container on that network). Swarm's routing mesh and VIPs are not used.
//
// It may import agent/challenge, docker and configs; nothing else in
// berth imports the Docker SDK.
package swarmrt
