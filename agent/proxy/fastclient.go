package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"berth/agent/challenge"
)

// fastClient is one client connection in the fast loop.
type fastClient struct {
	s        *Server
	p        *Proxy
	conn     net.Conn
	io       *rawIO
	clientIP string       // for X-Forwarded-For; empty if the address has no port
	idle     atomic.Bool  // waiting for a request: Shutdown may close it
	in       []byte       // request bytes read so far
	n        int          // of in
	out      []byte       // the next write, to the upstream or the client
	pending  bool         // out holds the end of the last response, not yet written
	req      fastRequest  // the request being served
	name     string       // its challenge
	upstream string       // where the current attempt went
	resp     fastResponse // its response head
}

const (
	// fastHeadStart is the request head buffer of a connection; it grows
	// to fastHeadMax, and a longer head goes to the http.Server.
	fastHeadStart = 4 << 10
	fastHeadMax   = 16 << 10
	// clientCheckEvery is how often a request waiting on the challenge
	// looks whether its client left, which cuts the upstream exchange.
	clientCheckEvery = 250 * time.Millisecond
	// headCheckEvery is the same while no byte of the answer has come: it
	// also looks whether the container was given up for dead (below).
	headCheckEvery = 50 * time.Millisecond
	// maxResponseBodyAhead is how much of a response body is written with
	// its head in one system call.
	maxResponseBodyAhead = 16 << 10
)

var (
	errBadResponse  = errors.New("malformed response from the challenge")
	errClientGone   = errors.New("client left")
	errHeadTooLarge = errors.New("request head larger than the fast loop takes")
	errClosing      = errors.New("server closing")
	errAbandoned    = errors.New("upstream given up for dead before it answered")
	crlfcrlf        = []byte("\r\n\r\n")
)

func newFastClient(s *Server, c net.Conn, raw *rawIO) *fastClient {
	ip := ""
	if host, _, err := net.SplitHostPort(c.RemoteAddr().String()); err == nil {
		ip = host
	}
	return &fastClient{s: s, p: s.p, conn: c, io: raw, clientIP: ip, in: make([]byte, fastHeadStart)}
}

func (c *fastClient) serve() {
	if c.s.readHeaderTimeout > 0 {
		_ = c.conn.SetReadDeadline(time.Now().Add(c.s.readHeaderTimeout))
	}
	for first := true; ; first = false {
		headLen, err := c.readHead(first)
		if err == nil && !parseRequestHead(c.in[:headLen], &c.req) {
			err = errHeadTooLarge // not ours to serve either
		}
		if errors.Is(err, errHeadTooLarge) {
			c.flushPending()
			_ = c.conn.SetReadDeadline(time.Time{})
			c.s.giveToHTTP(c.conn, bytes.Clone(c.in[:c.n]))
			return
		}
		if err != nil || !c.forward() || c.s.closing.Load() {
			c.flushPending()
			c.conn.Close()
			return
		}
		// A pipelined request may follow.
		c.n = copy(c.in, c.in[headLen:c.n])
	}
}

// readHead reads until in holds a whole request head and returns its length.
func (c *fastClient) readHead(first bool) (int, error) {
	headerDeadline := first
	if !first {
		if c.n == 0 {
			c.idle.Store(true)
			if c.s.closing.Load() {
				return 0, errClosing
			}
			var d time.Time
			if c.s.idleTimeout > 0 {
				d = time.Now().Add(c.s.idleTimeout)
			}
			_ = c.conn.SetReadDeadline(d)
			if c.pending {
				// The response's last write and the wait for the next
				// request are one step.
				c.pending = false
				m, written, err := c.io.writeThenRead(c.out, c.in)
				if written < len(c.out) {
					// Full, or the wait was cut (Shutdown): the response
					// still goes out whole.
					if werr := c.io.Write(c.out[written:], c.p.writeIdle); err == nil {
						err = werr
					}
					if err != nil {
						return 0, err
					}
				} else {
					c.idle.Store(false)
					if err != nil {
						return 0, err
					}
					c.n = m
				}
			}
		} else {
			c.setHeaderDeadline()
			headerDeadline = true
		}
	}
	c.flushPending()
	scanned := 0
	for {
		if i := bytes.Index(c.in[scanned:c.n], crlfcrlf); i >= 0 {
			return scanned + i + len(crlfcrlf), nil
		}
		if c.n > 0 && !headerDeadline {
			c.setHeaderDeadline()
			headerDeadline = true
		}
		scanned = max(0, c.n-len(crlfcrlf)+1)
		if c.n == len(c.in) {
			if len(c.in) >= fastHeadMax {
				return 0, errHeadTooLarge
			}
			c.in = append(c.in, make([]byte, len(c.in))...)
		}
		m, err := c.io.Read(c.in[c.n:])
		c.idle.Store(false)
		if err != nil {
			return 0, err
		}
		c.n += m
	}
}

