package swarmrt

import (
	"testing"
	"time"

	"berth/agent/challenge"
	"berth/docker"
)

func TestInstanceFromTasks(t *testing.T) {
	r := &Runtime{agentID: "ag", network: "berth", reach: "published"}
	svc := docker.Service{ID: "s1", Name: "berth-ag-app-a", Image: "img:1", Port: 8080,
		Labels: map[string]string{docker.LabelChallenge: "app", docker.LabelSlot: "a", docker.LabelVersion: "1", docker.LabelSpecHash: "h"}}
	t0 := time.Unix(1000, 0)
	nodes := map[string]docker.Node{
		"up":   {ID: "up", Addr: "10.0.0.1", Ready: true},
		"up2":  {ID: "up2", Addr: "10.0.0.2", Ready: true},
		"down": {ID: "down", Addr: "10.0.0.3", Ready: false},
	}
	run := func(id, node string, slot, port int, at time.Time) docker.Task {
		var ports []int
		if port != 0 {
			ports = []int{port}
		}
		return docker.Task{ID: id, NodeID: node, Slot: slot, State: "running", DesiredState: "running", HostPorts: ports, Timestamp: at}
	}
	tests := []struct {
		name     string
		tasks    []docker.Task
		running  bool
		address  string
		exitCode int
	}{
		{"no tasks", nil, false, "", 0},
		{"one running", []docker.Task{run("t1", "up", 1, 30001, t0)}, true, "http://10.0.0.1:30001", 0},
		{"lowest slot is dialed", []docker.Task{run("t2", "up2", 2, 30002, t0), run("t1", "up", 1, 30001, t0)}, true, "http://10.0.0.1:30001", 0},
		{"a task of a lost node does not serve", []docker.Task{run("t1", "down", 1, 30001, t0)}, false, "", -1},
		{"another replica serves when one node is lost", []docker.Task{run("t1", "down", 1, 30001, t0), run("t2", "up2", 2, 30002, t0)}, true, "http://10.0.0.2:30002", 0},
		{"exited: the newest task's code", []docker.Task{
			{ID: "old", NodeID: "up", State: "failed", DesiredState: "shutdown", ExitCode: 1, Timestamp: t0},
			{ID: "new", NodeID: "up", State: "failed", DesiredState: "shutdown", ExitCode: 3, Timestamp: t0.Add(time.Second)},
		}, false, "", 3},
		{"shutting down does not serve", []docker.Task{{ID: "t1", NodeID: "up", State: "running", DesiredState: "shutdown", HostPorts: []int{1}}}, false, "", 0},
		{"IPv4 and IPv6 on ports of their own: the IPv4 one", []docker.Task{{ID: "t1", NodeID: "up", Slot: 1, State: "running", DesiredState: "running",
			HostPorts: []int{32958, 32957}}}, true, "http://10.0.0.1:32958", 0},
		{"no published port yet", []docker.Task{run("t1", "up", 1, 0, t0)}, true, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := r.instance(svc, tt.tasks, nodes)
			if in.Running != tt.running || in.Address != tt.address || in.ExitCode != tt.exitCode {
				t.Errorf("running %t address %q exit %d; want %t %q %d", in.Running, in.Address, in.ExitCode, tt.running, tt.address, tt.exitCode)
			}
			if in.ID != "s1" || in.Challenge != "app" || in.Slot != "a" || in.Version != "1" || in.SpecHash != "h" || in.Image != "img:1" {
				t.Errorf("identity %+v", in)
			}
		})
	}
}

func TestAddressOfAnIPv6Node(t *testing.T) {
	r := &Runtime{agentID: "ag", reach: "published"}
	task := docker.Task{ID: "t", NodeID: "n", State: "running", DesiredState: "running", HostPorts: []int{32958, 32957}}
	in := r.instance(docker.Service{ID: "s1"}, []docker.Task{task}, map[string]docker.Node{"n": {ID: "n", Addr: "fd00::2", Ready: true}})
	if in.Address != "http://[fd00::2]:32957" {
		t.Errorf("address %q, want the IPv6 binding's port", in.Address)
	}
}

