package agent

import (
	"context"
	"encoding/json"
	"errors"
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

// proxy is the stable endpoint: /<challenge>/<rest> goes to the challenge's
// active container as /<rest>, so callers never track containers.
type proxy struct {
	dir        *directory
	log        zerolog.Logger
	reverse    *httputil.ReverseProxy
	transport  *http.Transport
	inflight   sync.Map // upstream URL → *atomic.Int64, requests being served
	requests   *prometheus.CounterVec
	lastErrLog atomic.Int64 // unix nanos of the last upstream error logged
}

// InFlight is how many proxied requests an upstream is serving now; a swap
// drains the old container until this reaches zero.
func (p *proxy) InFlight(upstream string) int64 {
	if n, ok := p.inflight.Load(upstream); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
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

func newProxy(dir *directory, log zerolog.Logger) *proxy {
	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// No response timeout: challenge evaluations may legitimately run for an hour.
	}
	p := &proxy{dir: dir, log: log, transport: transport}
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
	name, rest := splitChallengePath(r.URL.EscapedPath())
	if p.requests != nil {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		w = rec
		defer func() {
			label := name
			if p.dir.get(name) == nil {
				label = "" // unknown names must not grow the series set
			}
			p.requests.WithLabelValues(label, strconv.Itoa(rec.code)).Inc()
		}()
	}
	h := p.dir.get(name)
	if name == "" || h == nil {
		writeJSONError(w, http.StatusNotFound, "unknown_challenge", "no challenge named "+quote(name), 0)
		return
	}
	st := h.status.Load()
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
	counter, _ := p.inflight.LoadOrStore(st.Upstream, new(atomic.Int64))
	n := counter.(*atomic.Int64)
	n.Add(1)
	defer n.Add(-1)
	out := r.Clone(context.WithValue(r.Context(), routeKey{}, route{challenge: name, target: target}))
	if err := setEscapedPath(out.URL, rest); err != nil {
		writeJSONError(w, http.StatusBadRequest, "bad_request", "bad request path", 0)
		return
	}
	p.reverse.ServeHTTP(w, out)
}

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
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
