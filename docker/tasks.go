package docker

import (
	"context"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// Task is one task of a service.
type Task struct {
	ID           string
	ServiceID    string
	NodeID       string
	Slot         int
	State        string // new … running, complete, failed, shutdown, rejected, orphaned
	DesiredState string
	Err          string
	ContainerID  string
	ExitCode     int
	// HostPorts are the host-mode published ports of the challenge port,
	// in the engine's order: an engine that binds IPv4 and IPv6 may pick a
	// port for each, IPv4's first.
	HostPorts []int
	// NetworkIPs maps network name to the task's address on it.
	NetworkIPs map[string]string
	Timestamp  time.Time // of the last state change
}

// ServiceTasks returns the tasks of the given services (all of them when
// none is given), any state.
func (c *Client) ServiceTasks(ctx context.Context, serviceIDs ...string) ([]Task, error) {
	ctx, cancel := c.call(ctx, "task_list")
	defer cancel()
	args := filters.NewArgs()
	for _, id := range serviceIDs {
		args.Add("service", id)
	}
	list, err := c.api.TaskList(ctx, swarm.TaskListOptions{Filters: args})
	if err != nil {
		return nil, classify("list tasks", err)
	}
	nets := map[string]string{} // network id → name, for attachments that lack the spec
	out := make([]Task, 0, len(list))
	for _, t := range list {
		task := Task{ID: t.ID, ServiceID: t.ServiceID, NodeID: t.NodeID, Slot: t.Slot, State: string(t.Status.State),
			DesiredState: string(t.DesiredState), Err: t.Status.Err, Timestamp: t.Status.Timestamp, NetworkIPs: map[string]string{}}
		if cs := t.Status.ContainerStatus; cs != nil {
			task.ContainerID, task.ExitCode = cs.ContainerID, cs.ExitCode
		}
		for _, p := range t.Status.PortStatus.Ports {
			if p.Protocol == swarm.PortConfigProtocolTCP && p.PublishMode == swarm.PortConfigPublishModeHost {
				task.HostPorts = append(task.HostPorts, int(p.PublishedPort))
			}
		}
		for _, na := range t.NetworksAttachments {
			name := na.Network.Spec.Name
			if name == "" {
				name = nets[na.Network.ID]
			}
			nets[na.Network.ID] = name
			if len(na.Addresses) > 0 {
				ip, _, err := net.ParseCIDR(na.Addresses[0])
				if err == nil {
					task.NetworkIPs[name] = ip.String()
				}
			}
		}
		out = append(out, task)
	}
	return out, nil
}

// TaskContainer is the state of a task's container on this engine, from
// the engine's container list: unlike an inspect, a list does not wait
// while the engine cleans up after an exit. found is false when this
// engine has no container of the task.
func (c *Client) TaskContainer(ctx context.Context, taskID string) (running bool, exitCode int, found bool, err error) {
	ctx, cancel := c.call(ctx, "container_list")
	defer cancel()
	list, err := c.api.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", swarmTaskLabel+"="+taskID))})
	if err != nil {
		return false, 0, false, classify("list containers of task "+taskID, err)
	}
	if len(list) == 0 {
		return false, 0, false, nil
	}
	s := list[0]
	return s.State == container.StateRunning, exitCodeOf(s.Status), true, nil
}

// swarmTaskLabel is the label Swarm puts on a task's container.
const swarmTaskLabel = "com.docker.swarm.task.id"

// exitCodeOf reads the code from a container list status ("Exited (137) 2
// seconds ago"); 0 when there is none.
func exitCodeOf(status string) int {
	_, rest, ok := strings.Cut(status, "Exited (")
	if !ok {
		return 0
	}
	code, _, _ := strings.Cut(rest, ")")
	n, err := strconv.Atoi(code)
	if err != nil {
		return 0
	}
	return n
}
