package agent

import "berth/agent/proxy"

// proxyRoutes shows the stable endpoint each challenge's published status:
// the proxy reads routes through this and nothing else of the directory.
type proxyRoutes struct{ dir *directory }

func (r proxyRoutes) Route(name string) (proxy.Route, bool) {
	h := r.dir.get(name)
	if h == nil {
		return proxy.Route{}, false
	}
	st := h.status.Load()
	return proxy.Route{Name: name, Upstream: st.Upstream, Serving: st.Health.Serving(),
		State: string(st.State), Health: string(st.Health)}, true
}
