package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"berth/internal/testkit"
)

// scriptedUpstream answers each request it reads with what answer writes,
// byte for byte; answer returns false to close the connection.
func scriptedUpstream(tb testing.TB, answer func(r *http.Request, w io.Writer) bool) (string, *atomic.Int64) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil || !answer(r, c) {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String(), &accepted
}

// rawClient is one client connection to the proxy, written and read by hand.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t *testing.T, proxyURL string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(proxyURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawClient{t: t, conn: c, br: bufio.NewReader(c)}
}

func (c *rawClient) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatal(err)
	}
}

// read reads one response and its whole body.
func (c *rawClient) read(method string) (*http.Response, string, error) {
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		return nil, "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body), err
}

func (c *rawClient) get(path, headers string) (*http.Response, string) {
	c.t.Helper()
	c.send("GET " + path + " HTTP/1.1\r\nHost: berth\r\n" + headers + "\r\n")
	resp, body, err := c.read(http.MethodGet)
	if err != nil {
		c.t.Fatalf("GET %s: %v (body so far %q)", path, err, body)
	}
	return resp, body
}

// closed says whether the proxy closed the connection (after anything it sent).
func (c *rawClient) closed() bool {
	_ = c.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err := io.Copy(io.Discard, c.br)
	return err == nil
}

// Chunked answers pass through unchanged, extensions and trailers too,
// and their connection is kept for the next request.
func TestFastLoopPassesChunkedBodiesAndKeepsTheConnection(t *testing.T) {
	up, accepted := scriptedUpstream(t, func(r *http.Request, w io.Writer) bool {
		_, _ = io.WriteString(w, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Trailer\r\n\r\n"+chunkedBody)
		return true
	})
	var routes routeTable
	routes.put("c", up, "healthy")
	c := dialRaw(t, newProxyServer(t, &routes, zerolog.Nop()).URL)
	for i := range 3 {
		resp, body := c.get("/c/x", "")
		if resp.StatusCode != 200 || body != "hello world, 11!" || resp.Trailer.Get("X-Trailer") != "t" {
			t.Fatalf("request %d: %d %q trailer %v", i, resp.StatusCode, body, resp.Trailer)
		}
	}
	if n := accepted.Load(); n != 1 {
		t.Fatalf("%d upstream connections for 3 chunked answers, want 1 kept", n)
	}
}

// Large bodies of either framing arrive intact.
func TestFastLoopLargeBodiesArriveIntact(t *testing.T) {
	payload := make([]byte, 3<<20+17)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range payload {
		payload[i] = byte(rng.UintN(256))
	}
	want := sha256.Sum256(payload)
	up := testkit.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("length") == "1" {
			w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
		}
		_, _ = w.Write(payload) // chunked by net/http without a length
	}))
	var routes routeTable
	routes.put("c", up.URL, "healthy")
	c := dialRaw(t, newProxyServer(t, &routes, zerolog.Nop()).URL)
	for _, q := range []string{"?length=1", "", "?length=1"} {
		resp, body := c.get("/c/big"+q, "")
		if resp.StatusCode != 200 || sha256.Sum256([]byte(body)) != want {
			t.Fatalf("%s: %d, %d bytes, want %d intact", q, resp.StatusCode, len(body), len(payload))
		}
	}
}

// A body that runs until the challenge closes reaches the client whole,
// and the client's connection then closes too: nothing else marks its end.
func TestFastLoopBodyUntilClose(t *testing.T) {
	up, _ := scriptedUpstream(t, func(r *http.Request, w io.Writer) bool {
		_, _ = io.WriteString(w, "HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nuntil the end")
		return false
	})
	var routes routeTable
	routes.put("c", up, "healthy")
	c := dialRaw(t, newProxyServer(t, &routes, zerolog.Nop()).URL)
	resp, body := c.get("/c/", "")
	if body != "until the end" || !resp.Close {
		t.Fatalf("body %q, close %v", body, resp.Close)
	}
	if !c.closed() {
		t.Fatal("the client connection stayed open after a body delimited by close")
	}
}

