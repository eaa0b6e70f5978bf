package agent

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"berth/supervisor"
)

// sd_notify(3) without libsystemd: each state is one datagram of KEY=VALUE
// lines sent to the unix socket named by NOTIFY_SOCKET.

const (
	notifyReadyPoll  = 250 * time.Millisecond
	notifyCheckLimit = 5 * time.Second // per HTTP self-check
	notifyWriteLimit = time.Second     // a full socket buffer must not wedge the loop
)

// notifier tells a service manager (systemd Type=notify) when berth is ready,
// when it stops, and that it still makes progress. Without NOTIFY_SOCKET
// every method is a no-op and Serve only waits for ctx. Ready and Stopping
// are safe to call from any goroutine.
type notifier struct {
	addr     *net.UnixAddr // nil: no service manager listens
	watchdog time.Duration // feed interval (WATCHDOG_USEC/2); 0 = no watchdog
	clock    supervisor.Clock
	poll     time.Duration // how often Serve asks ready before READY=1
	log      zerolog.Logger

	readySent atomic.Bool
	stopping  atomic.Bool
	failing   atomic.Bool // a send failed; logged once until one succeeds
}

// newNotifier reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID.
func newNotifier(getenv func(string) string, log zerolog.Logger) *notifier {
	n := &notifier{clock: supervisor.RealClock(), poll: notifyReadyPoll, log: log}
	socket := getenv("NOTIFY_SOCKET")
	if socket == "" {
		return n
	}
	if !strings.HasPrefix(socket, "/") && !strings.HasPrefix(socket, "@") {
		log.Warn().Str("notify_socket", socket).Msg("NOTIFY_SOCKET is not a unix socket path or @abstract name; not notifying the service manager")
		return n
	}
	// Go maps a leading '@' to the abstract namespace.
	n.addr = &net.UnixAddr{Name: socket, Net: "unixgram"}
	wd, err := watchdogInterval(getenv, os.Getpid())
	if err != nil {
		log.Warn().Err(err).Msg("watchdog disabled")
	}
	n.watchdog = wd
	return n
}

// watchdogInterval is half of WATCHDOG_USEC, as sd_watchdog_enabled(3)
// advises, or 0 when no watchdog is set or it is meant for another process.
func watchdogInterval(getenv func(string) string, pid int) (time.Duration, error) {
	usec := getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, nil
	}
	if p := getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(pid) {
		return 0, nil
	}
	v, err := strconv.ParseUint(usec, 10, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("WATCHDOG_USEC=%q is not a positive number of microseconds", usec)
	}
	if v > math.MaxInt64/uint64(time.Microsecond) {
		v = math.MaxInt64 / uint64(time.Microsecond)
	}
	return time.Duration(v) * time.Microsecond / 2, nil
}

// Ready sends READY=1 once, unless shutdown has begun.
func (n *notifier) Ready() {
	if n.addr == nil || n.stopping.Load() || n.readySent.Swap(true) {
		return
	}
	n.notify("READY=1\nSTATUS=serving")
	n.log.Info().Msg("service manager notified: ready")
}

// Stopping sends STOPPING=1 once.
func (n *notifier) Stopping() {
	if n.addr == nil || n.stopping.Swap(true) {
		return
	}
	n.notify("STOPPING=1\nSTATUS=stopping")
}

func (n *notifier) notify(state string) {
	if err := n.send(state); err != nil {
		if !n.failing.Swap(true) {
			n.log.Warn().Err(err).Msg("sd_notify failed; the service manager may not see berth's state")
		}
		return
	}
	n.failing.Store(false)
}

func (n *notifier) send(state string) error {
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(notifyWriteLimit)); err != nil {
		return err
	}
	_, err = conn.Write([]byte(state))
	return err
}

