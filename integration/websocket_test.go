package integration_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"berth/integration/testenv"
)

// Long-lived requests through the stable endpoint (SPEC §8): a swap, a
// rollback, a reload or another challenge's drain never cuts a WebSocket or
// a streaming response; a swap leaves them on the old container until they
// close or drain_timeout passes, and new ones reach the new container.

// echoEvery is how often each socket sends a message and waits for its echo.
const echoEvery = 100 * time.Millisecond

// echoSocket is a WebSocket to the test challenge's /ws through the stable
// endpoint that sends a numbered message every echoEvery and checks each
// echo names the version that answered the first one. It stops at the first
// failure: a failed or missed echo or one from another version.
type echoSocket struct {
	conn    *websocket.Conn
	version string // the version that served the first echo
	echoes  atomic.Int64
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once

	mu      sync.Mutex
	err     error
	endedAt time.Time
}

// openSocket dials /<challenge>/ws on the stable endpoint, waits for the
// first echo and keeps echoing until closed; the test's cleanup closes it.
func openSocket(t testing.TB, proxy, challenge string) *echoSocket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(proxy, "http")+"/"+challenge+"/ws", nil)
	if err != nil {
		t.Fatalf("dial %s/ws: %v", challenge, err)
	}
	s := &echoSocket{conn: conn, stop: make(chan struct{}), done: make(chan struct{})}
	got, err := s.echo(ctx, "0")
	if err != nil {
		conn.CloseNow()
		t.Fatalf("first echo on %s/ws: %v", challenge, err)
	}
	version, rest, _ := strings.Cut(got, " ")
	if rest != "0" || version == "" {
		conn.CloseNow()
		t.Fatalf("first echo on %s/ws: %q, want \"<version> 0\"", challenge, got)
	}
	s.version = version
	s.echoes.Store(1)
	go s.loop()
	t.Cleanup(func() { _ = s.close() })
	return s
}

func (s *echoSocket) echo(ctx context.Context, msg string) (string, error) {
	if err := s.conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		return "", fmt.Errorf("write: %w", err)
	}
	_, got, err := s.conn.Read(ctx)
	if err != nil {
		return "", fmt.Errorf("read: %w", err)
	}
	return string(got), nil
}

func (s *echoSocket) loop() {
	defer close(s.done)
	tick := time.NewTicker(echoEvery)
	defer tick.Stop()
	for i := 1; ; i++ {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		msg := strconv.Itoa(i)
		got, err := s.echo(ctx, msg)
		cancel()
		if err == nil && got != s.version+" "+msg {
			err = fmt.Errorf("echo %q, want %q", got, s.version+" "+msg)
		}
		if err != nil {
			s.mu.Lock()
			s.err, s.endedAt = fmt.Errorf("echo %d on a %s socket: %w", i, s.version, err), time.Now()
			s.mu.Unlock()
			return
		}
		s.echoes.Add(1)
	}
}

// failure is when the socket ended and the error that ended it; nil while
// it echoes.
func (s *echoSocket) failure() (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endedAt, s.err
}

// close stops echoing and closes the socket normally; it returns the
// failure that ended the socket earlier, if any.
func (s *echoSocket) close() error {
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		if _, err := s.failure(); err == nil {
			_ = s.conn.Close(websocket.StatusNormalClosure, "")
		}
		s.conn.CloseNow()
	})
	_, err := s.failure()
	return err
}

// sockets is a group of echoing sockets.
type sockets []*echoSocket

func openSockets(t testing.TB, n int, proxy, challenge string) sockets {
	t.Helper()
	ss := make(sockets, n)
	for i := range ss {
		ss[i] = openSocket(t, proxy, challenge)
	}
	return ss
}

// requireVersion fails the test unless every socket is served by version.
func (ss sockets) requireVersion(t testing.TB, version, what string) {
	t.Helper()
	for i, s := range ss {
		if s.version != version {
			t.Fatalf("%s socket %d reached %s, want %s", what, i, s.version, version)
		}
	}
}

