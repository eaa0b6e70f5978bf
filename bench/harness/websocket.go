package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// The websocket_drops_during_swap row: WebSockets open across a version
// change, under berth's blue-green swap and under stop-first recreation.
const (
	wsSockets     = 20
	wsEchoEvery   = 100 * time.Millisecond
	wsEchoTimeout = 2 * time.Second
	wsSettle      = 3 * time.Second // echoing before and after the change
)

// wsDrops is what each subject's sockets saw.
type wsDrops struct {
	Subjects map[string]*wsSubject `json:"subjects"`
	Method   string                `json:"method"`
}

type wsSubject struct {
	Sockets int `json:"sockets"`
	// Dropped counts sockets that closed or missed an echo (a failed,
	// late or wrong answer) before the harness closed them.
	Dropped int `json:"dropped"`
	Echoes  int `json:"echoes"`
	// MaxEchoMS is the slowest echo any socket got, in milliseconds.
	MaxEchoMS float64 `json:"max_echo_ms"`
	// OnOldVersion counts sockets still echoing from 1.0.0 once 1.1.0
	// served new requests.
	OnOldVersion int `json:"on_old_version_after_change"`
	// NewSocketVersion is the version a socket opened after the change reached.
	NewSocketVersion string `json:"new_socket_version"`
	// SocketErrors are the first few errors the sockets saw.
	SocketErrors []string `json:"socket_errors,omitempty"`
	// Error is why the measurement itself failed; its figures are then partial.
	Error string `json:"error,omitempty"`
}

// wsBench measures berth's swap and stop-first recreation, each with
// wsSockets sockets echoing every wsEchoEvery across the change.
func wsBench(ctx context.Context, e *env, r *results, fail func(string, error)) {
	res := &wsDrops{Subjects: map[string]*wsSubject{}}
	r.WebSocketDrops = res
	res.Method = fmt.Sprintf("%d WebSockets to the test challenge's /ws (it answers each message with its version prepended), each sending a message every %s and waiting up to %s for its echo; "+
		"%s of echoes, the version change, %s more, then one new socket; dropped = sockets that closed or missed an echo (failed, late or from another version) before the harness closed them. "+
		"berth: POST /v1/challenges/{name}/swap 1.0.0 → 1.1.0 through the stable endpoint (update {min_healthy_time 2s, drain_timeout 60s}), the change is done when the stable endpoint serves 1.1.0; "+
		"stop_first_recreate: docker stop (10s) → rm → run 1.1.0 on the same fixed 127.0.0.1:<port>:8080, done when GET /version answers 1.1.0",
		wsSockets, wsEchoEvery, wsEchoTimeout, wsSettle, wsSettle)
	for _, sub := range []struct {
		key string
		run func(context.Context, *env) (*wsSubject, error)
	}{{"berth", wsBerth}, {"stop_first_recreate", wsStopFirst}} {
		if ctx.Err() != nil {
			return
		}
		s, err := sub.run(ctx, e)
		if s == nil {
			s = &wsSubject{Sockets: wsSockets}
		}
		if err != nil {
			s.Error = err.Error()
			fail("websocket "+sub.key, err)
		}
		res.Subjects[sub.key] = s
		logf("websocket %s: %+v", sub.key, *s)
	}
}

func wsBerth(ctx context.Context, e *env) (*wsSubject, error) {
	defaults := `  health: {path: /health, interval: 1s, timeout: 1s, failure_threshold: 3}
  update: {min_healthy_time: 2s, healthy_deadline: 60s, drain_timeout: 60s}`
	inst, err := newBerthInstance(e, "w", defaults, fmt.Sprintf("  - {name: ws, image: %s, version: \"1.0.0\", pull_policy: never, port: 8080}\n", e.repo))
	if err != nil {
		return nil, err
	}
	defer cleanupAgent(e, inst)
	p, err := inst.start(ctx, 1)
	if err != nil {
		return nil, err
	}
	defer func() { _ = p.stop(30 * time.Second) }()
	base := p.proxy + "/ws"
	if err := waitOK(ctx, base+"/version", 60*time.Second); err != nil {
		return nil, err
	}
	change := func(ctx context.Context) error {
		status, b, err := post(ctx, p.api+"/v1/challenges/ws/swap", `{"version":"1.1.0"}`)
		if err != nil || status != http.StatusAccepted {
			return fmt.Errorf("POST swap: %d %s %v", status, b, err)
		}
		return waitVersion(ctx, base, "1.1.0")
	}
	s, err := wsAcrossChange(ctx, base, change)
	if err != nil {
		return s, err
	}
	// The drain ends once the old sockets are closed.
	err = waitUntil(ctx, time.Minute, 100*time.Millisecond, "swap to complete", func() (bool, error) {
		var c challengeStatus
		if err := getJSON(ctx, p.api+"/v1/challenges/ws", &c); err != nil {
			return false, err
		}
		return c.Swap != nil && c.Swap.Phase == "completed", nil
	})
	return s, err
}

