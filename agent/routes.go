package agent

import (
	"berth/agent/challenge"
	"berth/agent/proxy"
)

// proxyRoutes shows the stable endpoint each challenge's published status:
// the proxy reads routes through this and nothing else of the directory.
type proxyRoutes struct{ dir *challenge.Directory }

func (r proxyRoutes) Route(name string) (proxy.Route, bool) {
	h := r.dir.Get(name)
	if h == nil {
		return proxy.Route{}, false
	}
	st := h.Status()
	return proxy.Route{Name: name, Upstream: st.Upstream, Serving: st.Serving(),
		State: string(st.State), Health: string(st.Health)}, true
}
