package proxy

import (
	"cmp"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Timeouts for the stable endpoint's client side. There is no limit on a
// whole request: an evaluation may take an hour. Instead each step that
// waits on the client is bounded: sending the request header, every pause
// while sending the request body, and accepting every write of the response.
// ReadHeaderTimeout and IdleTimeout are for the http.Server that serves the
// Proxy; the other two apply per request (see Options).
const (
	ReadHeaderTimeout       = 10 * time.Second
	IdleTimeout             = 2 * time.Minute
	DefaultBodyIdleTimeout  = time.Minute
	DefaultWriteIdleTimeout = time.Minute
)

// StatusClientClosedRequest is the code counted for a request whose client
// left before any answer (nginx's 499); nothing is sent.
const StatusClientClosedRequest = 499

// Route is what the proxy knows of one challenge when a request arrives.
type Route struct {
	Name     string
	Upstream string // serving instance's base URL; empty while there is none
	Serving  bool   // whether the health allows routing to Upstream
	// Standby is a ready standby's base URL: where requests go while
	// Upstream is known to be down, and where failed ones are retried.
	Standby string
	// State and Health only explain a 503 to the client.
	State, Health string
}

// Routes finds the route of a challenge by name. The proxy calls Route on
// every request, from many goroutines at once: it must be cheap and safe
// for concurrent use.
type Routes interface {
	Route(name string) (Route, bool)
}

// Options are a Proxy's inputs besides its routes.
type Options struct {
	Log zerolog.Logger
	// OnRequest, if set, is called once per request after its handler
	// returns, with the response code and how long the handler took.
	// challenge is empty for names that have no route, so unknown names
	// cannot grow a metric's series set.
	OnRequest func(challenge string, code int, took time.Duration)
	// Client-side bounds per request; zero means the defaults above.
	BodyIdleTimeout, WriteIdleTimeout time.Duration
	// RetryMethods are retried once when the first attempt failed before
	// any response byte; RetryWait bounds the wait for a next container
	// when there is no standby (zero: DefaultRetryWait).
	RetryMethods []string
	RetryWait    time.Duration
	// OnUpstreamDown, if set, hears of an upstream that refused or reset a
	// connection, once per failure streak, so its owner can look at once.
	OnUpstreamDown func(challenge, upstream string)
}

// Proxy is the stable endpoint: /<challenge>/<rest> goes to the challenge's
// active container as /<rest>, so callers never track containers.
type Proxy struct {
	routes    Routes
	log       zerolog.Logger
	onRequest func(challenge string, code int, took time.Duration)
	reverse   *httputil.ReverseProxy
	transport *fastTransport
	rawPool   *fastTransport // kept upstream connections of the fast loop (Server)
	buffers   *bufferPool
	inflight  inflightCounts
	// Client-side bounds, from Options.
	bodyIdle, writeIdle time.Duration
	lastErrLog          atomic.Int64 // unix nanos of the last upstream error logged
	// Failover, from Options.
	retryMethods   []string
	retryWait      time.Duration
	onUpstreamDown func(challenge, upstream string)
	down           downUpstreams
}

// InFlight is how many proxied requests an upstream is serving now; a swap
// drains the old container until this reaches zero.
func (p *Proxy) InFlight(upstream string) int64 { return p.inflight.get(upstream) }

// InFlightTotal is how many proxied requests all upstreams are serving now.
func (p *Proxy) InFlightTotal() int64 { return p.inflight.sum() }

// inflightCounts counts proxied requests in progress per upstream URL. An
// entry goes when its count reaches zero, so upstreams of containers long
// replaced do not pile up.
type inflightCounts struct {
	mu    sync.Mutex
	m     map[string]int64
	total int64 // the sum of m
}

func (c *inflightCounts) add(upstream string, d int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += d
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

func (c *inflightCounts) sum() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

func (c *inflightCounts) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// CloseIdle drops idle keep-alive connections, so a drained container is
// not kept busy by connections nobody uses.
func (p *Proxy) CloseIdle() {
	p.transport.CloseIdleConnections()
	p.rawPool.CloseIdleConnections()
}

// target is what ServeHTTP decided, handed to Rewrite and ErrorHandler.
type target struct {
	challenge string
	url       *url.URL
}

type targetKey struct{}

// New builds the stable endpoint over routes. Serve it with an http.Server
// using ReadHeaderTimeout and IdleTimeout and no overall read or write
// timeout.
func New(routes Routes, opts Options) *Proxy {
	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Pass bodies as they are: otherwise the transport asks for gzip
		// on the client's behalf and unpacks it again.
		DisableCompression: true,
		// No response timeout: challenge evaluations may legitimately run for an hour.
	}
	fast := &fastTransport{next: transport, dial: transport.DialContext,
		maxIdle: transport.MaxIdleConnsPerHost, idleTimeout: transport.IdleConnTimeout}
	// The fast loop's connections get deadlines the http.Transport path
	// does not clear: they are pooled apart.
	rawPool := &fastTransport{next: transport, dial: transport.DialContext, rawOnly: true,
		maxIdle: transport.MaxIdleConnsPerHost, idleTimeout: transport.IdleConnTimeout}
	p := &Proxy{routes: routes, log: opts.Log, onRequest: opts.OnRequest, transport: fast, rawPool: rawPool, buffers: &bufferPool{},
		bodyIdle:     cmp.Or(opts.BodyIdleTimeout, DefaultBodyIdleTimeout),
		writeIdle:    cmp.Or(opts.WriteIdleTimeout, DefaultWriteIdleTimeout),
		retryMethods: opts.RetryMethods, retryWait: cmp.Or(opts.RetryWait, DefaultRetryWait), onUpstreamDown: opts.OnUpstreamDown}
	p.reverse = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			t := r.In.Context().Value(targetKey{}).(target)
			r.SetURL(t.url)
			r.Out.URL.Path, r.Out.URL.RawPath = r.In.URL.Path, r.In.URL.RawPath
			r.Out.Host = t.url.Host
			r.SetXForwarded()
		},
		Transport:     failoverTransport{p},
		FlushInterval: flushInterval,
		BufferPool:    p.buffers,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				if rec, ok := w.(*statusRecorder); ok && !rec.wroteHeader {
					rec.code = StatusClientClosedRequest
				}
				return // the client left
			}
			t, _ := r.Context().Value(targetKey{}).(target)
			p.logUpstreamError(t.challenge, err)
			writeJSONError(w, http.StatusBadGateway, "upstream_error", "challenge container did not answer", 0)
		},
	}
	return p
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	iw, r := p.boundClient(w, r)
	// The server writes the end of the response after ServeHTTP returns,
	// maybe long after the last write: give the client time for it.
	defer iw.arm()
	w = iw
	name, rest := splitChallengePath(r.URL.EscapedPath())
	if p.onRequest != nil {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		w = rec
		defer func() {
			label := name
			if _, ok := p.routes.Route(name); !ok {
				label = "" // unknown names must not grow the series set
			}
			p.onRequest(label, rec.code, time.Since(start))
		}()
	}
	rt, ok := p.routes.Route(name)
	if name == "" || !ok {
		writeJSONError(w, http.StatusNotFound, "unknown_challenge", "no challenge named "+quote(name), 0)
		return
	}
	if rt.Upstream == "" || !rt.Serving {
		writeJSONError(w, http.StatusServiceUnavailable, "unavailable",
			"challenge "+name+" has no healthy container (state "+rt.State+", health "+rt.Health+")", 2)
		return
	}
	upstream := p.pick(rt)
	u, err := url.Parse(upstream)
	if err != nil {
		writeJSONError(w, http.StatusBadGateway, "upstream_error", "bad upstream address", 0)
		return
	}
	if err := p.keepBody(r); err != nil {
		writeJSONError(w, http.StatusBadRequest, "bad_request", "could not read the request body", 0)
		return
	}
	p.inflight.add(upstream, 1)
	defer p.inflight.add(upstream, -1)
	// ReverseProxy clones the request itself; a shallow copy with its own
	// URL is enough here, and spares a second copy of every header.
	out := r.WithContext(context.WithValue(r.Context(), targetKey{}, target{challenge: name, url: u}))
	outURL := *r.URL
	out.URL = &outURL
	if err := setEscapedPath(out.URL, rest); err != nil {
		writeJSONError(w, http.StatusBadRequest, "bad_request", "bad request path", 0)
		return
	}
	p.reverse.ServeHTTP(w, out)
}