// A malformed chunked body cuts the client's connection: the client sees
// a broken response, never a wrong one.
func TestFastLoopCutsTheClientOnAMalformedBody(t *testing.T) {
	up, _ := scriptedUpstream(t, func(r *http.Request, w io.Writer) bool {
		_, _ = io.WriteString(w, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello")
		time.Sleep(100 * time.Millisecond) // the head has gone to the client
		_, _ = io.WriteString(w, "XX5\r\n")
		time.Sleep(time.Second)
		return false
	})
	var routes routeTable
	routes.put("c", up, "healthy")
	c := dialRaw(t, newProxyServer(t, &routes, zerolog.Nop()).URL)
	c.send("GET /c/ HTTP/1.1\r\nHost: berth\r\n\r\n")
	if resp, body, err := c.read(http.MethodGet); err == nil {
		t.Fatalf("a malformed body read as a whole response: %d %q", resp.StatusCode, body)
	}
	if !c.closed() {
		t.Fatal("the client connection stayed open after a malformed body")
	}
}

// An answer with both a length and chunked framing is refused (a
// smuggling attempt), as is any other malformed head, with a 502.
func TestFastLoopRefusesAmbiguousFraming(t *testing.T) {
	up, _ := scriptedUpstream(t, func(r *http.Request, w io.Writer) bool {
		_, _ = io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
		return true
	})
	var routes routeTable
	routes.put("c", up, "healthy")
	c := dialRaw(t, newProxyServer(t, &routes, zerolog.Nop()).URL)
	resp, body := c.get("/c/", "")
	var e errorBody
	if resp.StatusCode != http.StatusBadGateway || json.Unmarshal([]byte(body), &e) != nil || e.Code != "upstream_error" {
		t.Fatalf("%d %q, want 502 upstream_error", resp.StatusCode, body)
	}
}

// Bytes after the end of an answer mean the connection is out of step: it
// is not kept. Answers without a body (204, 304, HEAD) keep it.
func TestFastLoopKeepsOnlyConnectionsInStep(t *testing.T) {
	up, accepted := scriptedUpstream(t, func(r *http.Request, w io.Writer) bool {
		switch r.URL.Path {
		case "/junk":
			_, _ = io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK")
		case "/empty":
			_, _ = io.WriteString(w, "HTTP/1.1 204 No Content\r\n\r\n")
		default:
			_, _ = io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
		return true
	})
	var routes routeTable
	routes.put("c", up, "healthy")
	c := dialRaw(t, newProxyServer(t, &routes, zerolog.Nop()).URL)
	for _, p := range []string{"/c/empty", "/c/ok", "/c/empty", "/c/ok"} {
		if resp, body := c.get(p, ""); resp.StatusCode/100 != 2 || (p == "/c/ok" && body != "ok") {
			t.Fatalf("%s: %d %q", p, resp.StatusCode, body)
		}
	}
	if n := accepted.Load(); n != 1 {
		t.Fatalf("%d upstream connections, want 1 kept across bodiless answers", n)
	}
	if _, body := c.get("/c/junk", ""); body != "ok" {
		t.Fatalf("body %q, want ok", body)
	}
	c.get("/c/ok", "")
	if n := accepted.Load(); n != 2 {
		t.Fatalf("%d upstream connections, want a new one after an answer with extra bytes", n)
	}
}

// Requests sent back to back in one write are answered in order.
func TestFastLoopAnswersPipelinedRequestsInOrder(t *testing.T) {
	var routes routeTable
	routes.put("c", echoUpstream(t).URL, "healthy")
	c := dialRaw(t, newProxyServer(t, &routes, zerolog.Nop()).URL)
	var b strings.Builder
	for i := range 5 {
		fmt.Fprintf(&b, "GET /c/%d HTTP/1.1\r\nHost: berth\r\n\r\n", i)
	}
	c.send(b.String())
	for i := range 5 {
		_, body, err := c.read(http.MethodGet)
		var seen seenRequest
		if err != nil || json.Unmarshal([]byte(body), &seen) != nil || seen.RequestURI != fmt.Sprintf("/%d", i) {
			t.Fatalf("answer %d: %v %q", i, err, body)
		}
	}
}

// What the loop does not serve moves the connection to the http.Server,
// which answers it (or refuses it) and the requests after it.
func TestFastLoopHandsTheRestToTheHTTPServer(t *testing.T) {
	var routes routeTable
	routes.put("c", echoUpstream(t).URL, "healthy")
	var httpConns atomic.Int64
	srv := startProxyWith(t, New(&routes, Options{Log: zerolog.Nop()}), &http.Server{MaxHeaderBytes: 64 << 10,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				httpConns.Add(1)
			}
		}})
	seen := func(body string) seenRequest {
		t.Helper()
		var s seenRequest
		if err := json.Unmarshal([]byte(body), &s); err != nil {
			t.Fatalf("%v: %q", err, body)
		}
		return s
	}
	c := dialRaw(t, srv.URL)
	if s := seen(mustBody(c.get("/c/one", ""))); s.RequestURI != "/one" {
		t.Fatalf("first GET reached %q", s.RequestURI)
	}
	if n := httpConns.Load(); n != 0 {
		t.Fatalf("a plain GET went through the http.Server (%d connections)", n)
	}
	c.send("POST /c/two HTTP/1.1\r\nHost: berth\r\nContent-Length: 4\r\n\r\nbody")
	_, body, err := c.read(http.MethodPost)
	if s := seen(body); err != nil || s.Method != http.MethodPost || s.Body != "body" {
		t.Fatalf("POST after a fast GET: %v %+v", err, s)
	}
	if n := httpConns.Load(); n != 1 {
		t.Fatalf("the POST's connection reached the http.Server %d times, want 1", n)
	}
	if s := seen(mustBody(c.get("/c/three", ""))); s.RequestURI != "/three" {
		t.Fatalf("GET after the POST reached %q", s.RequestURI)
	}

	long := "X-Long: " + strings.Repeat("a", fastHeadMax) + "\r\n"
	if s := seen(mustBody(dialRaw(t, srv.URL).get("/c/long", long))); s.Header.Get("X-Long") == "" {
		t.Fatal("a head longer than the loop takes lost its header")
	}
	huge := "X-Huge: " + strings.Repeat("a", 70<<10) + "\r\n"
	if resp, _ := dialRaw(t, srv.URL).get("/c/huge", huge); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a 70 KiB head: %d, want 431", resp.StatusCode)
	}
	if s := seen(mustBody(dialRaw(t, srv.URL).get("/c/fold", "X-A: 1\r\n folded\r\n"))); s.Header.Get("X-A") != "1 folded" {
		t.Fatalf("an obs-folded header reached the challenge as %q, want it unfolded as net/http does", s.Header.Get("X-A"))
	}
	if resp, _ := dialRaw(t, srv.URL).get("/c/bad", "Bad Name: x\r\n"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a header name with a space: %d, want 400", resp.StatusCode)
	}
}

