package docker

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/registry"
)

var pulledDigest = "sha256:" + strings.Repeat("c", 64)

type pullResult struct {
	digest string
	err    error
}

// goPull runs Pull in a goroutine and delivers its result.
func goPull(ctx context.Context, c *Client, ref string, progress func(PullProgress)) <-chan pullResult {
	ch := make(chan pullResult, 1)
	go func() {
		d, err := c.Pull(ctx, ref, progress)
		ch <- pullResult{d, err}
	}()
	return ch
}

// waitWaiters waits until n callers share the in-flight pull of ref.
func waitWaiters(t *testing.T, c *Client, ref string, n int) {
	t.Helper()
	eventually(t, 10*time.Second, "pull waiters", func() bool {
		c.pullMu.Lock()
		defer c.pullMu.Unlock()
		call := c.pulls[ref]
		return call != nil && call.waiters == n
	})
}

func TestPullReportsProgressAndDigest(t *testing.T) {
	f := newFakeEngine(t)
	lines := []string{
		`{"status":"Pulling from x/y","id":"1"}`,
		`{"status":"Pulling fs layer","id":"abc"}`,
		`{"status":"Downloading","id":"abc","progressDetail":{"current":1,"total":2}}`,
		`{"status":"Downloading","id":"abc","progressDetail":{"current":2,"total":2}}`,
		`{"status":"Pull complete","id":"abc"}`,
		`{"status":"Digest: ` + pulledDigest + `"}`,
		`{"status":"Status: Downloaded newer image for registry.test/x/y:1"}`,
	}
	f.on("POST /images/create", func(w http.ResponseWriter, r *http.Request) {
		writeLines(w, lines[:3]...)
		writeLines(w, lines[3:]...)
	})
	c, ops := f.client(t, Options{})

	const ref = "registry.test/x/y:1"
	var mu sync.Mutex
	var seen []PullProgress
	digest, err := c.Pull(testCtx(t, 10*time.Second), ref, func(p PullProgress) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	if digest != pulledDigest {
		t.Fatalf("digest = %q, want %q", digest, pulledDigest)
	}
	mu.Lock()
	defer mu.Unlock()
	var statuses []string
	for _, p := range seen {
		statuses = append(statuses, p.Status)
		if p.Ref != ref {
			t.Errorf("progress %+v has Ref %q, want %q", p, p.Ref, ref)
		}
	}
	want := []string{"Pulling from x/y", "Pulling fs layer", "Downloading", "Downloading", "Pull complete",
		"Digest: " + pulledDigest, "Status: Downloaded newer image for registry.test/x/y:1"}
	if !slices.Equal(statuses, want) {
		t.Fatalf("statuses = %q, want %q", statuses, want)
	}
	if p := seen[2]; p.Layer != "abc" || p.Current != 1 || p.Total != 2 {
		t.Errorf("download progress = %+v, want layer abc 1/2", p)
	}
	reqs := f.requests("/images/create")
	if len(reqs) != 1 {
		t.Fatalf("%d images/create requests, want 1", len(reqs))
	}
	if q := reqs[0].Query; q.Get("fromImage") != "registry.test/x/y" || q.Get("tag") != "1" {
		t.Errorf("pull query = %v", q)
	}
	if n := ops.get("image_pull"); n != 1 {
		t.Errorf("OnRequest saw %d image_pull, want 1", n)
	}
}

func TestPullWithoutDigestLineAsksTheImage(t *testing.T) {
	f := newFakeEngine(t)
	f.on("POST /images/create", func(w http.ResponseWriter, r *http.Request) {
		writeLines(w, `{"status":"Status: Image is up to date for registry.test/x/y:1"}`)
	})
	f.on("GET /images/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/images/registry.test/x/y:1/json" {
			engineError(w, http.StatusNotFound, "No such image: "+r.URL.Path)
			return
		}
		_, _ = w.Write([]byte(`{"Id":"sha256:img","RepoDigests":["registry.test/other@` + digestB +
			`","registry.test/x/y@` + pulledDigest + `"]}`))
	})
	c, ops := f.client(t, Options{})
	digest, err := c.Pull(testCtx(t, 10*time.Second), "registry.test/x/y:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if digest != pulledDigest {
		t.Fatalf("digest = %q, want %q from the image's RepoDigests", digest, pulledDigest)
	}
	if n := ops.get("image_inspect"); n != 1 {
		t.Errorf("OnRequest saw %d image_inspect, want 1", n)
	}
}