// flushPending writes what is left of the last response.
func (c *fastClient) flushPending() {
	if c.pending {
		c.pending = false
		_ = c.io.Write(c.out, c.p.writeIdle)
	}
}

func (c *fastClient) setHeaderDeadline() {
	if c.s.readHeaderTimeout > 0 {
		_ = c.conn.SetReadDeadline(time.Now().Add(c.s.readHeaderTimeout))
	}
}

// forward serves the parsed request and says whether the connection may
// carry another.
func (c *fastClient) forward() bool {
	start := time.Now()
	name, rest := splitChallengePath(string(c.req.bytes(c.req.path)))
	rt, known := c.p.routes.Route(name)
	code, keep := c.route(name, rest, rt, known)
	if c.p.onRequest != nil {
		label := name
		if !known {
			label = ""
		}
		c.p.onRequest(label, code, time.Since(start))
	}
	return keep
}

func (c *fastClient) route(name, rest string, rt Route, known bool) (int, bool) {
	if name == "" || !known {
		return c.writeError(http.StatusNotFound, "unknown_challenge", "no challenge named "+quote(name), 0)
	}
	if rt.Upstream == "" || !rt.Serving {
		return c.writeError(http.StatusServiceUnavailable, "unavailable",
			"challenge "+name+" has no healthy container (state "+rt.State+", health "+rt.Health+")", 2)
	}
	upstream := c.p.pick(rt)
	host, ok := upstreamHost(upstream)
	if !ok {
		return c.writeError(http.StatusBadGateway, "upstream_error", "bad upstream address", 0)
	}
	c.name, c.upstream = name, upstream
	c.p.inflight.add(upstream, 1)
	res := c.attempt(host, rest)
	c.p.inflight.add(upstream, -1)
	if errors.Is(res.err, errClientGone) && !res.started {
		return StatusClientClosedRequest, false
	}
	if res.err == nil || res.started || errors.Is(res.err, errClientGone) {
		return res.code, res.err == nil && res.keep
	}
	// Nothing reached the client: the request may go once more.
	retry := slices.Contains(c.p.retryMethods, string(c.req.bytes(c.req.method)))
	if next := c.p.failover(context.Background(), name, upstream, retry); next != "" {
		if nextHost, ok := upstreamHost(next); ok {
			c.upstream = next
			c.p.inflight.add(next, 1)
			res = c.attempt(nextHost, rest)
			c.p.inflight.add(next, -1)
			if res.err == nil || res.started || errors.Is(res.err, errClientGone) {
				return res.code, res.err == nil && res.keep
			}
		}
	}
	c.p.logUpstreamError(name, res.err)
	return c.writeError(http.StatusBadGateway, "upstream_error", "challenge container did not answer", 0)
}

// upstreamHost is the host:port of a route's "http://host:port" upstream.
func upstreamHost(upstream string) (string, bool) {
	host, ok := strings.CutPrefix(upstream, "http://")
	return host, ok && host != "" && !strings.ContainsAny(host, "/?#@")
}