func mustBody(_ *http.Response, body string) string { return body }

// Connection: close is honoured, and said in the answer.
func TestFastLoopClosesWhenAsked(t *testing.T) {
	var routes routeTable
	routes.put("c", echoUpstream(t).URL, "healthy")
	c := dialRaw(t, newProxyServer(t, &routes, zerolog.Nop()).URL)
	if resp, _ := c.get("/c/", "Connection: close\r\n"); !resp.Close {
		t.Fatal("the answer to Connection: close did not say close")
	}
	if !c.closed() {
		t.Fatal("the connection stayed open after Connection: close")
	}
}

// Shutdown lets a request in progress finish whole, closes idle
// connections, and refuses new ones.
func TestServerShutdownFinishesRequestsAndClosesIdleConnections(t *testing.T) {
	arrived := make(chan struct{}, 1)
	up := testkit.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			time.Sleep(500 * time.Millisecond)
		}
		_, _ = io.WriteString(w, "done "+r.URL.Path)
	}))
	var routes routeTable
	routes.put("c", up.URL, "healthy")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(&routes, Options{Log: zerolog.Nop()}).NewServer(&http.Server{ReadHeaderTimeout: time.Second, IdleTimeout: time.Minute})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	url := "http://" + ln.Addr().String()

	idle := dialRaw(t, url)
	idle.get("/c/warm", "")
	busy := dialRaw(t, url)
	busy.send("GET /c/slow HTTP/1.1\r\nHost: berth\r\n\r\n")
	<-arrived
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	resp, body, err := busy.read(http.MethodGet)
	if err != nil || body != "done /slow" {
		t.Fatalf("the request in progress at shutdown: %v %q", err, body)
	}
	if !resp.Close {
		t.Fatal("an answer during shutdown did not say close")
	}
	if !idle.closed() {
		t.Fatal("an idle connection stayed open through shutdown")
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Fatalf("Serve returned %v, want http.ErrServerClosed", err)
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("a new connection was accepted after shutdown")
	}
}

// A body that arrives after its head, in a later read, still follows it.
func TestFastLoopForwardsABodyThatArrivesAfterItsHead(t *testing.T) {
	up, _ := scriptedUpstream(t, func(r *http.Request, w io.Writer) bool {
		_, _ = io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
		time.Sleep(20 * time.Millisecond) // the body comes in a second segment
		_, _ = io.WriteString(w, "hello")
		return true
	})
	var routes routeTable
	routes.put("c", up, "healthy")
	c := dialRaw(t, newProxyServer(t, &routes, zerolog.Nop()).URL)
	if _, body := c.get("/c/", ""); !bytes.Equal([]byte(body), []byte("hello")) {
		t.Fatalf("body %q", body)
	}
}

// The loop's kept upstream connections carry no bufio buffers: it reads and
// writes them raw, and each buffer would cost 4 KiB per kept connection.
func TestFastLoopKeepsUpstreamConnectionsWithoutBuffers(t *testing.T) {
	var routes routeTable
	routes.put("c", echoUpstream(t).URL, "healthy")
	p := New(&routes, Options{Log: zerolog.Nop()})
	c := dialRaw(t, startProxy(t, p).URL)
	if resp, _ := c.get("/c/", ""); resp.StatusCode != http.StatusCreated {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	p.rawPool.mu.Lock()
	defer p.rawPool.mu.Unlock()
	kept := 0
	for _, cs := range p.rawPool.idle {
		for _, fc := range cs {
			kept++
			if fc.br != nil || fc.bw != nil {
				t.Error("a kept connection of the fast loop carries bufio buffers")
			}
		}
	}
	if kept != 1 {
		t.Fatalf("%d kept upstream connections after one GET, want 1", kept)
	}
}