func TestPullStalledIsAborted(t *testing.T) {
	f := newFakeEngine(t)
	f.on("POST /images/create", func(w http.ResponseWriter, r *http.Request) {
		writeLines(w, `{"status":"Pulling fs layer","id":"abc"}`)
		<-r.Context().Done()
	})
	c, _ := f.client(t, Options{PullStallTimeout: 300 * time.Millisecond})
	start := time.Now()
	_, err := c.Pull(testCtx(t, 20*time.Second), "registry.test/x/y:1", nil)
	if !errors.Is(err, ErrPullStalled) {
		t.Fatalf("Pull = %v, want ErrPullStalled", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("stalled pull aborted after %v, want about the 300ms stall timeout", took)
	}
	if !strings.Contains(err.Error(), "registry.test/x/y:1") {
		t.Errorf("error %q does not name the ref", err)
	}
}

// The engine sends no response header until it first reports progress, so a
// registry that never answers stalls the pull before the stream starts.
func TestPullStalledBeforeFirstProgressIsAborted(t *testing.T) {
	f := newFakeEngine(t)
	f.on("POST /images/create", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	c, _ := f.client(t, Options{PullStallTimeout: 300 * time.Millisecond})
	start := time.Now()
	_, err := c.Pull(testCtx(t, 5*time.Second), "registry.test/x/y:1", nil)
	if !errors.Is(err, ErrPullStalled) {
		t.Fatalf("Pull = %v after %v, want ErrPullStalled after about 300ms", err, time.Since(start).Round(time.Millisecond))
	}
}

func TestPullStreamError(t *testing.T) {
	f := newFakeEngine(t)
	f.on("POST /images/create", func(w http.ResponseWriter, r *http.Request) {
		writeLines(w, `{"status":"Pulling from x/y","id":"1"}`,
			`{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}`)
	})
	c, _ := f.client(t, Options{})
	digest, err := c.Pull(testCtx(t, 10*time.Second), "registry.test/x/y:1", nil)
	if err == nil || !strings.Contains(err.Error(), "manifest unknown") {
		t.Fatalf("Pull = %q, %v; want an error saying manifest unknown", digest, err)
	}
	var de *Error
	if !errors.As(err, &de) || !strings.Contains(de.Op, "registry.test/x/y:1") {
		t.Errorf("error %#v is not a *Error naming the ref", err)
	}
}

func TestPullHTTPErrorIsClassified(t *testing.T) {
	f := newFakeEngine(t)
	f.on("POST /images/create", func(w http.ResponseWriter, r *http.Request) {
		engineError(w, http.StatusNotFound, "manifest for registry.test/x/y:9 not found: manifest unknown")
	})
	c, _ := f.client(t, Options{})
	_, err := c.Pull(testCtx(t, 10*time.Second), "registry.test/x/y:9", nil)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "manifest unknown") {
		t.Fatalf("Pull = %v, want ErrNotFound with the engine's message", err)
	}
}

func TestPullBadReference(t *testing.T) {
	f := newFakeEngine(t)
	c, ops := f.client(t, Options{})
	if _, err := c.Pull(testCtx(t, 10*time.Second), "UPPER/Case:1", nil); err == nil {
		t.Fatal("Pull of an invalid reference succeeded")
	}
	if n := ops.get("image_pull"); n != 0 {
		t.Errorf("an invalid reference reached the engine (%d image_pull)", n)
	}
}

func TestConcurrentPullsShareOneEnginePull(t *testing.T) {
	f := newFakeEngine(t)
	release := make(chan struct{})
	f.on("POST /images/create", func(w http.ResponseWriter, r *http.Request) {
		writeLines(w, `{"status":"Pulling fs layer","id":"abc"}`)
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		writeLines(w, `{"status":"Digest: `+pulledDigest+`"}`)
	})
	c, ops := f.client(t, Options{PullStallTimeout: time.Minute})
	const ref = "registry.test/x/y:1"
	const n = 5
	var results []<-chan pullResult
	for range n {
		results = append(results, goPull(testCtx(t, 30*time.Second), c, ref, nil))
	}
	waitWaiters(t, c, ref, n)
	close(release)
	for i, ch := range results {
		r := recv(t, ch, "a shared pull")
		if r.err != nil || r.digest != pulledDigest {
			t.Errorf("caller %d: %q, %v; want %q", i, r.digest, r.err, pulledDigest)
		}
	}
	if got := len(f.requests("/images/create")); got != 1 {
		t.Fatalf("engine saw %d images/create requests, want 1", got)
	}
	if got := ops.get("image_pull"); got != 1 {
		t.Errorf("OnRequest saw %d image_pull, want 1", got)
	}
	// A later pull of the same ref starts afresh.
	if d, err := c.Pull(testCtx(t, 10*time.Second), ref, nil); err != nil || d != pulledDigest {
		t.Fatalf("second pull: %q, %v", d, err)
	}
	if got := len(f.requests("/images/create")); got != 2 {
		t.Fatalf("engine saw %d images/create requests after a second pull, want 2", got)
	}
}

func TestCancelledPullWaiterLeavesOthersPulling(t *testing.T) {
	f := newFakeEngine(t)
	release := make(chan struct{})
	f.on("POST /images/create", func(w http.ResponseWriter, r *http.Request) {
		writeLines(w, `{"status":"Pulling fs layer","id":"abc"}`)
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		writeLines(w, `{"status":"Digest: `+pulledDigest+`"}`)
	})
	c, _ := f.client(t, Options{PullStallTimeout: time.Minute})
	const ref = "registry.test/x/y:1"
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	a := goPull(ctxA, c, ref, nil)
	var others []<-chan pullResult
	for range 3 {
		others = append(others, goPull(testCtx(t, 30*time.Second), c, ref, nil))
	}
	waitWaiters(t, c, ref, 4)

	cancelA()
	ra := recv(t, a, "the cancelled waiter")
	if !errors.Is(ra.err, context.Canceled) || ra.digest != "" {
		t.Fatalf("cancelled waiter got %q, %v; want context.Canceled", ra.digest, ra.err)
	}
	waitWaiters(t, c, ref, 3)

	close(release)
	for i, ch := range others {
		r := recv(t, ch, "a remaining waiter")
		if r.err != nil || r.digest != pulledDigest {
			t.Errorf("waiter %d: %q, %v; want %q", i, r.digest, r.err, pulledDigest)
		}
	}
	if got := len(f.requests("/images/create")); got != 1 {
		t.Fatalf("engine saw %d images/create requests, want 1", got)
	}
}

// A caller that gave up must not hear about the pull any more.
func TestPullProgressStopsWhenWaiterLeaves(t *testing.T) {
	f := newFakeEngine(t)
	next, finish := make(chan struct{}), make(chan struct{})
	f.on("POST /images/create", func(w http.ResponseWriter, r *http.Request) {
		step := func(ch chan struct{}) bool {
			select {
			case <-ch:
				return true
			case <-r.Context().Done():
				return false
			}
		}
		writeLines(w, `{"status":"Pulling fs layer","id":"abc"}`)
		if !step(next) {
			return
		}
		writeLines(w, `{"status":"Downloading","id":"abc","progressDetail":{"current":1,"total":2}}`)
		if !step(finish) {
			return
		}
		writeLines(w, `{"status":"Digest: `+pulledDigest+`"}`)
	})
	c, _ := f.client(t, Options{PullStallTimeout: time.Minute})
	const ref = "registry.test/x/y:1"

	var left atomic.Bool
	var late atomic.Int32
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	a := goPull(ctxA, c, ref, func(PullProgress) {
		if left.Load() {
			late.Add(1)
		}
	})
	var heardB atomic.Int32
	b := goPull(testCtx(t, 30*time.Second), c, ref, func(PullProgress) { heardB.Add(1) })
	waitWaiters(t, c, ref, 2)

	cancelA()
	if r := recv(t, a, "the cancelled waiter"); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled waiter got %v", r.err)
	}
	left.Store(true)
	close(next)
	close(finish)
	if r := recv(t, b, "the remaining waiter"); r.err != nil || r.digest != pulledDigest {
		t.Fatalf("remaining waiter: %q, %v", r.digest, r.err)
	}
	if heardB.Load() < 2 {
		t.Errorf("remaining waiter heard %d progress reports, want every one after it joined", heardB.Load())
	}
	if n := late.Load(); n != 0 {
		t.Fatalf("progress callback of a returned Pull was called %d times", n)
	}
}

