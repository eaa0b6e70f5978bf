package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"berth/agent/alerts"
	"berth/agent/challenge"
	"berth/agent/proxy"
	"berth/configs"
	"berth/docker"
	"berth/statestore"
	"berth/supervisor"
)

// Options are the process-level inputs of an Agent besides its config.
type Options struct {
	Logger  zerolog.Logger
	Version string           // berth's own version, reported by the API
	Clock   supervisor.Clock // nil = real time
	// Getenv reads BERTH_TOKEN, NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID
	// and, on reload, the BERTH_* overrides of the config; nil = os.Getenv.
	Getenv func(string) string
}

// Agent is one running berth: store, engine client, listeners and the
// supervisor tree. Create it with New, run it once with Run.
type Agent struct {
	// cfg is the config berth started with, read only for the agent settings
	// that need a restart (see reconciler.reload). Everything else, and the
	// policy, comes from config().
	cfg     *configs.Config
	inForce atomic.Pointer[configs.Config] // see config
	opts    Options
	log     zerolog.Logger
	clock   supervisor.Clock
	store   *statestore.Store
	engine  *docker.Client
	dir     *challenge.Directory
	watcher *watcher
	runtime challenge.Runtime // agent.backend's: dockerrt or swarmrt
	deps    *challenge.Deps   // what every challenge owner shares

	checkpoints *checkpointer
	proxy       *proxy.Proxy
	metrics     *metrics

	apiListener   net.Listener
	proxyListener net.Listener
	token         string

	requests   chan request // to the reconciler: reload, register, delete
	started    time.Time
	reconciled atomic.Bool
	draining   atomic.Bool
}