func wsStopFirst(ctx context.Context, e *env) (*wsSubject, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	name := "bb" + e.runID + "-wsstopfirst"
	publish := fmt.Sprintf("127.0.0.1:%d:8080", port)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	defer func() { _, _ = docker(context.Background(), "rm", "-f", name) }()
	if _, err := docker(ctx, "run", "-d", "--name", name, "--label", e.label, "-p", publish, e.repo+":1.0.0"); err != nil {
		return nil, err
	}
	if err := waitOK(ctx, base+"/version", 60*time.Second); err != nil {
		return nil, err
	}
	change := func(ctx context.Context) error {
		for _, s := range [][]string{
			{"stop", name},
			{"rm", name},
			{"run", "-d", "--name", name, "--label", e.label, "-p", publish, e.repo + ":1.1.0"},
		} {
			if _, err := docker(ctx, s...); err != nil {
				return err
			}
		}
		return waitVersion(ctx, base, "1.1.0")
	}
	return wsAcrossChange(ctx, base, change)
}

// waitVersion polls GET base/version until it answers version.
func waitVersion(ctx context.Context, base, version string) error {
	return waitUntil(ctx, 2*time.Minute, 20*time.Millisecond, version+" serving", func() (bool, error) {
		status, b, err := get(ctx, pollClient, base+"/version", time.Second)
		return err == nil && status == http.StatusOK && strings.Contains(string(b), `"`+version+`"`), err
	})
}

// wsAcrossChange opens the sockets to base/ws, runs change between two
// settle periods, opens one more socket and closes them all.
func wsAcrossChange(ctx context.Context, base string, change func(context.Context) error) (*wsSubject, error) {
	s := &wsSubject{Sockets: wsSockets}
	wsURL := "ws" + strings.TrimPrefix(base, "http") + "/ws"
	socks := make([]*wsEcho, 0, wsSockets)
	defer func() {
		for _, k := range socks {
			k.close()
		}
	}()
	for range wsSockets {
		k, err := dialEcho(ctx, wsURL)
		if err != nil {
			return s, fmt.Errorf("open socket: %w", err)
		}
		socks = append(socks, k)
	}
	_ = sleepCtx(ctx, wsSettle)
	if err := change(ctx); err != nil {
		return s, err
	}
	_ = sleepCtx(ctx, wsSettle)
	if k, err := dialEcho(ctx, wsURL); err != nil {
		s.SocketErrors = append(s.SocketErrors, "new socket: "+err.Error())
	} else {
		s.NewSocketVersion = k.version
		k.close()
	}
	for _, k := range socks {
		k.close()
		echoes, err := k.result()
		s.Echoes += echoes
		s.MaxEchoMS = max(s.MaxEchoMS, ms(k.slowest))
		if err != nil {
			s.Dropped++
			if len(s.SocketErrors) < 3 {
				s.SocketErrors = append(s.SocketErrors, err.Error())
			}
		} else if k.version == "1.0.0" {
			s.OnOldVersion++
		}
	}
	socks = nil
	return s, nil
}

// wsEcho is one socket echoing every wsEchoEvery until closed or failed.
type wsEcho struct {
	conn    *websocket.Conn
	version string
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once

	mu      sync.Mutex
	echoes  int
	slowest time.Duration
	err     error
}

var errEchoMismatch = errors.New("echo from another version or out of order")