// requireEchoing waits until every socket has echoed a few more times and
// fails the test if any has dropped or missed an echo.
func (ss sockets) requireEchoing(t testing.TB, what string) {
	t.Helper()
	before := make([]int64, len(ss))
	for i, s := range ss {
		before[i] = s.echoes.Load()
	}
	testenv.WaitFor(t, 10*time.Second, what+": sockets echoing", func() (bool, error) {
		for i, s := range ss {
			if _, err := s.failure(); err != nil {
				t.Fatalf("%s: socket %d dropped: %v", what, i, err)
			}
			if n := s.echoes.Load(); n < before[i]+3 {
				return false, fmt.Errorf("socket %d: %d echoes, had %d", i, n, before[i])
			}
		}
		return true, nil
	})
}

// closeAll closes the sockets and fails the test for any that had dropped.
func (ss sockets) closeAll(t testing.TB, what string) {
	t.Helper()
	for i, s := range ss {
		if err := s.close(); err != nil {
			t.Errorf("%s socket %d dropped: %v", what, i, err)
		}
	}
}

// eventStream is a GET of the test challenge's /stream through the stable
// endpoint, read as the events come.
type eventStream struct {
	done chan struct{}

	mu      sync.Mutex
	events  []string
	err     error // why the stream ended early; nil once it ended whole
	endedAt time.Time
}

// openStream starts GET /<challenge>/stream?n=n&ms=ms and waits for its
// first event.
func openStream(t testing.TB, proxy, challenge string, n, ms int) *eventStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/%s/stream?n=%d&ms=%d", proxy, challenge, n, ms), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s/stream: %v", challenge, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s/stream: status %d", challenge, resp.StatusCode)
	}
	es := &eventStream{done: make(chan struct{})}
	go func() {
		defer close(es.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if ev, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				es.mu.Lock()
				es.events = append(es.events, ev)
				es.mu.Unlock()
			}
		}
		es.mu.Lock()
		es.err, es.endedAt = sc.Err(), time.Now()
		es.mu.Unlock()
	}()
	t.Cleanup(func() { cancel(); <-es.done })
	testenv.WaitFor(t, 10*time.Second, challenge+" stream's first event", func() (bool, error) {
		return len(es.snapshot()) > 0, nil
	})
	return es
}

func (es *eventStream) snapshot() []string {
	es.mu.Lock()
	defer es.mu.Unlock()
	return append([]string(nil), es.events...)
}

// wait waits for the stream to end and returns its events, when it ended
// and the read error that ended it (nil for a whole stream).
func (es *eventStream) wait(t testing.TB, timeout time.Duration) ([]string, time.Time, error) {
	t.Helper()
	select {
	case <-es.done:
	case <-time.After(timeout):
		t.Fatalf("stream still open after %s", timeout)
	}
	es.mu.Lock()
	defer es.mu.Unlock()
	return append([]string(nil), es.events...), es.endedAt, es.err
}

// requireStreamFrom checks events are 0..n-1, all from version.
func requireStreamFrom(t testing.TB, events []string, n int, version string) {
	t.Helper()
	if len(events) != n {
		t.Errorf("stream had %d events, want %d", len(events), n)
	}
	for i, ev := range events {
		if want := fmt.Sprintf("%s %d", version, i); ev != want {
			t.Errorf("stream event %d = %q, want %q", i, ev, want)
			return
		}
	}
}

// waitCutOver waits until the challenge serves version and returns its view.
func waitCutOver(t testing.TB, api, name, version string) challengeView {
	t.Helper()
	return waitServing(t, api, name, time.Minute, func(v challengeView) bool { return v.Version == version })
}

func swapPhase(t testing.TB, api, name string) string {
	t.Helper()
	var v map[string]any
	testenv.HTTPGetJSON(t, api+"/v1/challenges/"+name, &v)
	s, _ := v["swap"].(map[string]any)
	phase, _ := s["phase"].(string)
	return phase
}

func containerRunning(t testing.TB, id string) bool {
	t.Helper()
	return testenv.DockerInspect(t, id)["State"].(map[string]any)["Running"] == true
}

