package swarmrt

import (
	"net"
	"sort"
	"strconv"

	"berth/agent/challenge"
	"berth/docker"
)

// Task states that will not run again.
var terminal = map[string]bool{"complete": true, "shutdown": true, "failed": true, "rejected": true, "remove": true, "orphaned": true}

// serving reports whether t runs on a node that is up: Swarm keeps a task
// of a lost node "running" until long after the node is gone.
func serving(t docker.Task, nodes map[string]docker.Node) bool {
	n, ok := nodes[t.NodeID]
	return t.DesiredState == "running" && t.State == "running" && ok && n.Ready
}

// alive reports whether t's container may still run: not yet terminal, on
// a node that is up.
func alive(t docker.Task, nodes map[string]docker.Node) bool {
	if terminal[t.State] {
		return false
	}
	if t.NodeID == "" {
		return t.DesiredState == "running" // not yet scheduled
	}
	n, ok := nodes[t.NodeID]
	return ok && n.Ready
}

// dialed is the task berth proxies to: the serving task of the lowest slot,
// the newest on a tie. ok is false when none serves.
func dialed(tasks []docker.Task, nodes map[string]docker.Node) (docker.Task, bool) {
	var up []docker.Task
	for _, t := range tasks {
		if serving(t, nodes) {
			up = append(up, t)
		}
	}
	if len(up) == 0 {
		return docker.Task{}, false
	}
	sort.Slice(up, func(i, j int) bool {
		if up[i].Slot != up[j].Slot {
			return up[i].Slot < up[j].Slot
		}
		return up[i].Timestamp.After(up[j].Timestamp)
	})
	return up[0], true
}

// instance is svc and its tasks in the lifecycle's terms. An instance runs
// while one of its tasks serves; when none does, the newest task's exit
// code says why (-1 for a task lost with its node).
func (r *Runtime) instance(svc docker.Service, tasks []docker.Task, nodes map[string]docker.Node) challenge.Instance {
	in := challenge.Instance{
		ID:            svc.ID,
		Name:          svc.Name,
		Challenge:     svc.Labels[docker.LabelChallenge],
		Slot:          svc.Labels[docker.LabelSlot],
		Version:       svc.Labels[docker.LabelVersion],
		SpecHash:      svc.Labels[docker.LabelSpecHash],
		Image:         svc.Image,
		ForeignVolume: docker.ForeignVolume(r.agentID, svc.Labels[docker.LabelChallenge], docker.Container{Volumes: svc.Volumes}),
	}
	if t, ok := dialed(tasks, nodes); ok {
		in.Running = true
		in.StartedAt = t.Timestamp
		in.Address = r.address(svc, t, nodes[t.NodeID])
		return in
	}
	var last docker.Task
	for _, t := range tasks {
		if t.Timestamp.After(last.Timestamp) {
			last = t
		}
	}
	in.ExitCode = last.ExitCode
	if n, ok := nodes[last.NodeID]; last.ID != "" && !terminal[last.State] && (!ok || !n.Ready) {
		in.ExitCode = -1
	}
	return in
}

// address is where berth dials task t of svc, as agent.reach says.
func (r *Runtime) address(svc docker.Service, t docker.Task, n docker.Node) string {
	port := svc.Port
	if p, err := strconv.Atoi(svc.Labels[docker.LabelPort]); err == nil {
		port = p
	}
	if r.reach == "network" {
		if ip := t.NetworkIPs[r.network]; ip != "" && port != 0 {
			return "http://" + net.JoinHostPort(ip, strconv.Itoa(port))
		}
		return ""
	}
	if len(t.HostPorts) == 0 || n.Addr == "" {
		return ""
	}
	// An engine binding both families may give each its own port.
	port = t.HostPorts[0]
	if ip := net.ParseIP(n.Addr); ip != nil && ip.To4() == nil {
		port = t.HostPorts[len(t.HostPorts)-1]
	}
	return "http://" + net.JoinHostPort(n.Addr, strconv.Itoa(port))
}
