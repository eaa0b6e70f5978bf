// Package dockerrt runs challenge instances as containers on one Docker
// Engine: it implements the lifecycle's Runtime on berth's docker client,
// adding what the lifecycle leaves to the runtime (names, labels, volume
// namespaces, networking and the address berth dials).
//
// It may import agent/challenge, docker and configs; nothing else in
// berth imports the Docker SDK.
package dockerrt