// exchangeResult is how one attempt on an upstream ended.
type exchangeResult struct {
	code     int
	keep     bool  // the client connection may carry another request
	started  bool  // response bytes reached the client: no retry, no error page
	noAnswer bool  // the upstream failed before any byte of a response
	err      error // nil: the response was forwarded whole
}

// attempt runs the request on a kept connection to host, or a new one; a
// kept connection the challenge closed while idle is replaced, as
// http.Transport does.
func (c *fastClient) attempt(host, rest string) exchangeResult {
	for {
		uc, reused, err := c.p.rawPool.get(context.Background(), host)
		if err != nil {
			return exchangeResult{noAnswer: true, err: err}
		}
		res := c.exchange(uc, host, rest)
		if res.err == nil {
			return res
		}
		uc.conn.Close()
		if !reused || !res.noAnswer || res.started || errors.Is(res.err, errClientGone) || errors.Is(res.err, errAbandoned) {
			return res
		}
	}
}

// exchange sends the request on uc and streams the response to the client.
// uc goes back to the pool when the response ended where it said it would.
func (c *fastClient) exchange(uc *fastConn, host, rest string) exchangeResult {
	if uc.raw == nil {
		raw, err := newRawIO(uc.conn)
		if err != nil {
			return exchangeResult{noAnswer: true, err: err}
		}
		uc.raw = raw
	}
	c.buildRequest(host, rest)
	bufp := c.p.buffers.Get()
	buf := bufp
	defer func() { c.p.buffers.Put(bufp) }()
	_ = uc.conn.SetReadDeadline(time.Now().Add(headCheckEvery))
	n, err := c.sendRequest(uc, buf)
	if err != nil {
		return exchangeResult{noAnswer: true, err: err}
	}
	var res exchangeResult
	headLen := 0
	for n1xx := 0; ; n1xx++ {
		var err error
		buf, n, headLen, err = c.readResponseHead(uc, buf, n)
		if err != nil {
			res.err, res.noAnswer = err, n == 0 && !res.started
			return res
		}
		if err := parseResponseHead(buf[:headLen], &c.resp); err != nil {
			res.err = err
			return res
		}
		if c.resp.code >= 200 {
			break
		}
		// Informational answers (103 Early Hints) go on ahead of the response.
		if c.resp.code == http.StatusSwitchingProtocols || n1xx >= max1xxResponses {
			res.err = errBadResponse
			return res
		}
		c.responseHead(buf[:headLen], false)
		res.started = true
		if err := c.io.Write(c.out, c.p.writeIdle); err != nil {
			res.err = err
			return res
		}
		n = copy(buf, buf[headLen:n])
	}
	res.code = c.resp.code
	return c.forwardBody(uc, host, buf, n, headLen, res)
}

// forwardBody writes the response head and its body to the client; buf[:n]
// holds the head (headLen bytes) and the start of the body.
func (c *fastClient) forwardBody(uc *fastConn, host string, buf []byte, n, headLen int, res exchangeResult) exchangeResult {
	noBody := c.req.head1 || res.code == http.StatusNoContent || res.code == http.StatusNotModified
	untilClose := !noBody && !c.resp.chunked && c.resp.contentLength < 0
	res.keep = !c.req.closeAfter && !untilClose
	c.responseHead(buf[:headLen], !res.keep || c.s.closing.Load())
	var chunks chunkedFraming
	remaining := c.resp.contentLength
	// take is how much of b belongs to the body, and whether it ended.
	take := func(b []byte) (int, bool, error) {
		switch {
		case noBody:
			return 0, true, nil
		case c.resp.chunked:
			return chunks.feed(b)
		case untilClose:
			return len(b), false, nil
		}
		k := int(min(int64(len(b)), remaining))
		remaining -= int64(k)
		return k, remaining == 0, nil
	}
	body := buf[headLen:n]
	k, done, err := take(body)
	if err != nil {
		res.err = err
		return res
	}
	extra := k < len(body)
	// Small bodies go with the head in one write.
	if k <= maxResponseBodyAhead {
		c.out = append(c.out, body[:k]...)
		body = body[:0]
	} else {
		body = body[:k]
	}
	res.started = true
	if done && len(body) == 0 && res.keep {
		// All of it is in out: written with the wait for the next request.
		c.pending = true
	} else if err := c.io.Write(c.out, c.p.writeIdle); err != nil {
		res.err = err
		return res
	}
	for {
		if len(body) > 0 {
			if err := c.io.Write(body, c.p.writeIdle); err != nil {
				res.err = err
				return res
			}
		}
		if done {
			break
		}
		m, err := c.readUpstream(uc, buf, false)
		if err != nil {
			if untilClose && errors.Is(err, errUpstreamEOF) {
				break
			}
			res.err = err
			return res
		}
		k, done, err = take(buf[:m])
		if err != nil {
			res.err = err
			return res
		}
		extra = extra || k < m
		body = buf[:k]
	}
	if c.resp.closeAfter || untilClose || extra {
		uc.conn.Close()
	} else {
		c.p.rawPool.put(host, uc)
	}
	return res
}

