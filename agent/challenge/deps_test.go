package challenge

import (
	"testing"

	"berth/internal/testkit"
)

// The lifecycle depends only on the interfaces it declares: none of the
// runtime's, the store's, the metrics' or the logger's libraries may reach
// it, directly or through another berth package.
func TestDependenciesStayOutside(t *testing.T) {
	testkit.ForbidDeps(t, "berth/docker", "berth/statestore", "berth/agent", "berth/agent/api", "berth/agent/dockerrt",
		"berth/agent/proxy", "berth/agent/alerts", "github.com/docker/", "github.com/moby/",
		"github.com/prometheus/", "github.com/dgraph-io/badger/", "github.com/rs/zerolog", "github.com/rs/zerolog/")
}
