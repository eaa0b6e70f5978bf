package agent

import (
	"berth/agent/challenge"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Timeouts for the stable endpoint's client side. There is no limit on a
// whole request: an evaluation may take an hour. Instead each step that
// waits on the client is bounded: sending the request header, every pause
// while sending the request body, and accepting every write of the response.
var (
	proxyReadHeaderTimeout = 10 * time.Second
	proxyIdleTimeout       = 2 * time.Minute
	proxyBodyIdleTimeout   = time.Minute
	proxyWriteIdleTimeout  = time.Minute
)

// proxy is the stable endpoint: /<challenge>/<rest> goes to the challenge's
// active container as /<rest>, so callers never track containers.
type proxy struct {
	dir       *challenge.Directory
	log       zerolog.Logger
	reverse   *httputil.ReverseProxy
	transport *http.Transport
	inflight  inflightCounts
	// Client-side bounds, from proxyBodyIdleTimeout and proxyWriteIdleTimeout.
	bodyIdle, writeIdle time.Duration
	requests            *prometheus.CounterVec
	lastErrLog          atomic.Int64 // unix nanos of the last upstream error logged
}

// InFlight is how many proxied requests an upstream is serving now; a swap
// drains the old container until this reaches zero.
func (p *proxy) InFlight(upstream string) int64 { return p.inflight.get(upstream) }

// inflightCounts counts proxied requests in progress per upstream URL. An
// entry goes when its count reaches zero, so upstreams of containers long
// replaced do not pile up.
type inflightCounts struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *inflightCounts) add(upstream string, d int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.m[upstream] + d
	if n > 0 {
		if c.m == nil {
			c.m = map[string]int64{}
		}
		c.m[upstream] = n
		return
	}
	delete(c.m, upstream)
}

func (c *inflightCounts) get(upstream string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[upstream]
}

func (c *inflightCounts) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// CloseIdle drops idle keep-alive connections, so a drained container is
// not kept busy by connections nobody uses.
func (p *proxy) CloseIdle() { p.transport.CloseIdleConnections() }

// route is what ServeHTTP decided, handed to Rewrite and ErrorHandler.
type route struct {
	challenge string
	target    *url.URL
}

type routeKey struct{}

func newProxy(dir *challenge.Directory, log zerolog.Logger) *proxy {
	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// No response timeout: challenge evaluations may legitimately run for an hour.
	}
	p := &proxy{dir: dir, log: log, transport: transport, bodyIdle: proxyBodyIdleTimeout, writeIdle: proxyWriteIdleTimeout}
	p.reverse = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			rt := r.In.Context().Value(routeKey{}).(route)
			r.SetURL(rt.target)
			r.Out.URL.Path, r.Out.URL.RawPath = r.In.URL.Path, r.In.URL.RawPath
			r.Out.Host = rt.target.Host
			r.SetXForwarded()
		},
		Transport:     transport,
		FlushInterval: -1, // stream responses as they come
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return // the client left
			}
			rt, _ := r.Context().Value(routeKey{}).(route)
			// Clients retrying fast against a dead upstream must not flood the log.
			if now := time.Now().UnixNano(); now-p.lastErrLog.Load() > int64(time.Second) {
				p.lastErrLog.Store(now)
				p.log.Warn().Err(err).Str(fieldChallenge, rt.challenge).Msg("proxy upstream error")
			}
			writeJSONError(w, http.StatusBadGateway, "upstream_error", "challenge container did not answer", 0)
		},
	}
	return p
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	iw, r := p.boundClient(w, r)
	// The server writes the end of the response after ServeHTTP returns,
	// maybe long after the last write: give the client time for it.
	defer iw.arm()
	w = iw
	name, rest := splitChallengePath(r.URL.EscapedPath())
	if p.requests != nil {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		w = rec
		defer func() {
			label := name
			if p.dir.Get(name) == nil {
				label = "" // unknown names must not grow the series set
			}
			p.requests.WithLabelValues(label, strconv.Itoa(rec.code)).Inc()
		}()
	}
	h := p.dir.Get(name)
	if name == "" || h == nil {
		writeJSONError(w, http.StatusNotFound, "unknown_challenge", "no challenge named "+quote(name), 0)
		return
	}
	st := h.Status()
	if st.Upstream == "" || !st.Health.Serving() {
		writeJSONError(w, http.StatusServiceUnavailable, "unavailable",
			"challenge "+name+" has no healthy container (state "+string(st.State)+", health "+string(st.Health)+")", 2)
		return
	}
	target, err := url.Parse(st.Upstream)
	if err != nil {
		writeJSONError(w, http.StatusBadGateway, "upstream_error", "bad upstream address", 0)
		return
	}
	p.inflight.add(st.Upstream, 1)
	defer p.inflight.add(st.Upstream, -1)
	out := r.Clone(context.WithValue(r.Context(), routeKey{}, route{challenge: name, target: target}))
	if err := setEscapedPath(out.URL, rest); err != nil {
		writeJSONError(w, http.StatusBadRequest, "bad_request", "bad request path", 0)
		return
	}
	p.reverse.ServeHTTP(w, out)
}

// boundClient bounds every wait on the client of one proxied request: each
// pause in its request body (bodyIdle) and each write of the response
// (writeIdle). Waiting on the challenge is not bounded.
func (p *proxy) boundClient(w http.ResponseWriter, r *http.Request) (*idleWriter, *http.Request) {
	rc := http.NewResponseController(w)
	// A keep-alive connection may carry the last request's write deadline.
	_ = rc.SetWriteDeadline(time.Time{})
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &idleBody{ReadCloser: r.Body, rc: rc, idle: p.bodyIdle}
	}
	return &idleWriter{ResponseWriter: w, rc: rc, idle: p.writeIdle}, r
}

// idleBody fails a request body read that waits longer than idle for the
// client. The deadline is lifted once the body
// is done, so nothing cuts the request while the challenge works on it.
type idleBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		// A failed read keeps its deadline: the server must not wait for
		// the rest of that body either.
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// idleWriter gives the client idle to accept each write;
// time spent waiting for the challenge between writes does not count.
type idleWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
}

func (w *idleWriter) arm() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.idle)) }

func (w *idleWriter) WriteHeader(code int) {
	w.arm()
	w.ResponseWriter.WriteHeader(code)
}

func (w *idleWriter) Write(b []byte) (int, error) {
	w.arm()
	return w.ResponseWriter.Write(b)
}

func (w *idleWriter) FlushError() error {
	w.arm()
	return w.rc.Flush()
}

// Flush serves wrappers that only know http.Flusher.
func (w *idleWriter) Flush() { _ = w.FlushError() }

func (w *idleWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// setEscapedPath keeps escapes like %2F exactly as the client sent them.
func setEscapedPath(u *url.URL, escaped string) error {
	path, err := url.PathUnescape(escaped)
	if err != nil {
		return err
	}
	u.Path, u.RawPath = path, ""
	if u.EscapedPath() != escaped {
		u.RawPath = escaped
	}
	return nil
}

// splitChallengePath turns "/name/a/b" into ("name", "/a/b"); it works on
// the escaped path so the rest is forwarded byte for byte.
func splitChallengePath(path string) (string, string) {
	trimmed := strings.TrimPrefix(path, "/")
	name, rest, found := strings.Cut(trimmed, "/")
	if !found {
		return name, "/"
	}
	return name, "/" + rest
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// statusRecorder remembers the response code for metrics; Unwrap keeps
// flushing and other ResponseController features working.
type statusRecorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.code, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wroteHeader = true
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
