package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"berth/internal/testkit"
)

// countingUpstream is an echo upstream that counts its requests.
func countingUpstream(tb testing.TB) (string, *atomic.Int64) {
	tb.Helper()
	var hits atomic.Int64
	srv := testkit.Server(tb, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		_ = json.NewEncoder(w).Encode(seenRequest{Method: r.Method, Path: r.URL.Path, Body: string(body)})
	}))
	return srv.URL, &hits
}

type downCalls struct {
	mu    sync.Mutex
	calls []string
}

func (d *downCalls) add(name, upstream string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, name+" "+upstream)
}

func (d *downCalls) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.calls...)
}

func failoverProxy(tb testing.TB, routes Routes, methods []string, down *downCalls) string {
	tb.Helper()
	p := New(routes, Options{Log: zerolog.Nop(), RetryMethods: methods, RetryWait: 400 * time.Millisecond, OnUpstreamDown: down.add})
	return startProxy(tb, p).URL
}

// A refused connection to the active container sends the request to the
// ready standby, marks the active one down so the next requests go to the
// standby directly, and tells the owner once.
func TestFailoverToStandbyOnRefusedConnection(t *testing.T) {
	dead := deadUpstream(t)
	standby, hits := countingUpstream(t)
	routes := &routeTable{m: map[string]Route{"web": {Name: "web", Upstream: dead, Standby: standby, Serving: true}}}
	down := &downCalls{}
	base := failoverProxy(t, routes, []string{"GET"}, down)
	for i := range 5 {
		resp, err := http.Get(base + "/web/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d, want the standby's 200", i, resp.StatusCode)
		}
	}
	if hits.Load() != 5 {
		t.Fatalf("standby served %d of 5", hits.Load())
	}
	if got := down.list(); len(got) != 1 || got[0] != "web "+dead {
		t.Fatalf("upstream-down reports %v, want one for %s", got, dead)
	}
}

// Methods outside retry_methods, and bodies too large to keep, are not
// sent twice: the client gets the 502.
func TestFailoverOnlyRetriesWhatIsSafe(t *testing.T) {
	dead := deadUpstream(t)
	standby, hits := countingUpstream(t)
	routes := &routeTable{m: map[string]Route{"web": {Name: "web", Upstream: dead, Standby: standby, Serving: true}}}
	base := failoverProxy(t, routes, []string{"GET", "PUT"}, &downCalls{})

	resp, err := http.Post(base+"/web/x", "text/plain", strings.NewReader("once"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || hits.Load() != 0 {
		t.Fatalf("POST: %d with %d standby hits, want 502 and none", resp.StatusCode, hits.Load())
	}
	// A small PUT body is replayed whole on the standby (a fresh proxy,
	// which has not marked the dead upstream down yet).
	base = failoverProxy(t, routes, []string{"GET", "PUT"}, &downCalls{})
	req, _ := http.NewRequest(http.MethodPut, base+"/web/x", strings.NewReader("replay me"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var seen seenRequest
	_ = json.NewDecoder(resp.Body).Decode(&seen)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || seen.Body != "replay me" {
		t.Fatalf("small PUT: %d body %q", resp.StatusCode, seen.Body)
	}
	// A body over MaxRetryBody is streamed, not kept: no second attempt (a
	// fresh proxy, which has not marked the dead upstream down yet).
	base = failoverProxy(t, routes, []string{"GET", "PUT"}, &downCalls{})
	req, _ = http.NewRequest(http.MethodPut, base+"/web/x", strings.NewReader(strings.Repeat("x", MaxRetryBody+1)))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || hits.Load() != 1 {
		t.Fatalf("large PUT: %d with %d standby hits, want 502 and still 1", resp.StatusCode, hits.Load())
	}
}

// Without a standby a failed GET is held until the challenge's next
// container serves (within the retry wait), then sent there.
func TestFailoverWaitsForNextContainer(t *testing.T) {
	dead := deadUpstream(t)
	next, hits := countingUpstream(t)
	routes := &routeTable{}
	routes.put("web", dead, "healthy")
	base := failoverProxy(t, routes, []string{"GET"}, &downCalls{})
	go func() {
		time.Sleep(50 * time.Millisecond)
		routes.put("web", dead, "unhealthy")
		time.Sleep(100 * time.Millisecond)
		routes.put("web", next, "healthy")
	}()
	resp, err := http.Get(base + "/web/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || hits.Load() != 1 {
		t.Fatalf("held GET: %d, %d hits on the next container", resp.StatusCode, hits.Load())
	}
	// No next container within the wait: 502.
	routes.put("web", deadUpstream(t), "healthy")
	start := time.Now()
	resp, err = http.Get(base + "/web/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("no next container: %d after %s, want 502 after the wait", resp.StatusCode, time.Since(start))
	}
}

// Once response bytes went out, a failure is the client's to see: the
// request is not sent again.
func TestFailoverNeverAfterResponseBytes(t *testing.T) {
	standby, hits := countingUpstream(t)
	partial := testkit.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "half")
		if hj, ok := w.(http.Hijacker); ok {
			c, _, _ := hj.Hijack()
			c.Close()
		}
	}))
	routes := &routeTable{m: map[string]Route{"web": {Name: "web", Upstream: partial.URL, Standby: standby, Serving: true}}}
	base := failoverProxy(t, routes, []string{"GET"}, &downCalls{})
	resp, err := http.Get(base + "/web/x")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("a truncated response read as complete")
	}
	if hits.Load() != 0 {
		t.Fatalf("the standby got %d requests after response bytes went out", hits.Load())
	}
}

// A GET already sent to a container that then dies without answering (its
// connection just hangs, as through docker-proxy when the container's
// network is gone) goes again to the promoted standby as soon as the
// container is known down and the route has moved; a swap's old container
// keeps the requests it has.
func TestFastLoopAbandonsAnUpstreamGivenUpForDead(t *testing.T) {
	for _, crashed := range []bool{true, false} {
		t.Run(map[bool]string{true: "crash", false: "swap"}[crashed], func(t *testing.T) {
			arrived := make(chan struct{}, 1)
			release := make(chan struct{})
			old := testkit.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				arrived <- struct{}{}
				select {
				case <-release:
				case <-r.Context().Done():
				}
				_, _ = io.WriteString(w, "old")
			}))
			defer close(release)
			standby := testkit.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "standby")
			}))
			routes := &routeTable{m: map[string]Route{"c": {Name: "c", Upstream: old.URL, Standby: standby.URL, Serving: true}}}
			p := New(routes, Options{Log: zerolog.Nop(), RetryMethods: []string{http.MethodGet}})
			srv := startProxy(t, p)
			got := make(chan string, 1)
			go func() {
				c := &http.Client{Timeout: 5 * time.Second}
				resp, err := c.Get(srv.URL + "/c/x")
				if err != nil {
					got <- err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				got <- string(b)
			}()
			<-arrived
			if crashed {
				p.upstreamFailed("c", old.URL) // another request met a reset
			}
			routes.mu.Lock()
			routes.m["c"] = Route{Name: "c", Upstream: standby.URL, Serving: true}
			routes.mu.Unlock()
			select {
			case body := <-got:
				if !crashed || body != "standby" {
					t.Fatalf("answer %q (crashed %v)", body, crashed)
				}
			case <-time.After(time.Second):
				if crashed {
					t.Fatal("the GET stayed on a container given up for dead")
				}
				release <- struct{}{}
				if body := <-got; body != "old" {
					t.Fatalf("a request draining on a swap's old container got %q, want old", body)
				}
			}
		})
	}
}
