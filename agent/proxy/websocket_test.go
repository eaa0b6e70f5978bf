package proxy

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"berth/internal/testkit"
)

// A WebSocket through the stable endpoint is one request for as long as it
// is open: it counts as in flight on its upstream, so a drain waits for it,
// and OnRequest reports it as switched protocols when it closes.
func TestWebSocketIsInFlightUntilClosedAndReportedAs101(t *testing.T) {
	upstream := testkit.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo "), msg...)); err != nil {
				return
			}
		}
	}))
	var routes routeTable
	routes.put("ws", upstream.URL, "healthy")
	type report struct {
		code int
		took time.Duration
	}
	reports := make(chan report, 1)
	p := New(&routes, Options{Log: zerolog.Nop(), OnRequest: func(_ string, code int, took time.Duration) {
		reports <- report{code, took}
	}})
	srv := startProxy(t, p)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws/socket", nil)
	if err != nil {
		t.Fatalf("dial through the proxy: %v", err)
	}
	defer c.CloseNow()
	const open = 300 * time.Millisecond
	for i := range 3 {
		if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if _, got, err := c.Read(ctx); err != nil || string(got) != "echo hi" {
			t.Fatalf("read %d: %q %v", i, got, err)
		}
		if n := p.InFlight(upstream.URL); n != 1 {
			t.Fatalf("InFlight = %d with the socket open, want 1", n)
		}
		time.Sleep(open / 3)
	}
	select {
	case r := <-reports:
		t.Fatalf("OnRequest called while the socket is open: %+v", r)
	default:
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case r := <-reports:
		if r.code != http.StatusSwitchingProtocols {
			t.Errorf("OnRequest code %d, want 101", r.code)
		}
		if r.took < open {
			t.Errorf("OnRequest took %s, want the socket's lifetime (at least %s)", r.took, open)
		}
	case <-ctx.Done():
		t.Fatal("OnRequest not called after the socket closed")
	}
	if n := p.InFlight(upstream.URL); n != 0 {
		t.Errorf("InFlight = %d after the socket closed, want 0", n)
	}
}
