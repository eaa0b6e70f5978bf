// Package integration holds berth's end-to-end tests against a real Docker
// Engine: images are built in the test (no base image, no public registry)
// and served by an in-process registry so pulls are real. Helpers live in
// testenv; the test challenge program lives in testchallenge.
//
// It may import every berth package and go-containerregistry; never the
// Docker SDK (the tests drive the engine through berth or the docker CLI).
package integration
