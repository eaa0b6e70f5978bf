package docker

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
)

// Node is one swarm node.
type Node struct {
	ID           string
	Hostname     string
	Addr         string // address other nodes and berth reach it at
	Ready        bool   // state ready (down, unknown and disconnected are not)
	Availability string // active, pause, drain
	Manager      bool
	Local        bool // the node of the engine answering
}

// SwarmInfo is the engine's swarm membership.
type SwarmInfo struct {
	NodeID     string
	NodeAddr   string
	State      string // inactive, pending, active, error, locked
	Manager    bool   // this engine can manage the swarm
	APIVersion string
}

// SwarmInfo reports whether the engine is in a swarm and a manager of it.
func (c *Client) SwarmInfo(ctx context.Context) (SwarmInfo, error) {
	ctx, cancel := c.call(ctx, "info")
	defer cancel()
	info, err := c.api.Info(ctx)
	if err != nil {
		return SwarmInfo{}, classify("info", err)
	}
	return SwarmInfo{NodeID: info.Swarm.NodeID, NodeAddr: info.Swarm.NodeAddr, State: string(info.Swarm.LocalNodeState),
		Manager: info.Swarm.ControlAvailable, APIVersion: c.api.ClientVersion()}, nil
}

// Nodes returns the swarm's nodes.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	ctx, cancel := c.call(ctx, "node_list")
	defer cancel()
	list, err := c.api.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return nil, classify("list nodes", err)
	}
	local, err := c.localNode(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Node, 0, len(list))
	for _, n := range list {
		out = append(out, Node{ID: n.ID, Hostname: n.Description.Hostname, Addr: nodeAddr(n), Local: n.ID == local,
			Ready: n.Status.State == swarm.NodeStateReady, Availability: string(n.Spec.Availability), Manager: n.ManagerStatus != nil})
	}
	return out, nil
}

// localNode is the swarm node id of the engine, asked once: an engine
// keeps its node id while it stays in the swarm.
func (c *Client) localNode(ctx context.Context) (string, error) {
	if id := c.nodeID.Load(); id != nil {
		return *id, nil
	}
	c.count("info")
	info, err := c.api.Info(ctx)
	if err != nil {
		return "", classify("info", err)
	}
	id := info.Swarm.NodeID
	if id != "" {
		c.nodeID.Store(&id)
	}
	return id, nil
}

// nodeAddr is where a node is reached: a manager may report 0.0.0.0 as
// its status address, its manager address is then the one that works.
func nodeAddr(n swarm.Node) string {
	addr := n.Status.Addr
	if ip := net.ParseIP(addr); (ip == nil || ip.IsUnspecified()) && n.ManagerStatus != nil {
		if host, _, err := net.SplitHostPort(n.ManagerStatus.Addr); err == nil {
			addr = host
		}
	}
	return addr
}

// EnsureOverlay creates the attachable overlay network name if it is
// missing, and refuses a network of that name that is not one.
func (c *Client) EnsureOverlay(ctx context.Context, name string, labels map[string]string) error {
	ctx, cancel := c.call(ctx, "network_inspect")
	defer cancel()
	n, err := c.api.NetworkInspect(ctx, name, network.InspectOptions{})
	if err == nil {
		if n.Driver != "overlay" || !n.Attachable {
			return fmt.Errorf("%w: network %s is a %s network (attachable=%t); the swarm backend needs an attachable overlay of that name",
				ErrRefused, name, n.Driver, n.Attachable)
		}
		return nil
	}
	if err = classify("inspect network "+name, err); !errors.Is(err, ErrNotFound) {
		return err
	}
	c.count("network_create")
	_, err = c.api.NetworkCreate(ctx, name, network.CreateOptions{Driver: "overlay", Attachable: true, Labels: labels})
	err = classify("create network "+name, err)
	if errors.Is(err, ErrConflict) {
		return nil
	}
	return err
}