// readResponseHead reads until buf holds a whole response head; n bytes of
// buf are already read. It grows buf past the pooled size for a long head,
// up to the bound http.Transport has.
func (c *fastClient) readResponseHead(uc *fastConn, buf []byte, n int) ([]byte, int, int, error) {
	scanned := 0
	for {
		if i := bytes.Index(buf[scanned:n], crlfcrlf); i >= 0 {
			return buf, n, scanned + i + len(crlfcrlf), nil
		}
		scanned = max(0, n-len(crlfcrlf)+1)
		if n == len(buf) {
			if len(buf) >= maxResponseHeaderBytes {
				return buf, n, 0, errHeaderTooBig
			}
			buf = append(buf[:n:n], make([]byte, min(len(buf), maxResponseHeaderBytes-len(buf)))...)
		}
		m, err := c.readUpstream(uc, buf[n:], n == 0)
		if err != nil {
			return buf, n, 0, err
		}
		n += m
	}
}

var errUpstreamEOF = errors.New("upstream closed the connection")

// sendRequest writes the request in out to uc and reads the first bytes of
// the answer into buf.
func (c *fastClient) sendRequest(uc *fastConn, buf []byte) (int, error) {
	n, written, err := uc.raw.writeThenRead(c.out, buf)
	if written < len(c.out) {
		if err != nil {
			return 0, err
		}
		// The socket was full: the rest waits for room, then the answer.
		if err := uc.raw.Write(c.out[written:], 0); err != nil {
			return 0, err
		}
		return c.readUpstream(uc, buf, true)
	}
	if err == nil {
		return n, nil
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return c.readUpstream(uc, buf, true)
	}
	if errors.Is(err, io.EOF) {
		return 0, errUpstreamEOF
	}
	return 0, err
}

// readUpstream reads what the challenge sent, looking now and then whether
// the client is still there and, before the answer's first byte, whether
// the container was given up for dead. The deadline of the first wait is
// already set.
func (c *fastClient) readUpstream(uc *fastConn, b []byte, beforeAnswer bool) (int, error) {
	for waited := false; ; waited = true {
		if waited {
			if c.io.peekClosed() {
				return 0, errClientGone
			}
			if beforeAnswer && c.abandoned() {
				return 0, errAbandoned
			}
			every := clientCheckEvery
			if beforeAnswer {
				every = headCheckEvery
			}
			_ = uc.conn.SetReadDeadline(time.Now().Add(every))
		}
		m, err := uc.raw.Read(b)
		if err == nil {
			return m, nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			if errors.Is(err, io.EOF) {
				return 0, errUpstreamEOF
			}
			return 0, err
		}
	}
}

// abandoned says whether the current attempt's container failed a
// connection and its challenge routes elsewhere since (a standby was
// promoted, or a new container serves): a request still waiting for its
// answer there goes again. A swap's old container is never marked down,
// so requests draining on it are left alone.
func (c *fastClient) abandoned() bool {
	if !c.p.down.is(c.upstream, time.Now()) {
		return false
	}
	rt, ok := c.p.routes.Route(c.name)
	return !ok || (rt.Upstream != c.upstream && rt.Standby != c.upstream)
}