func TestAddressOnTheOverlay(t *testing.T) {
	r := &Runtime{agentID: "ag", network: "berth-net", reach: "network"}
	svc := docker.Service{ID: "s1", Labels: map[string]string{docker.LabelPort: "9000"}}
	task := docker.Task{ID: "t", NodeID: "n", State: "running", DesiredState: "running", NetworkIPs: map[string]string{"berth-net": "10.1.2.3"}}
	in := r.instance(svc, []docker.Task{task}, map[string]docker.Node{"n": {ID: "n", Ready: true}})
	if in.Address != "http://10.1.2.3:9000" {
		t.Errorf("address %q", in.Address)
	}
}

func TestAliveWhileStopping(t *testing.T) {
	nodes := map[string]docker.Node{"up": {ID: "up", Ready: true}, "down": {ID: "down"}}
	for _, tt := range []struct {
		task docker.Task
		want bool
	}{
		{docker.Task{NodeID: "up", State: "running", DesiredState: "shutdown"}, true},
		{docker.Task{NodeID: "up", State: "shutdown", DesiredState: "shutdown"}, false},
		{docker.Task{NodeID: "down", State: "running", DesiredState: "shutdown"}, false},
		{docker.Task{State: "pending", DesiredState: "running"}, true},
		{docker.Task{State: "pending", DesiredState: "shutdown"}, false},
	} {
		if got := alive(tt.task, nodes); got != tt.want {
			t.Errorf("alive(%+v) = %t", tt.task, got)
		}
	}
}

func TestReplicasOfLabel(t *testing.T) {
	for label, want := range map[string]uint64{"": 1, "0": 1, "x": 1, "3": 3} {
		if got := replicasOf(docker.Service{Labels: map[string]string{docker.LabelReplicas: label}}); got != want {
			t.Errorf("replicas label %q: %d, want %d", label, got, want)
		}
	}
}

func TestSameImage(t *testing.T) {
	for _, tt := range []struct {
		image, ref string
		want       bool
	}{
		{"reg/app:1", "reg/app:1", true},
		{"reg/app:1@sha256:abc", "reg/app:1", true},
		{"reg/app:1", "reg/app:1.1", false},
		{"reg/app:10", "reg/app:1", false},
		{"reg/app:1@sha256:abc", "reg/app:1@sha256:abc", true},
	} {
		if got := sameImage(tt.image, tt.ref); got != tt.want {
			t.Errorf("sameImage(%q, %q) = %t", tt.image, tt.ref, got)
		}
	}
}

func TestLocalEventKinds(t *testing.T) {
	code := 3
	labels := func(replicas string) map[string]string {
		return map[string]string{docker.LabelChallenge: "app", docker.LabelReplicas: replicas}
	}
	for _, tt := range []struct {
		name string
		ev   docker.Event
		want challenge.InstanceEventKind
	}{
		{"single replica exits", docker.Event{Action: "die", ExitCode: &code, Labels: labels("1")}, challenge.InstanceExited},
		{"one of two replicas exits", docker.Event{Action: "die", ExitCode: &code, Labels: labels("2")}, challenge.InstanceChanged},
		{"exit without a code", docker.Event{Action: "die", Labels: labels("1")}, challenge.InstanceChanged},
		{"oom", docker.Event{Action: "oom", Labels: labels("1")}, challenge.InstanceChanged},
		{"destroy", docker.Event{Action: "destroy", Labels: labels("1")}, challenge.InstanceChanged},
	} {
		got := instanceEvent("s1", tt.ev)
		if got.Kind != tt.want || got.ID != "s1" || got.Challenge != "app" {
			t.Errorf("%s: %+v, want kind %d", tt.name, got, tt.want)
		}
		if got.Kind == challenge.InstanceExited && (got.ExitCode == nil || *got.ExitCode != 3) {
			t.Errorf("%s: exit code %v", tt.name, got.ExitCode)
		}
	}
}