// A Pull arriving after the last waiter left must not inherit the
// cancelled pull's error.
func TestPullAfterLastWaiterLeftStartsAfresh(t *testing.T) {
	f := newFakeEngine(t)
	var served atomic.Int32
	f.on("POST /images/create", func(w http.ResponseWriter, r *http.Request) {
		if served.Add(1) == 1 {
			writeLines(w, `{"status":"Pulling fs layer","id":"abc"}`)
			<-r.Context().Done()
			return
		}
		writeLines(w, `{"status":"Digest: `+pulledDigest+`"}`)
	})
	c, _ := f.client(t, Options{PullStallTimeout: time.Minute})
	const ref = "registry.test/x/y:1"

	// The first caller's progress callback holds the old pull mid-stream,
	// keeping the window between "last waiter left" and "pull finished" open.
	inCallback, unblock := make(chan struct{}), make(chan struct{})
	var unblockOnce, first sync.Once
	t.Cleanup(func() { unblockOnce.Do(func() { close(unblock) }) })
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	a := goPull(ctxA, c, ref, func(PullProgress) {
		first.Do(func() {
			close(inCallback)
			<-unblock
		})
	})
	recv(t, inCallback, "the first progress report")
	cancelA()
	if r := recv(t, a, "the cancelled caller"); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled caller got %v", r.err)
	}

	b := goPull(testCtx(t, 30*time.Second), c, ref, nil)
	var rb *pullResult
	eventually(t, 10*time.Second, "the second caller to join or finish", func() bool {
		select {
		case r := <-b:
			rb = &r
			return true
		default:
		}
		c.pullMu.Lock()
		defer c.pullMu.Unlock()
		call := c.pulls[ref]
		return call != nil && call.waiters == 1
	})
	unblockOnce.Do(func() { close(unblock) })
	if rb == nil {
		r := recv(t, b, "the second caller")
		rb = &r
	}
	if rb.err != nil || rb.digest != pulledDigest {
		t.Fatalf("Pull after the only waiter left got %q, %v; want a fresh pull returning %q", rb.digest, rb.err, pulledDigest)
	}
}

