package docker

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/client"
)

// Options configure a Client. Zero values take the documented defaults.
type Options struct {
	// Host overrides DOCKER_HOST (unix:///var/run/docker.sock, tcp://host:2376).
	// TLS comes from DOCKER_CERT_PATH / DOCKER_TLS_VERIFY as with the docker CLI.
	Host string
	// CallTimeout bounds every non-streaming engine call (default 30s).
	CallTimeout time.Duration
	// PullStallTimeout aborts a pull that reports no progress for this long (default 60s).
	PullStallTimeout time.Duration
	// OnRequest is called once per engine API request with its operation name,
	// so callers can count the cost of supervision. Must be cheap and safe for
	// concurrent use.
	OnRequest func(op string)
	// Keychain resolves registry credentials; nil reads the Docker config file.
	Keychain Keychain
	// Limits are the maxima Create enforces; see [Client.SetLimits].
	Limits Limits
}

// Client is a narrow, concurrency-safe client of one Docker Engine.
type Client struct {
	api              *client.Client
	host             string
	callTimeout      time.Duration
	pullStallTimeout time.Duration
	onRequest        func(op string)
	keychain         Keychain
	limits           atomic.Pointer[Limits]
	nodeID           atomic.Pointer[string] // swarm node id, once known (services.go)

	pullMu sync.Mutex
	pulls  map[string]*pullCall // guarded by pullMu; shared in-flight pulls by reference
}

// New builds a client from Options and the DOCKER_* environment, negotiating
// the API version with the engine on first use. It does not contact the engine.
func New(opts Options) (*Client, error) {
	clientOpts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if opts.Host != "" {
		clientOpts = append(clientOpts, client.WithHost(opts.Host))
	}
	api, err := client.NewClientWithOpts(clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("docker client (DOCKER_HOST=%q, host %q): %w", os.Getenv("DOCKER_HOST"), opts.Host, err)
	}
	c := &Client{
		api:              api,
		host:             api.DaemonHost(),
		callTimeout:      opts.CallTimeout,
		pullStallTimeout: opts.PullStallTimeout,
		onRequest:        opts.OnRequest,
		keychain:         opts.Keychain,
		pulls:            map[string]*pullCall{},
	}
	c.SetLimits(opts.Limits)
	if c.callTimeout <= 0 {
		c.callTimeout = 30 * time.Second
	}
	if c.pullStallTimeout <= 0 {
		c.pullStallTimeout = 60 * time.Second
	}
	if c.keychain == nil {
		c.keychain = DockerConfigKeychain()
	}
	return c, nil
}

// SetLimits replaces the maxima Create enforces (after a config reload).
func (c *Client) SetLimits(l Limits) { c.limits.Store(&l) }

// Limits are the maxima Create enforces.
func (c *Client) Limits() Limits { return *c.limits.Load() }

// Host is the engine address in use.
func (c *Client) Host() string { return c.host }

// Close releases idle connections.
func (c *Client) Close() error { return c.api.Close() }

// call starts one bounded engine request.
func (c *Client) call(ctx context.Context, op string) (context.Context, context.CancelFunc) {
	c.count(op)
	return context.WithTimeout(ctx, c.callTimeout)
}

func (c *Client) count(op string) {
	if c.onRequest != nil {
		c.onRequest(op)
	}
}

// EngineInfo describes the engine answering Ping.
type EngineInfo struct {
	APIVersion string
	OSType     string
}

// Ping checks the engine answers within the call timeout.
func (c *Client) Ping(ctx context.Context) (EngineInfo, error) {
	ctx, cancel := c.call(ctx, "ping")
	defer cancel()
	p, err := c.api.Ping(ctx)
	if err != nil {
		return EngineInfo{}, classify("ping "+c.host, err)
	}
	return EngineInfo{APIVersion: p.APIVersion, OSType: p.OSType}, nil
}