// wsSwapAgent starts berth with challenge svc at 1.0.0, with 1.0.0 and
// 1.1.0 in the registry, and waits until svc serves. more, if set, returns
// YAML for the image put right after svc's entry: more fields of svc,
// indented as its own, or further challenges. It returns the config's path
// too.
func wsSwapAgent(t *testing.T, update string, more func(image string) string) (*runningAgent, challengeView, string) {
	t.Helper()
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	reg.PushChallenge(t, "berth-it/echo", "1.1.0", nil)
	image := reg.Host + "/berth-it/echo"
	challenges := swapYAML("svc", image, "1.0.0", update)
	if more != nil {
		challenges += more(image)
	}
	cfg := berthConfig(t, id, challenges)
	ra := startAgent(t, cfg)
	return ra, waitServing(t, ra.api, "svc", 60*time.Second, nil), cfg
}

func TestWebSocketsStayOnTheOldVersionAcrossASwap(t *testing.T) {
	const n = 5
	ra, before, _ := wsSwapAgent(t, "healthy_deadline: 30s, min_healthy_time: 1s, drain_timeout: 2m, keep_previous: 10m", nil)
	old := openSockets(t, n, ra.proxy, "svc")
	old.requireVersion(t, "1.0.0", "before the swap")

	postSwap(t, ra.api, "svc", "1.1.0")
	old.requireEchoing(t, "while the new version starts")
	after := waitCutOver(t, ra.api, "svc", "1.1.0")
	if after.ContainerID == before.ContainerID {
		t.Fatal("cut over to the same container")
	}
	// New connections go to the new version; the old ones stay where they are.
	fresh := openSockets(t, 2, ra.proxy, "svc")
	fresh.requireVersion(t, "1.1.0", "after the cut-over")
	if _, body := getBody(t, ra.proxy+"/svc/version"); !strings.Contains(body, `"1.1.0"`) {
		t.Errorf("GET /version after the cut-over: %s", body)
	}
	old.requireEchoing(t, "after the cut-over")
	time.Sleep(2 * time.Second) // a drain with nothing to wait for ends in well under this
	old.requireEchoing(t, "while the old container drains")
	if phase := swapPhase(t, ra.api, "svc"); phase != "draining" {
		t.Errorf("swap phase %q with old sockets open, want draining", phase)
	}
	if !containerRunning(t, before.ContainerID) {
		t.Fatal("the old container stopped while its sockets were open")
	}

	// Closing the old sockets ends the drain; the new ones are untouched.
	old.closeAll(t, "old")
	if swap := waitSwapEnd(t, ra.api, "svc", time.Minute); swap["phase"] != "completed" {
		t.Fatalf("swap ended %v: %v", swap["phase"], swap["error"])
	}
	testenv.WaitFor(t, 30*time.Second, "the old container stopped", func() (bool, error) {
		return !containerRunning(t, before.ContainerID), nil
	})
	fresh.requireEchoing(t, "after the drain")
	fresh.closeAll(t, "new")
}

