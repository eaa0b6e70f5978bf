// Command testchallenge is the program the real-engine tests run inside
// containers. Its behaviour is driven by environment knobs read at start and by
// admin endpoints at run time, so one image covers healthy, slow, failing,
// crashing, hanging and memory-hungry challenges.
//
// It writes no files, so it runs on a read-only root fs as any user.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

const (
	drainTimeout = 30 * time.Second
	maxBodyBytes = 64 << 20
	// exitCodeOOM mimics a SIGKILL'd process when no memory limit stopped us.
	exitCodeOOM = 137
	// Delay between answering /admin/crash and exiting, so the reply reaches
	// the client before the socket dies.
	crashGrace = 100 * time.Millisecond
)

type config struct {
	port         string
	version      string
	healthStatus string
	healthFail   bool
	startDelay   time.Duration
	crashAfter   time.Duration
	crashCode    int
	hangAfter    time.Duration
	oomAfter     time.Duration
	oomLimitMB   int
	importFails  int
}

func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		port:         or(getenv("PORT"), "8080"),
		version:      or(getenv("VERSION"), "0.0.0"),
		healthStatus: or(getenv("HEALTH_STATUS"), "ok"),
		healthFail:   getenv("HEALTH_FAIL") == "1",
	}
	var err error
	ms := func(key string) time.Duration {
		n, e := intEnv(getenv, key, 0)
		err = errors.Join(err, e)
		return time.Duration(n) * time.Millisecond
	}
	c.startDelay = ms("START_DELAY_MS")
	c.crashAfter = ms("CRASH_AFTER_MS")
	c.hangAfter = ms("HANG_AFTER_MS")
	c.oomAfter = ms("OOM_AFTER_MS")
	code, e := intEnv(getenv, "CRASH_EXIT_CODE", 1)
	c.crashCode = code
	limit, e2 := intEnv(getenv, "OOM_LIMIT_MB", 2048)
	c.oomLimitMB = limit
	fails, e3 := intEnv(getenv, "IMPORT_FAIL", 0)
	c.importFails = fails
	return c, errors.Join(err, e, e2, e3)
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func intEnv(getenv func(string) string, key string, def int) (int, error) {
	v := getenv(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q: want a non-negative integer", key, v)
	}
	return n, nil
}

// app holds the run-time state the handlers share.
type app struct {
	version      string
	healthStatus string
	// exit and oom are injected so handler tests do not end the test binary.
	exit func(code int)
	oom  func()

	mu        sync.Mutex
	unhealthy bool
	hung      bool
	state     []byte
	stateType string

	items counter
}

func (a *app) setUnhealthy(v bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.unhealthy = v
}

func (a *app) setHung() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hung = true
}

func (a *app) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", a.health)
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		a.json(w, http.StatusOK, map[string]any{})
	})
	mux.HandleFunc("GET /work", a.work)
	mux.HandleFunc("/echo", a.echo)
	mux.HandleFunc("/echo/", a.echo)
	mux.HandleFunc("GET /state", a.getState)
	mux.HandleFunc("POST /state", a.putState)
	mux.HandleFunc("PUT /state", a.putState)
	a.items.register(mux)
	a.registerLive(mux)
	mux.HandleFunc("POST /admin/crash", a.crash)
	mux.HandleFunc("POST /admin/hang", func(w http.ResponseWriter, r *http.Request) {
		a.setHung()
		a.json(w, http.StatusOK, map[string]any{"status": "hung"})
	})
	mux.HandleFunc("POST /admin/unhealthy", func(w http.ResponseWriter, r *http.Request) {
		a.setUnhealthy(true)
		a.json(w, http.StatusOK, map[string]any{"status": "unhealthy"})
	})
	mux.HandleFunc("POST /admin/healthy", func(w http.ResponseWriter, r *http.Request) {
		a.setUnhealthy(false)
		a.json(w, http.StatusOK, map[string]any{"status": a.healthStatus})
	})
	mux.HandleFunc("POST /admin/oom", func(w http.ResponseWriter, r *http.Request) {
		a.json(w, http.StatusOK, map[string]any{"status": "allocating"})
		go a.oom()
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Challenge-Version", a.version)
		mux.ServeHTTP(w, r)
	})
}

