package agent

import (
	"berth/agent/challenge"
)

// putChallenge registers a handle whose status routes to upstream.
func putChallenge(dir *challenge.Directory, name, upstream string, health challenge.Health) *challenge.Handle {
	h := challenge.NewHandle(name)
	h.SetStatus(&challenge.Status{Name: name, State: challenge.Running, Health: health, Upstream: upstream})
	dir.Put(h)
	return h
}