func dialEcho(ctx context.Context, url string) (*wsEcho, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, url, nil)
	if err != nil {
		return nil, err
	}
	k := &wsEcho{conn: conn, stop: make(chan struct{}), done: make(chan struct{})}
	got, err := k.echo(dctx, "0")
	if err != nil {
		conn.CloseNow()
		return nil, err
	}
	version, rest, _ := strings.Cut(got, " ")
	if rest != "0" {
		conn.CloseNow()
		return nil, fmt.Errorf("first echo %q", got)
	}
	k.version, k.echoes = version, 1
	go k.loop()
	return k, nil
}

func (k *wsEcho) echo(ctx context.Context, msg string) (string, error) {
	if err := k.conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		return "", err
	}
	_, b, err := k.conn.Read(ctx)
	return string(b), err
}

func (k *wsEcho) loop() {
	defer close(k.done)
	tick := time.NewTicker(wsEchoEvery)
	defer tick.Stop()
	for i := 1; ; i++ {
		select {
		case <-k.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), wsEchoTimeout)
		msg := strconv.Itoa(i)
		sent := time.Now()
		got, err := k.echo(ctx, msg)
		took := time.Since(sent)
		cancel()
		if err == nil && got != k.version+" "+msg {
			err = fmt.Errorf("%w: %q for %q", errEchoMismatch, got, msg)
		}
		k.mu.Lock()
		if err != nil {
			k.err = fmt.Errorf("echo %d: %w", i, err)
		} else {
			k.echoes++
			k.slowest = max(k.slowest, took)
		}
		k.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// close stops echoing and closes the socket; what it saw stays readable.
func (k *wsEcho) close() {
	k.once.Do(func() {
		close(k.stop)
		<-k.done
		if _, err := k.result(); err == nil {
			_ = k.conn.Close(websocket.StatusNormalClosure, "")
		}
		k.conn.CloseNow()
	})
}

func (k *wsEcho) result() (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.echoes, k.err
}

// wsTarget is the websocket row's target: no socket dropped by berth's swap.
func wsTarget(r *results) target {
	const goal = "0 WebSockets dropped by berth's swap, > 0 by stop-first"
	t := target{Name: "websocket_swap", Target: goal, Detail: "not measured (see errors)"}
	if r.WebSocketDrops == nil {
		return t
	}
	b, sf := r.WebSocketDrops.Subjects["berth"], r.WebSocketDrops.Subjects["stop_first_recreate"]
	if b == nil || sf == nil || b.Error != "" || sf.Error != "" {
		return t
	}
	t.Met = verdict(b.Dropped == 0 && sf.Dropped > 0)
	t.Detail = fmt.Sprintf("berth %d of %d dropped (%d stayed on 1.0.0, a new socket reached %s); stop-first %d of %d dropped",
		b.Dropped, b.Sockets, b.OnOldVersion, b.NewSocketVersion, sf.Dropped, sf.Sockets)
	return t
}

// wsRow is the report's row for websocket_drops_during_swap.
func wsRow(r *results) string {
	d := r.WebSocketDrops
	if d == nil {
		return ""
	}
	cell := func(key string) string {
		s := d.Subjects[key]
		if s == nil || s.Error != "" {
			return "not measured"
		}
		return fmt.Sprintf("%d of %d", s.Dropped, s.Sockets)
	}
	return fmt.Sprintf("| WebSockets dropped during a version change (echoing every %s) | %s (blue-green swap) | %s (stop-first recreate) |\n",
		wsEchoEvery, cell("berth"), cell("stop_first_recreate"))
}

// wsSamples is the report's detail line for the row.
func wsSamples(r *results) string {
	d := r.WebSocketDrops
	if d == nil {
		return ""
	}
	var b strings.Builder
	for _, key := range []string{"berth", "stop_first_recreate"} {
		if s := d.Subjects[key]; s != nil {
			fmt.Fprintf(&b, "- websockets, %s: %d echoes (slowest %.1f ms), %d of %d dropped, %d still on 1.0.0 after the change, a new socket reached %s",
				key, s.Echoes, s.MaxEchoMS, s.Dropped, s.Sockets, s.OnOldVersion, s.NewSocketVersion)
			if len(s.SocketErrors) > 0 {
				fmt.Fprintf(&b, "; e.g. %s", strings.Join(s.SocketErrors, "; "))
			}
			b.WriteString("\n")
		}
	}
	fmt.Fprintf(&b, "- websockets method: %s\n", d.Method)
	return b.String()
}