// json writes body plus the version field with an explicit length, so a reply
// is complete on the wire as soon as it is flushed.
func (a *app) json(w http.ResponseWriter, status int, body map[string]any) {
	body["version"] = a.version
	b, err := json.Marshal(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (a *app) health(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	hung, unhealthy := a.hung, a.unhealthy
	a.mu.Unlock()
	if hung {
		// Never answer; return only when the prober gives up so shutdown is not held.
		<-r.Context().Done()
		return
	}
	if unhealthy {
		a.json(w, http.StatusServiceUnavailable, map[string]any{"status": "unhealthy"})
		return
	}
	a.json(w, http.StatusOK, map[string]any{"status": a.healthStatus})
}

func (a *app) work(w http.ResponseWriter, r *http.Request) {
	ms, err := strconv.Atoi(or(r.URL.Query().Get("ms"), "0"))
	if err != nil || ms < 0 {
		a.json(w, http.StatusBadRequest, map[string]any{"error": "ms must be a non-negative integer"})
		return
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		a.json(w, http.StatusOK, map[string]any{"slept_ms": ms})
	case <-r.Context().Done():
		a.json(w, http.StatusServiceUnavailable, map[string]any{"error": "request cancelled"})
	}
}

func (a *app) echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		a.json(w, http.StatusRequestEntityTooLarge, map[string]any{"error": err.Error()})
		return
	}
	a.json(w, http.StatusOK, map[string]any{
		"method":      r.Method,
		"path":        r.URL.Path,
		"query":       r.URL.RawQuery,
		"host":        r.Host,
		"remote_addr": r.RemoteAddr,
		"headers":     r.Header,
		"body":        string(body),
	})
}

func (a *app) getState(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	state, typ := a.state, a.stateType
	a.mu.Unlock()
	w.Header().Set("Content-Type", or(typ, "application/octet-stream"))
	w.Header().Set("Content-Length", strconv.Itoa(len(state)))
	_, _ = w.Write(state)
}

func (a *app) putState(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		a.json(w, http.StatusRequestEntityTooLarge, map[string]any{"error": err.Error()})
		return
	}
	a.mu.Lock()
	a.state, a.stateType = body, r.Header.Get("Content-Type")
	a.mu.Unlock()
	a.json(w, http.StatusOK, map[string]any{"bytes": len(body)})
}

func (a *app) crash(w http.ResponseWriter, r *http.Request) {
	code, err := strconv.Atoi(or(r.URL.Query().Get("code"), "1"))
	if err != nil || code < 0 || code > 255 {
		a.json(w, http.StatusBadRequest, map[string]any{"error": "code must be 0..255"})
		return
	}
	w.Header().Set("Connection", "close")
	a.json(w, http.StatusOK, map[string]any{"status": "crashing", "code": code})
	_ = http.NewResponseController(w).Flush()
	time.AfterFunc(crashGrace, func() { a.exit(code) })
}

// eatMemory allocates and touches memory until the kernel kills the process.
// The cap keeps a container started without a memory limit from eating the host.
func eatMemory(limitMB int) {
	const chunkMB = 16
	var hoard [][]byte
	for used := 0; used < limitMB; used += chunkMB {
		b := make([]byte, chunkMB<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		hoard = append(hoard, b)
	}
	log.Printf("allocated %d MiB without being killed; exiting %d", len(hoard)*chunkMB, exitCodeOOM)
	os.Exit(exitCodeOOM)
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	cfg, err := loadConfig(os.Getenv)
	if err != nil {
		log.Print(err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, cfg))
}

func run(ctx context.Context, cfg config) int {
	a := &app{
		version:      cfg.version,
		healthStatus: cfg.healthStatus,
		unhealthy:    cfg.healthFail,
		exit: func(code int) {
			log.Printf("crashing with exit code %d", code)
			os.Exit(code)
		},
		oom: func() { eatMemory(cfg.oomLimitMB) },
	}
	a.items.importFails = cfg.importFails
	// Timers count from process start, not from listen.
	if cfg.crashAfter > 0 {
		time.AfterFunc(cfg.crashAfter, func() { a.exit(cfg.crashCode) })
	}
	if cfg.hangAfter > 0 {
		time.AfterFunc(cfg.hangAfter, a.setHung)
	}
	if cfg.oomAfter > 0 {
		time.AfterFunc(cfg.oomAfter, a.oom)
	}

	if cfg.startDelay > 0 {
		t := time.NewTimer(cfg.startDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			return 0
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("", cfg.port))
	if err != nil {
		log.Print(err)
		return 1
	}
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("testchallenge %s listening on %s", cfg.version, ln.Addr())
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		log.Print(err)
		return 1
	case <-ctx.Done():
	}
	log.Print("terminating: draining in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Printf("drain incomplete: %v", err)
	}
	<-serveErr
	return 0
}
