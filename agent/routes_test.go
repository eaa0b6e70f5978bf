package agent

import (
	"testing"

	"berth/agent/challenge"
	"berth/agent/proxy"
)

// The proxy routes by the published status: the upstream and whether the
// health allows serving it.
func TestProxyRoutesFromDirectory(t *testing.T) {
	dir := &challenge.Directory{}
	putChallenge(dir, "up", "http://127.0.0.1:1", challenge.HealthHealthy)
	putChallenge(dir, "deg", "http://127.0.0.1:2", challenge.HealthDegraded)
	putChallenge(dir, "sick", "http://127.0.0.1:3", challenge.HealthUnhealthy)
	putChallenge(dir, "new", "", challenge.HealthUnknown)
	routes := proxyRoutes{dir}
	tests := []struct {
		name string
		want proxy.Route
	}{
		{"up", proxy.Route{Name: "up", Upstream: "http://127.0.0.1:1", Serving: true, State: "running", Health: "healthy"}},
		{"deg", proxy.Route{Name: "deg", Upstream: "http://127.0.0.1:2", Serving: true, State: "running", Health: "degraded"}},
		{"sick", proxy.Route{Name: "sick", Upstream: "http://127.0.0.1:3", Serving: false, State: "running", Health: "unhealthy"}},
		{"new", proxy.Route{Name: "new", Serving: false, State: "running", Health: "unknown"}},
	}
	for _, tt := range tests {
		got, ok := routes.Route(tt.name)
		if !ok || got != tt.want {
			t.Errorf("Route(%q) = %+v, %v; want %+v, true", tt.name, got, ok, tt.want)
		}
	}
	for _, name := range []string{"", "nope"} {
		if got, ok := routes.Route(name); ok {
			t.Errorf("Route(%q) = %+v, want none", name, got)
		}
	}
	dir.Remove("up")
	if _, ok := routes.Route("up"); ok {
		t.Error("a removed challenge still routes")
	}
}