// buildRequest puts the outbound request head in out: the client's
// headers but the hop-by-hop ones, Host set to the upstream, and
// X-Forwarded-* set as ReverseProxy's SetXForwarded does.
func (c *fastClient) buildRequest(host, rest string) {
	r := &c.req
	out := append(c.out[:0], r.bytes(r.method)...)
	out = append(out, ' ')
	out = append(out, rest...)
	if r.hasQuery {
		out = append(out, '?')
		out = append(out, r.bytes(r.query)...)
	}
	out = append(out, " HTTP/1.1\r\nHost: "...)
	out = append(out, host...)
	out = append(out, "\r\n"...)
	for _, s := range r.keep {
		out = append(out, r.bytes(s)...)
	}
	if c.clientIP != "" {
		out = append(out, "X-Forwarded-For: "...)
		out = append(out, c.clientIP...)
		out = append(out, "\r\n"...)
	}
	out = append(out, "X-Forwarded-Host: "...)
	out = append(out, r.bytes(r.host)...)
	out = append(out, "\r\nX-Forwarded-Proto: http\r\n\r\n"...)
	c.out = out
}

// responseHead puts the client's response head in out: HTTP/1.1, the
// upstream's status and headers but the hop-by-hop ones.
func (c *fastClient) responseHead(head []byte, closeAfter bool) {
	out := append(c.out[:0], "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(c.resp.code), 10)
	out = append(out, ' ')
	out = append(out, head[c.resp.reason.start:c.resp.reason.end]...)
	out = append(out, "\r\n"...)
	for _, s := range c.resp.keep {
		out = append(out, head[s.start:s.end]...)
	}
	if closeAfter && c.resp.code >= 200 {
		out = append(out, "Connection: close\r\n"...)
	}
	c.out = append(out, "\r\n"...)
}

// writeError answers with berth's JSON error, as writeJSONError does on the
// http.Server path.
func (c *fastClient) writeError(status int, code, msg string, retryAfter int) (int, bool) {
	body := errorJSON(code, msg)
	out := append(c.out[:0], "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(status), 10)
	out = append(out, ' ')
	out = append(out, http.StatusText(status)...)
	out = append(out, "\r\nContent-Type: application/json\r\n"...)
	if retryAfter > 0 {
		out = append(out, "Retry-After: "...)
		out = strconv.AppendInt(out, int64(retryAfter), 10)
		out = append(out, "\r\n"...)
	}
	out = append(out, "Content-Length: "...)
	out = strconv.AppendInt(out, int64(len(body)), 10)
	out = append(out, "\r\nDate: "...)
	out = time.Now().UTC().AppendFormat(out, http.TimeFormat)
	keep := !c.req.closeAfter && !c.s.closing.Load()
	if !keep {
		out = append(out, "\r\nConnection: close"...)
	}
	out = append(out, "\r\n\r\n"...)
	if !c.req.head1 {
		out = append(out, body...)
	}
	c.out = out
	if err := c.io.Write(c.out, c.p.writeIdle); err != nil {
		return status, false
	}
	return status, keep
}

// upstreamFailed marks upstream down for routing and tells its owner, once
// per failure streak.
func (p *Proxy) upstreamFailed(name, upstream string) {
	if p.down.mark(upstream, time.Now()) && p.onUpstreamDown != nil {
		p.onUpstreamDown(name, upstream)
	}
}

// logUpstreamError logs a request the challenge failed, at most once a
// second: clients retrying fast against a dead upstream must not flood the log.
func (p *Proxy) logUpstreamError(name string, err error) {
	if now := time.Now().UnixNano(); now-p.lastErrLog.Load() > int64(time.Second) {
		p.lastErrLog.Store(now)
		p.log.Warn().Err(err).Str(challenge.FieldChallenge, name).Msg("proxy upstream error")
	}
}
