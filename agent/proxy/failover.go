package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// Failover bounds.
const (
	// DefaultRetryWait is how long a failed request that has no standby to
	// go to is held for the challenge's next container before the client
	// gets a 502.
	DefaultRetryWait = 2 * time.Second
	// MaxRetryBody is the largest request body kept for a replay; a bigger
	// one is streamed and never retried.
	MaxRetryBody = 64 << 10
	// downFor is how long an upstream that refused or reset a connection is
	// passed over for a challenge's standby, unless the route moves first.
	downFor = 10 * time.Second
	// routePoll is how often a held request looks for the next container.
	routePoll = 20 * time.Millisecond
)

// downUpstreams are upstreams that failed a connection recently: the proxy's
// passive health, faster than any probe or runtime event.
type downUpstreams struct {
	mu sync.Mutex
	at map[string]time.Time
}

// mark records upstream as down; true the first time since it was last up.
func (d *downUpstreams) mark(upstream string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.at == nil {
		d.at = map[string]time.Time{}
	}
	for u, t := range d.at {
		if now.Sub(t) > downFor {
			delete(d.at, u)
		}
	}
	_, known := d.at[upstream]
	d.at[upstream] = now
	return !known
}

func (d *downUpstreams) is(upstream string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.at[upstream]
	return ok && now.Sub(t) <= downFor
}

// pick chooses where a request of rt goes: its active container, or its
// ready standby while the active one is known to be down.
func (p *Proxy) pick(rt Route) string {
	if rt.Standby != "" && p.down.is(rt.Upstream, time.Now()) {
		return rt.Standby
	}
	return rt.Upstream
}

// retryable says whether r may be sent again after a failure: its method
// is one of the retry methods and its body, if any, was kept.
func (p *Proxy) retryable(r *http.Request) bool {
	if !slices.Contains(p.retryMethods, r.Method) {
		return false
	}
	return r.Body == nil || r.Body == http.NoBody || r.GetBody != nil
}

// keepBody reads up to MaxRetryBody of a retryable request's body so it can
// be replayed; a longer body is streamed on and the request is not retried.
func (p *Proxy) keepBody(r *http.Request) error {
	if !slices.Contains(p.retryMethods, r.Method) || r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	head, err := io.ReadAll(io.LimitReader(r.Body, MaxRetryBody+1))
	if err != nil {
		return err
	}
	if len(head) > MaxRetryBody {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), r.Body), r.Body}
		return nil
	}
	_ = r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(head))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(head)), nil }
	return nil
}

// failoverTransport sends a request that failed before any response byte
// once more: to the challenge's standby, or to its next container within
// the retry wait. A failure after the response began is never retried: by
// then RoundTrip has returned.
type failoverTransport struct{ p *Proxy }

func (f failoverTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	p := f.p
	resp, err := p.transport.RoundTrip(req)
	if err == nil || req.Context().Err() != nil {
		return resp, err
	}
	t, ok := req.Context().Value(targetKey{}).(target)
	if !ok {
		return resp, err
	}
	next := p.failover(req.Context(), t.challenge, t.url.String(), p.retryable(req))
	if next == "" {
		return nil, err
	}
	u, perr := url.Parse(next)
	if perr != nil {
		return nil, err
	}
	retry := req.Clone(req.Context())
	retry.URL.Scheme, retry.URL.Host, retry.Host = u.Scheme, u.Host, u.Host
	if req.GetBody != nil {
		if retry.Body, perr = req.GetBody(); perr != nil {
			return nil, err
		}
	}
	p.inflight.add(next, 1)
	defer p.inflight.add(next, -1)
	return p.transport.RoundTrip(retry)
}

// failover marks failed down for the challenge name and says where a
// request that failed there before any response byte goes once more: ""
// when it may not (retry false) or has nowhere to go in time.
func (p *Proxy) failover(ctx context.Context, name, failed string, retry bool) string {
	p.upstreamFailed(name, failed)
	if !retry {
		return ""
	}
	return p.nextUpstream(ctx, name, failed)
}

// nextUpstream is where a request that failed on failed goes again: the
// challenge's ready standby at once, or else its next serving container,
// waited for up to the retry wait; "" when there is none in time.
func (p *Proxy) nextUpstream(ctx context.Context, name, failed string) string {
	ctx, cancel := context.WithTimeout(ctx, p.retryWait)
	defer cancel()
	sawDown := false
	for {
		rt, ok := p.routes.Route(name)
		switch {
		case !ok:
			return ""
		case rt.Standby != "" && rt.Standby != failed:
			return rt.Standby
		case rt.Serving && rt.Upstream != "" && (rt.Upstream != failed || sawDown):
			return rt.Upstream
		case !rt.Serving:
			sawDown = true
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(routePoll):
		}
	}
}