// New opens the store, prepares the engine client and binds both listeners,
// so configuration and port problems surface before anything runs.
func New(cfg *configs.Config, opts Options) (_ *Agent, err error) {
	if opts.Clock == nil {
		opts.Clock = supervisor.RealClock()
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	a := &Agent{cfg: cfg, opts: opts, log: opts.Logger, clock: opts.Clock, dir: &challenge.Directory{}, started: time.Now(),
		requests: make(chan request)}
	a.setConfig(cfg)
	defer func() {
		if err != nil {
			a.closeAll()
		}
	}()
	if a.token, err = loadToken(cfg.Agent.API.TokenFile, opts.Getenv); err != nil {
		return nil, err
	}
	if a.token == "" {
		if !isLoopbackAddr(cfg.Agent.API.Listen) {
			return nil, fmt.Errorf("api.listen %s is not loopback: set api.token_file or BERTH_TOKEN", cfg.Agent.API.Listen)
		}
		a.log.Warn().Msg("admin API has no token; it is reachable from this host only")
	}
	if err := os.MkdirAll(cfg.Agent.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", cfg.Agent.DataDir, err)
	}
	if a.store, err = openStore(cfg.Agent.DataDir, a.log); err != nil {
		return nil, err
	}
	a.checkpoints = newCheckpointer(a.store, cfg.Agent.DataDir, cfg.Agent.Checkpoint.Keep, cfg.Agent.Checkpoint.Interval,
		a.clock, a.log.With().Str(fieldComponent, "checkpoint").Logger())
	// Metrics exist before the engine client so every API request is counted.
	var dockerUp atomic.Pointer[func() bool]
	a.metrics = newMetrics(a.dir, func() bool { f := dockerUp.Load(); return f != nil && (*f)() })
	a.engine, err = docker.New(docker.Options{Host: cfg.Agent.DockerHost, Limits: engineLimits(cfg.Agent.Policy),
		OnRequest: func(op string) { a.metrics.dockerRequests.WithLabelValues(op).Inc() }})
	if err != nil {
		return nil, err
	}
	if a.apiListener, err = net.Listen("tcp", cfg.Agent.API.Listen); err != nil {
		return nil, fmt.Errorf("api.listen %s: %w", cfg.Agent.API.Listen, err)
	}
	if a.proxyListener, err = net.Listen("tcp", cfg.Agent.Proxy.Listen); err != nil {
		return nil, fmt.Errorf("proxy.listen %s: %w", cfg.Agent.Proxy.Listen, err)
	}
	if a.runtime, err = newRuntime(a.engine, cfg.Agent, a.log); err != nil {
		return nil, err
	}
	a.watcher = &watcher{runtime: a.runtime, store: a.store, dir: a.dir, clock: a.clock,
		rand: rand.Float64, log: a.log.With().Str(fieldComponent, "docker").Logger(), relist: 30 * time.Second, pingEvery: 5 * time.Second}
	up := a.watcher.dockerUp
	dockerUp.Store(&up)
	a.proxy = proxy.New(proxyRoutes{a.dir}, proxy.Options{Log: a.log.With().Str(fieldComponent, "proxy").Logger(),
		OnRequest: func(name string, code int, took time.Duration) {
			a.metrics.proxyRequests.WithLabelValues(name, strconv.Itoa(code)).Inc()
			a.metrics.proxyDuration.WithLabelValues(name).Observe(took.Seconds())
		},
		RetryMethods:   cfg.Agent.Proxy.RetryMethods,
		OnUpstreamDown: proxyRoutes{a.dir}.upstreamDown,
	})
	a.metrics.addAgentSeries(opts.Version, a.proxy.InFlightTotal)
	a.checkpoints.duration = a.metrics.checkpointDuration
	a.checkpoints.reportLastSuccess(a.metrics.checkpointLast)
	a.deps = &challenge.Deps{
		Runtime:        a.runtime,
		Store:          lifeStore{a.store},
		Observer:       observer{log: a.log, metrics: a.metrics},
		Traffic:        a.proxy,
		Prober:         challenge.NewProber(),
		Clock:          a.clock,
		Rand:           rand.Float64,
		RuntimeUp:      a.watcher.dockerUp,
		Endpoint:       "http://" + a.proxyListener.Addr().String(),
		StopOnShutdown: cfg.Agent.Shutdown == "stop",
	}
	return a, nil
}

// config is the config in force, the only one: the API parses and checks
// specs with its defaults and policy, and the reconciler takes the declared
// challenges from it. New publishes the config loaded at start; after that
// only the reconciler publishes, once per reload. A caller reads it once and
// keeps the pointer for the whole request, never a copy across requests; the
// value is never modified once published.
func (a *Agent) config() *configs.Config { return a.inForce.Load() }

// setConfig publishes cfg as the config in force.
func (a *Agent) setConfig(cfg *configs.Config) { a.inForce.Store(cfg) }

// APIAddr is the bound admin API address (host:port).
func (a *Agent) APIAddr() string { return a.apiListener.Addr().String() }

// ProxyAddr is the bound stable-endpoint address (host:port).
func (a *Agent) ProxyAddr() string { return a.proxyListener.Addr().String() }

func loadToken(path string, getenv func(string) string) (string, error) {
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("api.token_file: %w", err)
		}
		token := strings.TrimSpace(string(b))
		if token == "" {
			return "", fmt.Errorf("api.token_file %s is empty", path)
		}
		return token, nil
	}
	return strings.TrimSpace(getenv("BERTH_TOKEN")), nil
}

