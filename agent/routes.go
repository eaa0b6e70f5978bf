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
	return proxy.Route{Name: name, Upstream: st.Upstream, Serving: st.Serving(), Standby: st.StandbyUpstream,
		State: string(st.State), Health: string(st.Health)}, true
}

// upstreamDown tells the owner that its active container refused or reset
// a connection, so it looks at once instead of at Docker's event.
func (r proxyRoutes) upstreamDown(name, upstream string) {
	h := r.dir.Get(name)
	if h == nil {
		return
	}
	if st := h.Status(); st.Upstream == upstream && st.ContainerID != "" {
		h.Notify(challenge.InstanceEvent{ID: st.ContainerID, Challenge: name, Kind: challenge.InstanceChanged})
	}
}