func TestLongLivedRequestsEndWhenDrainTimeoutPasses(t *testing.T) {
	const drain = 5 * time.Second
	ra, before, _ := wsSwapAgent(t, "healthy_deadline: 30s, min_healthy_time: 500ms, drain_timeout: 5s", nil)
	old := openSocket(t, ra.proxy, "svc")
	stream := openStream(t, ra.proxy, "svc", 600, 100) // a minute of events

	postSwap(t, ra.api, "svc", "1.1.0")
	waitCutOver(t, ra.api, "svc", "1.1.0")
	cutSeen := time.Now()
	// Up to drain_timeout the old socket and stream are served.
	sockets{old}.requireEchoing(t, "within drain_timeout")
	if !containerRunning(t, before.ContainerID) {
		t.Fatal("the old container stopped before drain_timeout")
	}
	// Then berth stops the old container, and they end.
	testenv.WaitFor(t, drain+30*time.Second, "the old socket to end", func() (bool, error) {
		_, err := old.failure()
		return err != nil, nil
	})
	endedAt, err := old.failure()
	t.Logf("old socket ended %s after the cut-over was seen: %v", endedAt.Sub(cutSeen).Round(time.Millisecond), err)
	// cutSeen is at most one status poll after the cut-over.
	if lived := endedAt.Sub(cutSeen); lived < drain-time.Second {
		t.Errorf("old socket ended %s after the cut-over, before drain_timeout %s", lived, drain)
	}
	events, streamEnd, serr := stream.wait(t, 30*time.Second)
	if len(events) >= 600 || serr == nil {
		t.Errorf("stream ended whole (%d events, %v), want it cut after drain_timeout", len(events), serr)
	}
	if lived := streamEnd.Sub(cutSeen); lived < drain-time.Second {
		t.Errorf("stream ended %s after the cut-over, before drain_timeout %s", lived, drain)
	}
	requireStreamFrom(t, events, len(events), "1.0.0")
	if swap := waitSwapEnd(t, ra.api, "svc", time.Minute); swap["phase"] != "completed" {
		t.Fatalf("swap ended %v: %v", swap["phase"], swap["error"])
	}
	// The new version serves sockets as usual.
	fresh := openSockets(t, 1, ra.proxy, "svc")
	fresh.requireVersion(t, "1.1.0", "after the drain")
	fresh.requireEchoing(t, "after the drain")
	fresh.closeAll(t, "new")
}

func TestWebSocketsSurviveARollbackWhileTheOldVersionDrains(t *testing.T) {
	ra, before, _ := wsSwapAgent(t, "healthy_deadline: 30s, min_healthy_time: 500ms, drain_timeout: 2m, keep_previous: 10m", nil)
	first := openSockets(t, 3, ra.proxy, "svc")
	postSwap(t, ra.api, "svc", "1.1.0")
	swapped := waitCutOver(t, ra.api, "svc", "1.1.0")
	second := openSockets(t, 3, ra.proxy, "svc")
	second.requireVersion(t, "1.1.0", "after the swap")

	// The rollback routes straight back to the still draining 1.0.0.
	resp, err := http.Post(ra.api+"/v1/challenges/svc/rollback", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("rollback: %d", resp.StatusCode)
	}
	back := waitCutOver(t, ra.api, "svc", "1.0.0")
	if back.ContainerID != before.ContainerID {
		t.Errorf("rolled back to %s, want the draining %s", back.ContainerID, before.ContainerID)
	}
	third := openSockets(t, 3, ra.proxy, "svc")
	third.requireVersion(t, "1.0.0", "after the rollback")
	all := append(append(append(sockets{}, first...), second...), third...)
	all.requireEchoing(t, "after the rollback")
	if !containerRunning(t, swapped.ContainerID) {
		t.Fatal("1.1.0 stopped while its sockets were open")
	}

	// 1.1.0 drains in turn: closing its sockets lets the rollback complete.
	second.closeAll(t, "1.1.0")
	if swap := waitSwapEnd(t, ra.api, "svc", time.Minute); swap["phase"] != "completed" || swap["to"] != "1.0.0" {
		t.Fatalf("rollback ended %v to %v: %v", swap["phase"], swap["to"], swap["error"])
	}
	testenv.WaitFor(t, 30*time.Second, "1.1.0 stopped", func() (bool, error) {
		return !containerRunning(t, swapped.ContainerID), nil
	})
	rest := append(append(sockets{}, first...), third...)
	rest.requireEchoing(t, "after the rollback completed")
	rest.closeAll(t, "1.0.0")
}