func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Run supervises until ctx ends, then shuts down: the API reports draining,
// services stop, and challenge containers keep running unless
// agent.shutdown is "stop". Run closes the store and listeners before returning.
func (a *Agent) Run(ctx context.Context) error {
	defer a.closeAll()
	a.publishRecorded()
	root := supervisor.New(supervisor.Spec{Name: "berth", Clock: a.clock, EventHook: a.logSupervisorEvent})
	notify := newNotifier(a.opts.Getenv, a.log.With().Str(fieldComponent, "sd-notify").Logger())
	services := []struct {
		name string
		svc  supervisor.Service
	}{
		{"docker-watcher", a.watcher},
		{"checkpointer", a.checkpoints},
		{"alerts", alerts.New(a.cfg.Agent, alertFeed{a.store}, a.clock, a.log, alerts.Options{Config: a.config,
			OnDelivery: func(result string) { a.metrics.alerts.WithLabelValues(result).Inc() }})}, // returns at once without agent.alerts.webhook_url
		{"admin-api", &httpService{name: "admin api", listener: a.apiListener, handler: a.apiHandler(), log: a.log}},
		{"proxy", &httpService{name: "proxy", listener: a.proxyListener, handler: a.proxy, log: a.log, longRequests: true, grace: 30 * time.Second,
			readHeaderTimeout: proxy.ReadHeaderTimeout, idleTimeout: proxy.IdleTimeout,
			wrap: func(srv *http.Server) server { return a.proxy.NewServer(srv) }}},
		{"reconciler", supervisor.ServiceFunc(func(ctx context.Context) error { return a.reconcile(ctx, root) })},
		{"orphan-reaper", &orphanReaper{runtime: a.runtime, store: a.store, dir: a.dir, clock: a.clock,
			grace: a.cfg.Agent.OrphanGrace, log: a.log.With().Str(fieldComponent, "orphans").Logger(), ready: a.reconciled.Load}},
		{"sd-notify", supervisor.ServiceFunc(func(ctx context.Context) error { return notify.Serve(ctx, a.sdReady, a.sdAlive(root)) })},
	}
	for _, s := range services {
		if _, err := root.Add(s.name, s.svc); err != nil {
			return err
		}
	}
	a.log.Info().Str("agent_id", a.cfg.Agent.ID).Str("api", a.APIAddr()).Str("proxy", a.ProxyAddr()).
		Str("docker_host", a.engine.Host()).Int("challenges", len(a.cfg.Challenges)).Int("procs", runtime.GOMAXPROCS(0)).Msg("berth starting")

	rootCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- root.Serve(rootCtx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	a.draining.Store(true)
	notify.Stopping()
	a.log.Info().Str("shutdown", a.cfg.Agent.Shutdown).Msg("berth stopping")
	cancel()
	err := <-done
	// Every challenge goroutine has persisted and returned: the store is final.
	if _, cerr := a.checkpoints.write("shutdown"); cerr != nil {
		a.log.Error().Err(cerr).Msg("final checkpoint failed")
	}
	a.log.Info().Msg("berth stopped")
	return err
}

func (a *Agent) closeAll() {
	for _, l := range []net.Listener{a.apiListener, a.proxyListener} {
		if l != nil {
			l.Close()
		}
	}
	if a.store != nil {
		if err := a.store.Close(); err != nil {
			a.log.Error().Err(err).Msg("close state store")
		}
	}
	if a.engine != nil {
		a.engine.Close()
	}
}

func (a *Agent) logSupervisorEvent(e supervisor.Event) {
	switch ev := e.(type) {
	case supervisor.EventServiceFailed:
		l := a.log.Error().Str("service", ev.Service).Err(ev.Err).Int("failures", ev.Failures)
		if ev.Panic {
			l = l.Str("stack", ev.Stack)
		}
		l.Msg("service failed")
	case supervisor.EventStopTimeout:
		a.log.Warn().Str("service", ev.Service).Msg("service slow to stop")
	default:
		a.log.Debug().Msg(e.String())
	}
}

// Reload re-reads the config file and challenge_dirs (SIGHUP). An invalid
// config is refused whole; the running one stays.
func (a *Agent) Reload(ctx context.Context) (ReloadResult, error) {
	reply := make(chan ReloadResult, 1)
	if err := a.ask(ctx, reqReload{reply: reply}); err != nil {
		return ReloadResult{}, err
	}
	select {
	case res := <-reply:
		return res, res.err
	case <-ctx.Done():
		return ReloadResult{}, ctx.Err()
	}
}

// ask hands a request to the reconciler, which serves one at a time.
func (a *Agent) ask(ctx context.Context, req request) error {
	if !a.reconciled.Load() {
		return errNotReady
	}
	select {
	case a.requests <- req:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var errNotReady = errors.New("berth is still starting (waiting for the Docker engine)")