// Serve asks ready every poll interval until it answers true, then sends
// READY=1. With a watchdog it starts one alive call per interval and sends
// WATCHDOG=1 each time a call answers true: a false answer, or a call still
// running at the next tick, leaves the watchdog unfed so the service manager
// restarts a wedged berth. alive runs on its own goroutine, one call at a
// time. Serve returns once ctx is done and the running calls have returned;
// both functions must return promptly once their ctx is done.
func (n *notifier) Serve(ctx context.Context, ready, alive func(context.Context) bool) error {
	if n.addr == nil {
		<-ctx.Done()
		return nil
	}
	readyT := n.clock.NewTimer(0)
	readyC := readyT.C()
	var dogT supervisor.Timer
	var dogC <-chan time.Time
	if n.watchdog > 0 {
		dogT = n.clock.NewTimer(n.watchdog)
		dogC = dogT.C()
	}
	var probe chan bool // answer of the running alive call; nil when none runs
	defer func() {
		readyT.Stop()
		if dogT != nil {
			dogT.Stop()
		}
		if probe != nil {
			<-probe
		}
	}()
	healthy := true // last answer, so a change is logged once
	answered := func(ok bool) {
		probe = nil
		if ctx.Err() != nil {
			return // cancelled by shutdown, not a verdict
		}
		if ok {
			n.notify("WATCHDOG=1")
		}
		if ok != healthy {
			healthy = ok
			if ok {
				n.log.Info().Msg("liveness check passes again; feeding the watchdog")
			} else {
				n.log.Error().Msg("liveness check failed; the watchdog is not fed")
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-readyC:
			if ready(ctx) {
				n.Ready()
				readyC = nil
				continue
			}
			readyT = n.clock.NewTimer(n.poll)
			readyC = readyT.C()
		case <-dogC:
			if probe != nil {
				select {
				case ok := <-probe:
					answered(ok)
				default:
				}
			}
			if probe == nil {
				p := make(chan bool, 1)
				go func() { p <- alive(ctx) }()
				probe = p
			} else if healthy {
				healthy = false
				n.log.Error().Dur("interval", n.watchdog).Msg("liveness check did not answer within a watchdog interval; the watchdog is not fed")
			}
			dogT = n.clock.NewTimer(n.watchdog)
			dogC = dogT.C()
		case ok := <-probe:
			answered(ok)
		}
	}
}

// sdReady is what READY=1 waits for: the first reconcile is done, /readyz
// answers 200 through the API listener, and the proxy listener answers HTTP.
func (a *Agent) sdReady(ctx context.Context) bool {
	return a.reconciled.Load() &&
		httpAnswers(ctx, "http://"+dialAddr(a.APIAddr())+"/readyz", http.StatusOK) &&
		httpAnswers(ctx, "http://"+dialAddr(a.ProxyAddr())+"/", 0)
}

// sdAlive is the watchdog's liveness check. It passes only when the root
// supervisor's owner goroutine answers a round trip through its control
// channel (it answers nil once Serve has returned), which it cannot do while
// wedged, and when the admin API accepts a new connection and answers
// /healthz. Docker being down does not fail it: restarting berth would not help.
func (a *Agent) sdAlive(root *supervisor.Supervisor) func(context.Context) bool {
	return func(ctx context.Context) bool {
		return root.Services() != nil && httpAnswers(ctx, "http://"+dialAddr(a.APIAddr())+"/healthz", http.StatusOK)
	}
}

// selfCheck is a client for berth's own listeners: no HTTP_PROXY, and a fresh
// connection per request, so a pass proves the accept loop runs.
var selfCheck = &http.Client{
	Timeout:   notifyCheckLimit,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// httpAnswers reports whether GET url answers with status (any status when 0).
func httpAnswers(ctx context.Context, url string, status int) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := selfCheck.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return status == 0 || resp.StatusCode == status
}

// dialAddr turns a listener's wildcard address into a loopback one to dial.
func dialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	// Go's wildcard "tcp" listeners are dual-stack, and IPv6 may be off in a container.
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