func TestWebSocketsSurviveReloadAndAnotherChallengesDrain(t *testing.T) {
	otherYAML := func(image, version string) string {
		return swapYAML("other", image, version, "min_healthy_time: 500ms, drain_timeout: 2m")
	}
	var image string
	ra, before, cfg := wsSwapAgent(t, "min_healthy_time: 500ms", func(img string) string {
		image = img
		return otherYAML(img, "1.0.0")
	})
	otherBefore := waitServing(t, ra.api, "other", 60*time.Second, nil)
	svc := openSockets(t, 3, ra.proxy, "svc")
	oth := openSockets(t, 2, ra.proxy, "other")
	everyone := append(append(sockets{}, svc...), oth...)
	reload := func(what string) (res struct{ Added, Updated, Removed []string }) {
		t.Helper()
		status, body := doRequest(t, "POST", ra.api+"/v1/reload", "")
		if status != http.StatusOK {
			t.Fatalf("reload (%s): %d %s", what, status, body)
		}
		if err := jsonUnmarshal([]byte(body), &res); err != nil {
			t.Fatalf("reload (%s): %s: %v", what, body, err)
		}
		return res
	}

	// A reload of the unchanged config changes nothing.
	if res := reload("unchanged"); len(res.Added)+len(res.Updated)+len(res.Removed) != 0 {
		t.Errorf("reload of the unchanged config: %+v, want no change", res)
	}
	everyone.requireEchoing(t, "after a reload of the unchanged config")

	// A reload that changes another challenge swaps that one only.
	rewriteConfig(t, cfg, otherYAML(image, "1.0.0"), otherYAML(image, "1.1.0"))
	if res := reload("other's version"); len(res.Updated) != 1 || res.Updated[0] != "other" || len(res.Added)+len(res.Removed) != 0 {
		t.Errorf("reload with other's version changed: %+v, want other updated", res)
	}
	waitCutOver(t, ra.api, "other", "1.1.0")
	fresh := openSockets(t, 1, ra.proxy, "other")
	fresh.requireVersion(t, "1.1.0", "other after its swap")
	everyone.requireEchoing(t, "after other's cut-over")

	// Other's old container drains and stops once its sockets close; svc's
	// sockets and container are untouched.
	oth.closeAll(t, "other's old")
	if swap := waitSwapEnd(t, ra.api, "other", time.Minute); swap["phase"] != "completed" {
		t.Fatalf("other's swap ended %v: %v", swap["phase"], swap["error"])
	}
	testenv.WaitFor(t, 30*time.Second, "other's old container stopped", func() (bool, error) {
		return !containerRunning(t, otherBefore.ContainerID), nil
	})
	svc.requireEchoing(t, "after other's drain")
	if v, _ := challengeStatus(t, ra.api, "svc"); v.ContainerID != before.ContainerID || v.Version != "1.0.0" {
		t.Errorf("svc after the reloads: %s on %s, want 1.0.0 on %s", v.Version, v.ContainerID, before.ContainerID)
	}
	if phase := swapPhase(t, ra.api, "svc"); phase != "" {
		t.Errorf("svc has a swap (%s) though its config did not change", phase)
	}
	svc.closeAll(t, "svc")
	fresh.closeAll(t, "other's new")
}

func TestStreamingResponsesStayOnTheOldVersionAcrossASwap(t *testing.T) {
	ra, before, _ := wsSwapAgent(t, "healthy_deadline: 30s, min_healthy_time: 500ms, drain_timeout: 2m", nil)
	const events, every = 100, 100 // ten seconds of events
	old := openStream(t, ra.proxy, "svc", events, every)
	postSwap(t, ra.api, "svc", "1.1.0")
	waitCutOver(t, ra.api, "svc", "1.1.0")
	fresh := openStream(t, ra.proxy, "svc", 3, 10)
	if phase := swapPhase(t, ra.api, "svc"); phase != "draining" {
		t.Errorf("swap phase %q with a stream open, want draining", phase)
	}
	if !containerRunning(t, before.ContainerID) {
		t.Fatal("the old container stopped while its stream was open")
	}
	got, _, err := old.wait(t, 30*time.Second)
	if err != nil {
		t.Errorf("old stream: %v", err)
	}
	requireStreamFrom(t, got, events, "1.0.0")
	got, _, err = fresh.wait(t, 10*time.Second)
	if err != nil {
		t.Errorf("new stream: %v", err)
	}
	requireStreamFrom(t, got, 3, "1.1.0")
	if swap := waitSwapEnd(t, ra.api, "svc", time.Minute); swap["phase"] != "completed" {
		t.Fatalf("swap ended %v: %v", swap["phase"], swap["error"])
	}
}

