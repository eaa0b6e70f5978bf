package proxy

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"berth/internal/testkit"
)

// InFlightTotal counts the requests every upstream is serving now, and
// OnRequest gets each request's duration once it ends.
func TestProxyInFlightTotalAndDuration(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	arrived := make(chan struct{}, 8)
	blocking := func() http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			io.WriteString(w, "done\n")
		})
	}
	a, b := testkit.Server(t, blocking()), testkit.Server(t, blocking())
	t.Cleanup(unblock) // before the upstreams close

	var routes routeTable
	routes.put("a", a.URL, "healthy")
	routes.put("b", b.URL, "healthy")
	type report struct {
		challenge string
		code      int
		took      time.Duration
	}
	reports := make(chan report, 8)
	p := New(&routes, Options{Log: zerolog.Nop(), OnRequest: func(challenge string, code int, took time.Duration) {
		reports <- report{challenge, code, took}
	}})
	srv := startProxy(t, p)
	if n := p.InFlightTotal(); n != 0 {
		t.Fatalf("InFlightTotal = %d before any request, want 0", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, path := range []string{"/a/x", "/a/y", "/b/z"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("GET %s: %v", path, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	for range 3 {
		select {
		case <-arrived:
		case <-ctx.Done():
			t.Fatal("requests did not reach the upstreams")
		}
	}
	if n := p.InFlightTotal(); n != 3 {
		t.Fatalf("InFlightTotal = %d with three requests held upstream, want 3", n)
	}
	if n := p.InFlight(a.URL); n != 2 {
		t.Fatalf("InFlight(a) = %d, want 2", n)
	}
	const hold = 50 * time.Millisecond
	time.Sleep(hold)
	unblock()
	wg.Wait()

	got := map[string]int{}
	for range 3 {
		select {
		case r := <-reports:
			if r.code != http.StatusOK {
				t.Errorf("OnRequest(%q) code %d, want 200", r.challenge, r.code)
			}
			if r.took < hold {
				t.Errorf("OnRequest(%q) took %s, want at least the %s the upstream held it", r.challenge, r.took, hold)
			}
			got[r.challenge]++
		case <-ctx.Done():
			t.Fatal("OnRequest not called for every request")
		}
	}
	if got["a"] != 2 || got["b"] != 1 {
		t.Fatalf("OnRequest reports by challenge %v, want a:2 b:1", got)
	}
	// The handler reports after it returns, so the counts are down by now.
	if n := p.InFlightTotal(); n != 0 {
		t.Fatalf("InFlightTotal = %d after every request ended, want 0", n)
	}
}
