package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"berth/internal/testkit"
)

// oneShotUpstream answers one request per connection as a keep-alive
// response and then closes the connection, as a challenge with a short
// idle timeout does: every kept connection is stale when next used.
func oneShotUpstream(tb testing.TB) (string, *atomic.Int64) {
	tb.Helper()
	return scriptedUpstream(tb, func(_ *http.Request, w io.Writer) bool {
		_, _ = io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
		return false
	})
}

// A kept connection the challenge closed is not an error for the client:
// the GET goes again on a new connection.
func TestProxyRetriesAStaleKeptConnection(t *testing.T) {
	up, accepted := oneShotUpstream(t)
	var routes routeTable
	routes.put("c", up, "healthy")
	srv := newProxyServer(t, &routes, zerolog.Nop())
	c := keepAliveClient(t, 1)
	for i := range 5 {
		resp, err := c.Get(srv.URL + "/c/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
			t.Fatalf("request %d: %d %q, want 200 ok", i, resp.StatusCode, body)
		}
	}
	if n := accepted.Load(); n < 5 {
		t.Fatalf("%d upstream connections for 5 requests on one-shot connections", n)
	}
}

// A response that ends its connection is not kept.
func TestProxyDropsConnectionsTheChallengeCloses(t *testing.T) {
	up, conns := connCountingUpstream(t)
	var routes routeTable
	routes.put("c", up.URL, "healthy")
	closing := testkit.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, "bye\n")
	}))
	routes.put("closing", closing.URL, "healthy")
	srv := newProxyServer(t, &routes, zerolog.Nop())
	c := keepAliveClient(t, 1)
	for range 3 {
		getOK(t, c, srv.URL+"/closing/")
		getOK(t, c, srv.URL+"/c/")
	}
	if n := conns.opened.Load(); n != 1 {
		t.Fatalf("%d connections to the keep-alive upstream, want 1", n)
	}
}

// A GET whose client leaves cuts the upstream exchange too, is not an
// upstream error, and is counted as 499.
func TestProxyClientLeavingCutsTheUpstreamRequest(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		t.Run(method, func(t *testing.T) {
			arrived, upstreamSawEnd := make(chan struct{}), make(chan struct{})
			up := testkit.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(arrived)
				<-r.Context().Done()
				close(upstreamSawEnd)
			}))
			var routes routeTable
			routes.put("c", up.URL, "healthy")
			var logs lockedBuffer
			codes := make(chan int, 1)
			srv := startProxy(t, New(&routes, Options{Log: zerolog.New(&logs),
				OnRequest: func(_ string, code int, _ time.Duration) { codes <- code }}))
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				<-arrived
				cancel()
			}()
			req, _ := http.NewRequestWithContext(ctx, method, srv.URL+"/c/slow", nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				t.Fatal("the request succeeded although its client left")
			}
			select {
			case <-upstreamSawEnd:
			case <-time.After(5 * time.Second):
				t.Fatal("the upstream request went on after the client left")
			}
			select {
			case code := <-codes:
				if code != StatusClientClosedRequest {
					t.Fatalf("counted as %d, want %d", code, StatusClientClosedRequest)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the request was never counted")
			}
			if s := logs.String(); s != "" {
				t.Fatalf("a client leaving was logged: %s", s)
			}
		})
	}
}

// Informational answers (103 Early Hints) reach the client before the
// response, as with http.Transport.
func TestProxyPassesEarlyHints(t *testing.T) {
	up := testkit.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		_, _ = io.WriteString(w, "page\n")
	}))
	var routes routeTable
	routes.put("c", up.URL, "healthy")
	srv := newProxyServer(t, &routes, zerolog.Nop())
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, h.Get("Link"))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, srv.URL+"/c/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "page\n" {
		t.Fatalf("%d %q, want 200 page", resp.StatusCode, body)
	}
	if len(hints) != 1 || hints[0] != "</style.css>; rel=preload" {
		t.Fatalf("early hints %q, want the Link header once", hints)
	}
}

// HEAD has no body on the wire; the kept connection stays usable.
func TestProxyHead(t *testing.T) {
	up, conns := connCountingUpstream(t)
	var routes routeTable
	routes.put("c", up.URL, "healthy")
	srv := newProxyServer(t, &routes, zerolog.Nop())
	c := keepAliveClient(t, 1)
	for range 3 {
		resp, err := c.Head(srv.URL + "/c/version")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ContentLength != 6 {
			t.Fatalf("HEAD: %d, length %d; want 200, 6", resp.StatusCode, resp.ContentLength)
		}
		getOK(t, c, srv.URL+"/c/version")
	}
	if n := conns.opened.Load(); n != 1 {
		t.Fatalf("%d upstream connections, want 1", n)
	}
}

// A challenge that never ends its response header gets a 502 once the
// header passes the limit; berth does not buffer it all.
func TestProxyBoundsTheResponseHeader(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		line := "X-Endless: " + strings.Repeat("a", 1000) + "\r\n"
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		for { // until the proxy hangs up
			if _, err := io.WriteString(c, line); err != nil {
				return
			}
		}
	}()
	var routes routeTable
	routes.put("c", "http://"+ln.Addr().String(), "healthy")
	srv := newProxyServer(t, &routes, zerolog.Nop())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/c/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("no answer while the challenge sent an endless header: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	testkit.JSONError(t, resp, body, http.StatusBadGateway, "upstream_error")
}