func TestWebSocketsUntouchedByAnotherChallengesStandbyPromotion(t *testing.T) {
	ra, before, _ := wsSwapAgent(t, "min_healthy_time: 500ms", func(image string) string {
		return swapYAML("other", image, "1.0.0", "min_healthy_time: 500ms") + "    standby: true\n"
	})
	var standby string
	testenv.WaitFor(t, time.Minute, "other's standby ready", func() (bool, error) {
		var v map[string]any
		if status := testenv.HTTPGetJSON(t, ra.api+"/v1/challenges/other", &v); status != http.StatusOK {
			return false, fmt.Errorf("status %d", status)
		}
		standby, _ = v["standby_container_id"].(string)
		// A standby is promoted only once ready, which its event says.
		_, ready := findEvent(events(t, ra.api, "other"), "standby_ready")
		return standby != "" && ready && v["health"] == "healthy", fmt.Errorf("standby %q ready %v health %v", standby, ready, v["health"])
	})
	active, _ := challengeStatus(t, ra.api, "other")
	svc := openSockets(t, 3, ra.proxy, "svc")

	testenv.DockerKill(t, active.ContainerID)
	testenv.WaitFor(t, 30*time.Second, "other's standby promoted", func() (bool, error) {
		_, ok := findEvent(events(t, ra.api, "other"), "standby_promoted")
		return ok, nil
	})
	waitServing(t, ra.api, "other", 30*time.Second, func(v challengeView) bool { return v.ContainerID == standby })
	svc.requireEchoing(t, "after other's standby took over")
	if v, _ := challengeStatus(t, ra.api, "svc"); v.ContainerID != before.ContainerID {
		t.Errorf("svc moved to %s, want %s", v.ContainerID, before.ContainerID)
	}
	svc.closeAll(t, "svc")
}

func standbyOf(t testing.TB, api, name string) string {
	t.Helper()
	var v map[string]any
	testenv.HTTPGetJSON(t, api+"/v1/challenges/"+name, &v)
	id, _ := v["standby_container_id"].(string)
	return id
}

func TestWebSocketsStayOnTheOldVersionAcrossASwapWithAStandby(t *testing.T) {
	ra, before, _ := wsSwapAgent(t, "healthy_deadline: 30s, min_healthy_time: 500ms, drain_timeout: 2m", func(string) string {
		return "    standby: true\n"
	})
	var oldStandby string
	testenv.WaitFor(t, time.Minute, "svc's standby", func() (bool, error) {
		oldStandby = standbyOf(t, ra.api, "svc")
		return oldStandby != "", nil
	})
	old := openSockets(t, 3, ra.proxy, "svc")
	old.requireVersion(t, "1.0.0", "before the swap")

	postSwap(t, ra.api, "svc", "1.1.0")
	waitCutOver(t, ra.api, "svc", "1.1.0")
	fresh := openSockets(t, 2, ra.proxy, "svc")
	fresh.requireVersion(t, "1.1.0", "after the cut-over")
	// The 1.0.0 standby goes and a 1.1.0 one comes; the old sockets stay.
	testenv.WaitFor(t, time.Minute, "a new standby", func() (bool, error) {
		id := standbyOf(t, ra.api, "svc")
		return id != "" && id != oldStandby, fmt.Errorf("standby %q", id)
	})
	all := append(append(sockets{}, old...), fresh...)
	all.requireEchoing(t, "after the new standby came")
	if phase := swapPhase(t, ra.api, "svc"); phase != "draining" {
		t.Errorf("swap phase %q with old sockets open, want draining", phase)
	}
	if !containerRunning(t, before.ContainerID) {
		t.Fatal("the old container stopped while its sockets were open")
	}
	old.closeAll(t, "old")
	if swap := waitSwapEnd(t, ra.api, "svc", time.Minute); swap["phase"] != "completed" {
		t.Fatalf("swap ended %v: %v", swap["phase"], swap["error"])
	}
	fresh.requireEchoing(t, "after the drain")
	fresh.closeAll(t, "new")
}
