package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"time"
)

// fastTransport runs the common request, a GET or HEAD with no body and no
// upgrade, on the handler's own goroutine over kept connections, and hands
// everything else to next. http.Transport passes each request to a writer
// and a reader goroutine of its connection and back: under wrk's load that
// made 1.75 voluntary thread switches per proxied request instead of 1.30,
// and on a busy machine every switch waits for a CPU.
type fastTransport struct {
	next        *http.Transport
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle     int           // per upstream host
	idleTimeout time.Duration // a kept connection older than this is closed, not used
	rawOnly     bool          // its connections carry only raw reads and writes: no bufio buffers

	mu   sync.Mutex
	idle map[string][]*fastConn // by host:port, most recently used last
}

type fastConn struct {
	conn      net.Conn
	raw       *rawIO         // the fast loop's reads and writes, made on first use
	lr        *limitedReader // under br: bounds a response header
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
}

// Bounds on what a challenge may send before its response body, as
// http.Transport has by default.
const (
	maxResponseHeaderBytes = 10 << 20
	max1xxResponses        = 5
)

// limitedReader fails reads past n bytes with errHeaderTooBig.
type limitedReader struct {
	r io.Reader
	n int64
}

var errHeaderTooBig = errors.New("upstream response header too large")

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHeaderTooBig
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// fastEligible is what the fast path serves; the rest needs what only
// http.Transport does (bodies, 100-continue, upgrades, TLS).
func fastEligible(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		(r.Body == nil || r.Body == http.NoBody) && r.URL.Scheme == "http" &&
		r.URL.Port() != "" && r.Header.Get("Upgrade") == "" && len(r.TransferEncoding) == 0
}

func (t *fastTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !fastEligible(r) {
		return t.next.RoundTrip(r)
	}
	host := r.URL.Host
	for {
		fc, reused, err := t.get(r.Context(), host)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(r, fc, host)
		if err == nil {
			return resp, nil
		}
		fc.conn.Close()
		// A kept connection the challenge closed while it was idle fails
		// before any answer: GET and HEAD may go again on a new one.
		if !reused || !errors.Is(err, errNoAnswer) || r.Context().Err() != nil {
			return nil, err
		}
	}
}

// errNoAnswer marks a failure before the first byte of a response.
var errNoAnswer = errors.New("upstream closed the connection before answering")

type noAnswerError struct{ err error }

func (e noAnswerError) Error() string   { return errNoAnswer.Error() + ": " + e.err.Error() }
func (e noAnswerError) Unwrap() []error { return []error{errNoAnswer, e.err} }

// exchange writes r on fc and reads the response header; the body stays
// on the connection and gives it back when read to its end.
func (t *fastTransport) exchange(r *http.Request, fc *fastConn, host string) (*http.Response, error) {
	// The client leaving, or the server shutting down, cuts the exchange.
	stop := context.AfterFunc(r.Context(), func() { _ = fc.conn.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		// As http.Transport does: ReverseProxy neither logs nor answers a client that left.
		if cerr := r.Context().Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	fc.lr.n = maxResponseHeaderBytes
	if err := r.Write(fc.bw); err != nil {
		return fail(noAnswerError{err})
	}
	if err := fc.bw.Flush(); err != nil {
		return fail(noAnswerError{err})
	}
	if _, err := fc.br.Peek(1); err != nil {
		return fail(noAnswerError{err})
	}
	trace := httptrace.ContextClientTrace(r.Context())
	for n1xx := 0; ; n1xx++ {
		if n1xx > max1xxResponses {
			return fail(errors.New("upstream sent too many 1xx informational responses"))
		}
		resp, err := http.ReadResponse(fc.br, r)
		if err != nil {
			return fail(err)
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return fail(errors.New("upstream switched protocols without an upgrade request"))
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 {
			// ReverseProxy forwards 1xx answers (e.g. 103 Early Hints) through this hook.
			if trace != nil && trace.Got1xxResponse != nil {
				if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
					return fail(err)
				}
			}
			continue
		}
		fc.lr.n = math.MaxInt64
		resp.Body = &fastBody{t: t, fc: fc, host: host, ctx: r.Context(), body: resp.Body, stop: stop, keep: !resp.Close}
		return resp, nil
	}
}

// fastBody gives its connection back to the pool once read to the end, and
// closes it when abandoned before.
type fastBody struct {
	t    *fastTransport
	fc   *fastConn
	host string
	ctx  context.Context
	body io.ReadCloser
	stop func() bool
	keep bool // the response allows another request on the connection
	done bool
}

func (b *fastBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.release(true)
	} else if err != nil && b.ctx.Err() != nil {
		err = b.ctx.Err()
	}
	return n, err
}

func (b *fastBody) Close() error {
	if !b.done {
		b.release(false)
	}
	return nil
}

func (b *fastBody) release(atEOF bool) {
	b.done = true
	// stop is false when the context already cut the connection.
	if b.stop() && atEOF && b.keep && b.fc.br.Buffered() == 0 {
		b.t.put(b.host, b.fc)
		return
	}
	b.fc.conn.Close()
}

// get takes the most recently used kept connection to host, or dials.
func (t *fastTransport) get(ctx context.Context, host string) (*fastConn, bool, error) {
	now := time.Now()
	t.mu.Lock()
	for cs := t.idle[host]; len(cs) > 0; cs = t.idle[host] {
		fc := cs[len(cs)-1]
		cs[len(cs)-1] = nil
		t.idle[host] = cs[:len(cs)-1]
		if now.Sub(fc.idleSince) < t.idleTimeout {
			t.mu.Unlock()
			return fc, true, nil
		}
		fc.conn.Close()
	}
	t.mu.Unlock()
	c, err := t.dial(ctx, "tcp", host)
	if err != nil {
		return nil, false, err
	}
	if t.rawOnly {
		return &fastConn{conn: c}, false, nil
	}
	lr := &limitedReader{r: c, n: math.MaxInt64}
	return &fastConn{conn: c, lr: lr, br: bufio.NewReader(lr), bw: bufio.NewWriter(c)}, false, nil
}

func (t *fastTransport) put(host string, fc *fastConn) {
	fc.idleSince = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.idle[host]) >= t.maxIdle {
		fc.conn.Close()
		return
	}
	if t.idle == nil {
		t.idle = map[string][]*fastConn{}
	}
	t.idle[host] = append(t.idle[host], fc)
}

// CloseIdleConnections closes every kept connection of both paths.
func (t *fastTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, cs := range idle {
		for _, fc := range cs {
			fc.conn.Close()
		}
	}
	t.next.CloseIdleConnections()
}

// aLongTimeAgo is a deadline that has passed, to unblock reads and writes.
var aLongTimeAgo = time.Unix(1, 0)
