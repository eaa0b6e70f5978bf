// Package testenv holds the helpers the real-engine tests in integration/ share:
// gating on a reachable Docker Engine, unique agent ids whose containers,
// networks and volumes are removed in t.Cleanup, the test challenge binary and
// images built from it (pushed to an in-process registry or built straight into
// the engine), and small polling and HTTP helpers.
//
// It drives the engine through the docker CLI rather than the SDK, so the tests
// check berth's Docker code against an independent client.
package testenv
