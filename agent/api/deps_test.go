package api

import (
	"testing"

	"berth/internal/testkit"
)

// The admin API reaches berth only through the interfaces it declares: the
// composition root, the store, the engine and the metrics stay outside.
func TestDependenciesStayOutside(t *testing.T) {
	testkit.ForbidDeps(t, "berth/agent", "berth/statestore", "berth/docker", "berth/agent/dockerrt", "berth/agent/proxy",
		"berth/agent/alerts", "github.com/docker/", "github.com/moby/", "github.com/prometheus/", "github.com/dgraph-io/badger/")
}