func TestPullSendsRegistryCredentials(t *testing.T) {
	f := newFakeEngine(t)
	f.on("POST /images/create", func(w http.ResponseWriter, r *http.Request) {
		writeLines(w, `{"status":"Digest: `+pulledDigest+`"}`)
	})
	auth := base64.StdEncoding.EncodeToString([]byte("user:pass"))
	writeDockerConfig(t, `{"auths":{"`+f.host+`":{"auth":"`+auth+`"}}}`)
	c, _ := f.client(t, Options{})

	if _, err := c.Pull(testCtx(t, 10*time.Second), f.host+"/x/y:1", nil); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests("/images/create")
	if len(reqs) != 1 || reqs[0].Auth == "" {
		t.Fatalf("pull carried no X-Registry-Auth: %+v", reqs)
	}
	cfg, err := registry.DecodeAuthConfig(reqs[0].Auth)
	if err != nil {
		t.Fatalf("X-Registry-Auth %q: %v", reqs[0].Auth, err)
	}
	user, pass := cfg.Username, cfg.Password
	if user == "" && cfg.Auth != "" {
		b, _ := base64.StdEncoding.DecodeString(cfg.Auth)
		user, pass, _ = strings.Cut(string(b), ":")
	}
	if user != "user" || pass != "pass" {
		t.Fatalf("X-Registry-Auth carries %q:%q, want user:pass (%+v)", user, pass, cfg)
	}
	if cfg.ServerAddress != f.host {
		t.Errorf("ServerAddress = %q, want %q", cfg.ServerAddress, f.host)
	}

	// Another registry has no entry: the pull is anonymous.
	if _, err := c.Pull(testCtx(t, 10*time.Second), "other.test/x/y:1", nil); err != nil {
		t.Fatal(err)
	}
	if reqs := f.requests("/images/create"); len(reqs) != 2 || reqs[1].Auth != "" {
		t.Fatalf("anonymous pull carried X-Registry-Auth %q", reqs[len(reqs)-1].Auth)
	}
}

func TestPullWithoutCredentialsIsAnonymous(t *testing.T) {
	f := newFakeEngine(t)
	f.on("POST /images/create", func(w http.ResponseWriter, r *http.Request) {
		writeLines(w, `{"status":"Digest: `+pulledDigest+`"}`)
	})
	c, _ := f.client(t, Options{})
	if _, err := c.Pull(testCtx(t, 10*time.Second), f.host+"/x/y:1", nil); err != nil {
		t.Fatal(err)
	}
	if reqs := f.requests("/images/create"); len(reqs) != 1 || reqs[0].Auth != "" {
		t.Fatalf("pull without credentials sent X-Registry-Auth: %+v", reqs)
	}
}
