//go:build chaos

package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"berth/integration/testenv"
)

// The chaos test runs one berth process with a few challenges and, for
// CHAOS_RUNS iterations, fires a random mix of swaps (good, slow-starting and
// never-healthy versions), rollbacks, container kills and reloads, SIGKILLs
// berth at a random moment or right when a chosen swap phase shows, sometimes
// kills a challenge container while berth is down, restarts berth on the same
// config and data dir, lets it settle and checks the crash-safety invariants.
//
//	CHAOS_RUNS=200 go test -tags chaos -run TestChaos -timeout 60m ./integration/ -v
//
// Invariants, checked after every restart once berth has settled: exactly one
// running container per challenge, the one the API names, with the API's
// version, and that is what the stable endpoint serves; any other container is
// a stopped kept previous, gone once keep_previous has passed; no unaccounted
// container older than orphan_grace; no swap left in a phase; the orphan
// reaper never removes a container while its challenge's swap runs; the
// never-healthy version never answers; no client request fails while berth is
// up, except on a challenge whose serving container the test killed, until
// berth serves it again. Requests while berth is down (its proxy dies with it)
// are counted and reported, not judged.
//
// CHAOS_SEED fixes the random choices (timing still varies); CHAOS_LOG_DIR
// keeps every berth process's output there (otherwise a temp dir removed with
// the test).

const (
	chaosGood1      = "1.0.0"
	chaosGood2      = "1.1.0"
	chaosGood3      = "1.3.0"
	chaosSlow       = "1.2.0" // healthy only after chaosSlowStart
	chaosBad        = "2.0.0" // never healthy
	chaosSlowStart  = 3 * time.Second
	chaosOrphan     = 4 * time.Second
	chaosKeep       = 10 * time.Second
	chaosDeadline   = 5 * time.Second
	chaosSettle     = 45 * time.Second
	chaosKeepSlack  = 8 * time.Second
	chaosPollPeriod = 25 * time.Millisecond
	// chaosConverge is how long after settling berth may take to reach the
	// container invariants: its restart's clean-up (stop_timeout) and a new
	// standby's start.
	chaosConverge = 10 * time.Second
)

var chaosGoodVersions = []string{chaosGood1, chaosGood2, chaosGood3}

// chaosPhases are the kill targets: every swap phase plus kills with no swap
// targeted (a random moment).
var chaosPhases = []string{"pulling", "exporting_state", "starting", "waiting_healthy", "importing_state",
	"cutting_over", "draining", "rolling_back", "random"}

func chaosChallengeYAML(name, image, gen string) string {
	return fmt.Sprintf(`  - name: %s
    image: %s
    version: %q
    port: 8080
    env: {CHAOS_GEN: %q}
    state: {export: /state, import: /state}
    health: {path: /health, interval: 500ms, timeout: 2s, failure_threshold: 3, start_period: 10s, start_interval: 100ms}
    restart: {initial_backoff: 100ms, max_backoff: 1s, stop_timeout: 1s}
    update: {healthy_deadline: %s, min_healthy_time: 1s, drain_timeout: 5s, keep_previous: %s, rollback_window: 10s}
    standby: %v
`, name, image, chaosGood1, gen, chaosDeadline, chaosKeep, name == chaosStandby)
}

// chaosStandby names the challenge that runs with a warm standby (besides
// its serving container one more may run, the one the API names as
// standby): c3 unless CHAOS_STANDBY names another; "none" runs none.
var chaosStandby = func() string {
	switch v := os.Getenv("CHAOS_STANDBY"); v {
	case "":
		return "c3"
	case "none":
		return ""
	default:
		return v
	}
}()

// chaosSample is what the monitor last saw of one challenge.
type chaosSample struct {
	at          time.Time
	state       string
	health      string
	version     string
	containerID string
	restarts    int
	phase       string // "" when no swap or the swap has ended
	swapTo      string
}

// window is a span of time in which client failures are excused.
type window struct {
	from, to time.Time
	why      string
}

func (w window) covers(s, e time.Time) bool {
	return s.Before(w.to) && e.After(w.from)
}

// chaosRequest is one client request through the stable endpoint.
type chaosRequest struct {
	challenge string
	path      string
	start     time.Time
	end       time.Time
	err       string // "" for a 200
	version   string
}

type chaosRig struct {
	t       *testing.T
	rng     *rand.Rand
	agentID string
	image   string
	names   []string
	cfgPath string
	logDir  string
	apiAddr string
	prxAddr string
	gen     int

	mu         sync.Mutex
	proc       *exec.Cmd
	procDone   chan struct{}
	up         bool
	startedAt  time.Time // of the current berth process
	samples    map[string]chaosSample
	downWins   []window
	disrupted  map[string][]window // per challenge: serving container killed by the test
	openDisrup map[string]*chaosDisruption
	requests   []chaosRequest
	violations []string

	logPhase    map[string]string // challenge → swap phase berth last logged ("" when none)
	armed       [2]string         // {challenge, phase}: SIGKILL berth as soon as it logs this
	armHit      bool
	phaseHits   map[string]int // phase seen at a kill → count (all challenges)
	targetHit   map[string]int // targeted phase → times it was seen and killed on
	targetTry   map[string]int
	kills       int
	downKills   int
	actions     map[string]int
	eventSeq    int64
	openSwap    map[string]string // challenge → version of the swap the event log shows as running
	swapEnds    map[string]int    // "<kind> → <result>" counts from events
	orphanEvs   int
	stale       map[string]bool // kept containers already reported
	phaseOffset int
	procN       int
}

type chaosDisruption struct {
	from     time.Time
	id       string
	restarts int
}

func TestChaos(t *testing.T) {
	runs := 5
	if v := os.Getenv("CHAOS_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CHAOS_RUNS=%q: want a positive integer", v)
		}
		runs = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", v, err)
		}
		seed = n
	}
	t.Logf("chaos: %d iterations, CHAOS_SEED=%d", runs, seed)
	testenv.RequireDocker(t)

	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	repo := "berth-chaos/" + id
	for _, v := range chaosGoodVersions {
		reg.PushChallenge(t, repo, v, nil)
	}
	reg.PushChallenge(t, repo, chaosSlow, map[string]string{"START_DELAY_MS": strconv.Itoa(int(chaosSlowStart / time.Millisecond))})
	reg.PushChallenge(t, repo, chaosBad, map[string]string{"HEALTH_FAIL": "1"})

	r := &chaosRig{t: t, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), agentID: id, image: reg.Host + "/" + repo,
		names: []string{"c1", "c2", "c3"}, samples: map[string]chaosSample{}, disrupted: map[string][]window{},
		openDisrup: map[string]*chaosDisruption{}, logPhase: map[string]string{}, phaseHits: map[string]int{}, targetHit: map[string]int{},
		targetTry: map[string]int{}, actions: map[string]int{}, openSwap: map[string]string{}, swapEnds: map[string]int{}, stale: map[string]bool{}}
	r.phaseOffset = r.rng.IntN(len(chaosPhases))
	r.logDir = os.Getenv("CHAOS_LOG_DIR")
	if r.logDir == "" {
		r.logDir = t.TempDir()
	} else if err := os.MkdirAll(r.logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.apiAddr, r.prxAddr = freePort(t), freePort(t)
	r.writeConfig()
	t.Cleanup(r.killBerth)

	r.startBerth()
	r.settle(0, 2*time.Minute)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.monitor(ctx) })
	for _, name := range r.names {
		wg.Go(func() { r.client(ctx, name, "/version", 200*time.Millisecond) })
		wg.Go(func() { r.client(ctx, name, "/work?ms=800", 100*time.Millisecond) })
	}
	stopClients := func() { cancel(); wg.Wait() }
	defer stopClients()

	var took []time.Duration
	for i := 1; i <= runs && !t.Failed(); i++ {
		began := time.Now()
		r.iteration(i)
		took = append(took, time.Since(began))
	}
	// The last kept containers and orphans get their full time before the final check.
	time.Sleep(max(chaosKeep+chaosKeepSlack, chaosOrphan*3))
	r.settle(runs+1, chaosSettle)
	r.checkContainers(runs + 1)
	r.readEvents(runs + 1)
	stopClients()
	r.checkRequests()
	r.report(runs, took)
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (r *chaosRig) writeConfig() {
	var ch strings.Builder
	for i, name := range r.names {
		gen := "0"
		if i == 0 {
			gen = strconv.Itoa(r.gen)
		}
		ch.WriteString(chaosChallengeYAML(name, r.image, gen))
	}
	dir := filepath.Join(r.logDir, "cfg")
	if r.cfgPath == "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			r.t.Fatal(err)
		}
		r.cfgPath = filepath.Join(dir, "berth.yaml")
	}
	cfg := fmt.Sprintf(`agent:
  id: %s
  data_dir: %s
  network: %s
  orphan_grace: %s
  api: {listen: %q}
  proxy: {listen: %q}
  log: {level: debug}
challenges:
%s`, r.agentID, filepath.Join(dir, "data"), testenv.NetworkName(r.agentID), chaosOrphan, r.apiAddr, r.prxAddr, ch.String())
	tmp := r.cfgPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(cfg), 0o600); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(tmp, r.cfgPath); err != nil {
		r.t.Fatal(err)
	}
}

func (r *chaosRig) violate(iter int, format string, args ...any) {
	msg := fmt.Sprintf("iteration %d: ", iter) + fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.violations = append(r.violations, msg)
	r.mu.Unlock()
	r.t.Log("VIOLATION " + msg)
}

// startBerth runs berth and waits until its API answers.
func (r *chaosRig) startBerth() {
	r.procN++
	logPath := filepath.Join(r.logDir, fmt.Sprintf("berth-%03d.log", r.procN))
	f, err := os.Create(logPath)
	if err != nil {
		r.t.Fatal(err)
	}
	cmd := exec.Command(buildBerth(r.t), "run", "--config", r.cfgPath)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		f.Close()
		r.mu.Lock()
		if r.up && r.proc == cmd {
			// Not the test's SIGKILL: berth died by itself.
			r.up = false
			r.downWins = append(r.downWins, window{from: time.Now(), why: "berth exited by itself"})
			tail, _ := os.ReadFile(logPath)
			if len(tail) > 4096 {
				tail = tail[len(tail)-4096:]
			}
			r.violations = append(r.violations, fmt.Sprintf("berth exited by itself (%v); end of %s:\n%s", err, logPath, tail))
		}
		r.mu.Unlock()
		close(done)
	}()
	r.mu.Lock()
	r.proc, r.procDone = cmd, done
	clear(r.logPhase)
	r.mu.Unlock()
	go r.follow(logPath, done)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			b, _ := os.ReadFile(logPath)
			r.t.Fatalf("berth exited at start:\n%s", b)
		default:
		}
		resp, err := http.Get("http://" + r.apiAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("berth API not up within 30s: %v (log %s)", err, logPath)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.mu.Lock()
	r.up, r.startedAt = true, time.Now()
	if n := len(r.downWins); n > 0 && r.downWins[n-1].to.IsZero() {
		r.downWins[n-1].to = time.Now()
	}
	r.mu.Unlock()
}

// sigkill SIGKILLs berth, opens a berth-down window and counts the swap
// phase each challenge was in; a no-op when berth is already down. The caller
// holds r.mu.
func (r *chaosRig) sigkill() {
	if !r.up || r.proc == nil {
		return
	}
	_ = r.proc.Process.Signal(syscall.SIGKILL)
	r.up = false
	r.downWins = append(r.downWins, window{from: time.Now(), why: "berth down"})
	r.kills++
	for _, name := range r.names {
		p := r.logPhase[name]
		if p == "" {
			p = "(no swap)"
		}
		r.phaseHits[p]++
	}
}

// killBerth SIGKILLs berth (unless the log follower already did) and waits
// for the process to end.
func (r *chaosRig) killBerth() {
	r.mu.Lock()
	r.sigkill()
	done := r.procDone
	r.mu.Unlock()
	if done != nil {
		<-done
	}
}

// follow reads berth's log as it is written and tracks each challenge's swap
// phase; when the armed phase shows, it kills berth at once.
func (r *chaosRig) follow(path string, done <-chan struct{}) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	var pending []byte
	buf := make([]byte, 64<<10)
	for {
		n, _ := f.Read(buf)
		if n == 0 {
			select {
			case <-done:
				if n, _ = f.Read(buf); n == 0 {
					return
				}
			case <-time.After(2 * time.Millisecond):
				continue
			}
		}
		pending = append(pending, buf[:n]...)
		for {
			i := slices.Index(pending, '\n')
			if i < 0 {
				break
			}
			r.logLine(pending[:i])
			pending = pending[i+1:]
		}
	}
}

func (r *chaosRig) logLine(line []byte) {
	var l struct {
		Challenge, Phase, Event, Message string
	}
	if json.Unmarshal(line, &l) != nil || l.Challenge == "" {
		return
	}
	phase, ok := "", false
	switch {
	case l.Message == "swap phase":
		phase, ok = l.Phase, true
	case l.Event == "swap_phase" && strings.Contains(l.Message, "cut over"):
		phase, ok = "draining", true
	case l.Event == "swap_completed" || l.Event == "swap_failed" || l.Event == "swap_rolled_back":
		ok = true
	}
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logPhase[l.Challenge] = phase
	if r.armed[0] == l.Challenge && r.armed[1] == phase && phase != "" {
		r.armHit = true
		r.armed = [2]string{}
		r.sigkill()
	}
}

func (r *chaosRig) api(method, path, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, "http://"+r.apiAddr+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

type chaosView struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	State       string `json:"state"`
	Health      string `json:"health"`
	ContainerID string `json:"container_id"`
	StandbyID   string `json:"standby_container_id"`
	Restarts    int    `json:"restarts"`
	Swap        *struct {
		ID    string `json:"id"`
		Phase string `json:"phase"`
		From  string `json:"from"`
		To    string `json:"to"`
		Error string `json:"error"`
	} `json:"swap"`
}

func (v chaosView) livePhase() string {
	if v.Swap == nil {
		return ""
	}
	switch v.Swap.Phase {
	case "completed", "rolled_back", "failed":
		return ""
	}
	return v.Swap.Phase
}

func (r *chaosRig) list() ([]chaosView, error) {
	status, b, err := r.api(http.MethodGet, "/v1/challenges", "")
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/challenges: %d %s", status, b)
	}
	var out []chaosView
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode challenges: %w", err)
	}
	return out, nil
}

// monitor samples every challenge while berth is up: swap phases for the
// kill trigger, and the end of disruption windows.
func (r *chaosRig) monitor(ctx context.Context) {
	t := time.NewTicker(chaosPollPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		up := r.up
		r.mu.Unlock()
		if !up {
			continue
		}
		views, err := r.list()
		if err != nil {
			continue
		}
		now := time.Now()
		r.mu.Lock()
		if !r.up {
			r.mu.Unlock()
			continue
		}
		for _, v := range views {
			s := chaosSample{at: now, state: v.State, health: v.Health, version: v.Version, containerID: v.ContainerID,
				restarts: v.Restarts, phase: v.livePhase()}
			if v.Swap != nil {
				s.swapTo = v.Swap.To
			}
			r.samples[v.Name] = s
			if d := r.openDisrup[v.Name]; d != nil && v.State == "running" && v.Health == "healthy" &&
				(v.ContainerID != d.id || v.Restarts != d.restarts) {
				r.disrupted[v.Name] = append(r.disrupted[v.Name], window{from: d.from, to: now, why: "serving container killed"})
				delete(r.openDisrup, v.Name)
			}
		}
		r.mu.Unlock()
	}
}

// client loops requests at one challenge's stable endpoint.
func (r *chaosRig) client(ctx context.Context, name, path string, pause time.Duration) {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
	url := "http://" + r.prxAddr + "/" + name + path
	for ctx.Err() == nil {
		req := chaosRequest{challenge: name, path: path, start: time.Now()}
		resp, err := client.Get(url)
		if err != nil {
			req.err = err.Error()
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			req.version = resp.Header.Get("X-Challenge-Version")
			if resp.StatusCode != http.StatusOK {
				req.err = fmt.Sprintf("status %d: %.200s", resp.StatusCode, b)
			}
		}
		req.end = time.Now()
		r.mu.Lock()
		r.requests = append(r.requests, req)
		r.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

func (r *chaosRig) sample(name string) chaosSample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.samples[name]
}

func (r *chaosRig) pick(xs []string) string { return xs[r.rng.IntN(len(xs))] }

// act performs one random action on a random challenge.
func (r *chaosRig) act(iter int, kind, name string) {
	r.mu.Lock()
	r.actions[kind]++
	r.mu.Unlock()
	switch kind {
	case "swap_good", "swap_slow", "swap_bad":
		v := map[string]string{"swap_slow": chaosSlow, "swap_bad": chaosBad}[kind]
		if v == "" {
			cur := r.sample(name).version
			v = r.pick(slices.DeleteFunc(slices.Clone(chaosGoodVersions), func(s string) bool { return s == cur }))
		}
		_, _, _ = r.api(http.MethodPost, "/v1/challenges/"+name+"/swap", `{"version":"`+v+`"}`)
	case "rollback":
		_, _, _ = r.api(http.MethodPost, "/v1/challenges/"+name+"/rollback", "{}")
	case "kill_container":
		r.killServing(name)
	case "reload":
		if r.rng.IntN(2) == 0 {
			r.gen++
			r.writeConfig()
		}
		_, _, _ = r.api(http.MethodPost, "/v1/reload", "{}")
	}
}

// killServing docker-kills the challenge's serving container; client
// failures on it are excused until berth serves it again.
func (r *chaosRig) killServing(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := testenv.DockerE(ctx, "ps", "-q", "--no-trunc", "--filter", "label=io.berth.agent="+r.agentID,
		"--filter", "label=io.berth.challenge="+name)
	if err != nil {
		return
	}
	ids := strings.Fields(out)
	s := r.sample(name)
	target := s.containerID
	if !slices.Contains(ids, target) {
		if len(ids) == 0 {
			return
		}
		target = ids[0]
	}
	r.mu.Lock()
	if r.openDisrup[name] == nil {
		r.openDisrup[name] = &chaosDisruption{from: time.Now(), id: s.containerID, restarts: s.restarts}
	}
	r.mu.Unlock()
	_, _ = testenv.DockerE(ctx, "kill", target)
}

// iteration is one round of actions, a SIGKILL, a restart and the checks.
func (r *chaosRig) iteration(iter int) {
	// Targets go round the phases so even a short run covers several.
	target := chaosPhases[(r.phaseOffset+iter)%len(chaosPhases)]
	victim := r.pick(r.names)
	r.targetTry[target]++
	// The action that makes the targeted phase happen.
	switch target {
	case "random":
	case "rolling_back":
		r.act(iter, "swap_bad", victim)
	case "waiting_healthy", "starting":
		r.act(iter, r.pick([]string{"swap_slow", "swap_bad", "swap_good"}), victim)
	default:
		r.act(iter, r.pick([]string{"swap_good", "swap_slow"}), victim)
	}
	r.mu.Lock()
	r.armHit = false
	if target != "random" {
		r.armed = [2]string{victim, target}
	}
	r.mu.Unlock()
	// Background noise on the challenges.
	kinds := []string{"swap_good", "swap_slow", "swap_bad", "rollback", "kill_container", "reload"}
	noise := r.rng.IntN(3)
	killAt := time.Now().Add(time.Duration(500+r.rng.IntN(3500)) * time.Millisecond)
	if target != "random" {
		killAt = time.Now().Add(7 * time.Second) // the phase did not show: kill anyway
	}
	nextNoise := time.Now().Add(time.Duration(r.rng.IntN(1500)) * time.Millisecond)
	for {
		now := time.Now()
		r.mu.Lock()
		up := r.up
		r.mu.Unlock()
		if !up || now.After(killAt) {
			break
		}
		if noise > 0 && now.After(nextNoise) {
			noise--
			name := r.pick(r.names)
			if target != "random" && name == victim {
				name = r.names[(slices.Index(r.names, victim)+1)%len(r.names)]
			}
			r.act(iter, r.pick(kinds), name)
			nextNoise = now.Add(time.Duration(200+r.rng.IntN(1500)) * time.Millisecond)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.killBerth()
	r.mu.Lock()
	if r.armHit {
		r.targetHit[target]++
	}
	r.armed = [2]string{}
	r.mu.Unlock()

	if r.rng.IntN(3) == 0 {
		r.downKills++
		r.killServing(r.pick(r.names))
	}
	time.Sleep(time.Duration(r.rng.IntN(500)) * time.Millisecond)
	r.startBerth()
	r.settle(iter, chaosSettle)
	r.checkContainers(iter)
	r.checkServed(iter)
	r.readEvents(iter)
}

// settle waits until every challenge runs healthy with no swap in a phase.
func (r *chaosRig) settle(iter int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	var last []chaosView
	var lastErr error
	for time.Now().Before(deadline) {
		views, err := r.list()
		last, lastErr = views, err
		ok := err == nil && len(views) == len(r.names)
		for _, v := range views {
			ok = ok && v.State == "running" && v.Health == "healthy" && v.livePhase() == ""
		}
		if ok {
			r.closeDisruptions(views)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	if iter == 0 {
		r.t.Fatalf("challenges not serving at the start: %v %+v", lastErr, last)
	}
	for _, v := range last {
		if p := v.livePhase(); p != "" {
			r.violate(iter, "%s: swap %s→%s stuck in phase %s for %s after the restart", v.Name, v.Swap.From, v.Swap.To, p, timeout)
		}
		if v.State != "running" || v.Health != "healthy" {
			r.violate(iter, "%s: not serving %s after the restart: state %s health %s version %s container %.12s",
				v.Name, timeout, v.State, v.Health, v.Version, v.ContainerID)
		}
	}
	if lastErr != nil {
		r.violate(iter, "API unusable after the restart: %v", lastErr)
	}
	r.closeDisruptions(last)
}

func (r *chaosRig) closeDisruptions(views []chaosView) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	for name, d := range r.openDisrup {
		r.disrupted[name] = append(r.disrupted[name], window{from: d.from, to: now, why: "serving container killed (closed at settle)"})
		delete(r.openDisrup, name)
	}
}

type chaosContainer struct {
	ID     string
	Name   string
	Config struct{ Labels map[string]string }
	State  struct {
		Running    bool
		Restarting bool
		StartedAt  time.Time
		FinishedAt time.Time
	}
	Created time.Time
}

func (r *chaosRig) containers() []chaosContainer {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := testenv.DockerE(ctx, "ps", "-aq", "--no-trunc", "--filter", "label=io.berth.agent="+r.agentID)
	if err != nil {
		r.t.Fatal(err)
	}
	ids := strings.Fields(out)
	if len(ids) == 0 {
		return nil
	}
	out, err = testenv.DockerE(ctx, append([]string{"container", "inspect"}, ids...)...)
	var list []chaosContainer
	if jerr := json.Unmarshal([]byte(out), &list); jerr != nil {
		r.t.Fatalf("docker inspect: %v %v", err, jerr)
	}
	return list
}

// checkContainers: exactly one running container per challenge, the one the
// API names, besides the standby the API names; any other container is a
// kept previous (stopped) within keep_previous; no running container older
// than orphan_grace is unaccounted. Berth gets chaosConverge after settling
// to finish what a restart left it (a standby claimed a moment after the
// serving container is adopted, a standby of the other family still
// stopping after a swap ends): only what still holds then is a violation.
func (r *chaosRig) checkContainers(iter int) {
	deadline := time.Now().Add(chaosConverge)
	for {
		found, stale := r.containerFindings()
		if len(found) == 0 || time.Now().After(deadline) {
			for _, f := range found {
				r.violate(iter, "%s", f)
			}
			for _, id := range stale {
				r.stale[id] = true
			}
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// containerFindings is one look at the containers: what breaks the
// invariants, and the containers whose finding is reported only once.
func (r *chaosRig) containerFindings() (found, stale []string) {
	views, err := r.list()
	if err != nil {
		return []string{fmt.Sprintf("list challenges: %v", err)}, nil
	}
	serving := map[string]chaosView{}
	for _, v := range views {
		serving[v.Name] = v
	}
	r.mu.Lock()
	started := r.startedAt
	r.mu.Unlock()
	now := time.Now()
	running := map[string][]string{}
	for _, c := range r.containers() {
		name := c.Config.Labels["io.berth.challenge"]
		desc := fmt.Sprintf("%s (%.12s, version %s, slot %s)", strings.TrimPrefix(c.Name, "/"), c.ID, c.Config.Labels["io.berth.version"], c.Config.Labels["io.berth.slot"])
		v, known := serving[name]
		switch {
		case c.State.Running && known && c.ID == v.ContainerID:
			running[name] = append(running[name], c.ID)
			if lv := c.Config.Labels["io.berth.version"]; lv != v.Version {
				found = append(found, fmt.Sprintf("%s: API version %s but the serving container %s is labelled %s", name, v.Version, desc, lv))
			}
		case c.State.Running && known && c.ID == v.StandbyID:
			if name != chaosStandby {
				found = append(found, fmt.Sprintf("%s has a standby %s without standby: true", name, desc))
			}
		case c.State.Running:
			running[name] = append(running[name], c.ID)
			if age := now.Sub(c.Created); age > chaosOrphan+3*time.Second {
				found = append(found, fmt.Sprintf("unaccounted running container %s, created %s ago, while the API says %s serves %.12s and its standby is %.12s",
					desc, age.Round(time.Second), name, v.ContainerID, v.StandbyID))
			}
		case c.State.FinishedAt.IsZero():
			// Created and never started: a swap's new container cut short.
			if age := now.Sub(c.Created); age > chaosOrphan+3*time.Second && !r.stale[c.ID] {
				stale = append(stale, c.ID)
				found = append(found, fmt.Sprintf("%s: unaccounted container %s created %s ago and never started", name, desc, age.Round(time.Second)))
			}
		default:
			// A stopped container that is not serving: only a kept previous
			// may be here, until keep_previous after it stopped. Berth gets
			// chaosKeepSlack of its own uptime past that deadline to remove it.
			deadline := c.State.FinishedAt.Add(chaosKeep)
			if up := r.uptimeSince(deadline, now); up > chaosKeepSlack && !r.stale[c.ID] {
				stale = append(stale, c.ID)
				found = append(found, fmt.Sprintf("%s: stopped container %s still present %s after it stopped (keep_previous %s; berth has been up %s since the deadline, restarted %s ago)",
					name, desc, now.Sub(c.State.FinishedAt).Round(time.Second), chaosKeep, up.Round(time.Second), now.Sub(started).Round(time.Second)))
			}
		}
	}
	for _, name := range r.names {
		if n := len(running[name]); n != 1 {
			found = append(found, fmt.Sprintf("%s: %d running containers besides its standby, want exactly 1 (%v)", name, n, running[name]))
		}
		if name == chaosStandby && serving[name].StandbyID == "" {
			found = append(found, fmt.Sprintf("%s: standby: true but the API names no standby", name))
		}
	}
	return found, stale
}

// uptimeSince is how long berth was up between from and now.
func (r *chaosRig) uptimeSince(from, now time.Time) time.Duration {
	if !from.Before(now) {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	up := now.Sub(from)
	for _, w := range r.downWins {
		to := w.to
		if to.IsZero() {
			to = now
		}
		lo, hi := w.from, to
		if from.After(lo) {
			lo = from
		}
		if now.Before(hi) {
			hi = now
		}
		if hi.After(lo) {
			up -= hi.Sub(lo)
		}
	}
	return up
}

// checkServed compares the API's version with what the stable endpoint serves.
func (r *chaosRig) checkServed(iter int) {
	views, err := r.list()
	if err != nil {
		r.violate(iter, "list challenges: %v", err)
		return
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for _, v := range views {
		resp, err := client.Get("http://" + r.prxAddr + "/" + v.Name + "/version")
		if err != nil {
			r.violate(iter, "%s: stable endpoint: %v", v.Name, err)
			continue
		}
		var body struct{ Version string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || body.Version != v.Version {
			r.violate(iter, "%s: API says version %s, stable endpoint answered %d with version %q", v.Name, v.Version, resp.StatusCode, body.Version)
		}
		if body.Version == chaosBad {
			r.violate(iter, "%s: never-healthy version %s serves", v.Name, chaosBad)
		}
	}
}

type chaosEvent struct {
	Seq         int64  `json:"seq"`
	Time        string `json:"time"`
	Type        string `json:"type"`
	Challenge   string `json:"challenge"`
	ContainerID string `json:"container_id"`
	Version     string `json:"version"`
	From        string `json:"from"`
	To          string `json:"to"`
	Error       string `json:"error"`
	Message     string `json:"message"`
}

// readEvents reads the events since the last call: an orphan removal while
// the challenge's swap runs is the reaper taking the swap's new container.
func (r *chaosRig) readEvents(iter int) {
	status, b, err := r.api(http.MethodGet, "/v1/events?since="+strconv.FormatInt(r.eventSeq, 10), "")
	if err != nil || status != http.StatusOK {
		r.violate(iter, "events: %d %v", status, err)
		return
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var ev chaosEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			continue
		}
		if ev.Seq <= r.eventSeq {
			continue
		}
		r.eventSeq = ev.Seq
		switch ev.Type {
		case "swap_started":
			r.openSwap[ev.Challenge] = ev.To
		case "swap_completed", "swap_failed", "swap_rolled_back":
			delete(r.openSwap, ev.Challenge)
			to := ev.To
			kind := map[string]string{chaosSlow: "slow", chaosBad: "never-healthy"}[to]
			if kind == "" {
				kind = "good"
			}
			result := ev.Type
			if strings.Contains(ev.Error, "berth restarted") || strings.Contains(ev.Message, "after a berth restart") {
				result += " (after restart)"
			}
			r.swapEnds[kind+" "+result]++
			if kind != "never-healthy" && ev.Type == "swap_failed" && !strings.Contains(ev.Error, "berth restarted") {
				r.t.Logf("iteration %d: %s swap to %s failed: %s", iter, ev.Challenge, to, ev.Error)
			}
		case "orphan_removed":
			r.orphanEvs++
			if to, open := r.openSwap[ev.Challenge]; open {
				r.violate(iter, "%s: orphan reaper removed container %.12s (version %s) while a swap to %s was running (event %d at %s)",
					ev.Challenge, ev.ContainerID, ev.Version, to, ev.Seq, ev.Time)
			}
		}
	}
}

// checkRequests: no failed request on the stable endpoint outside berth-down
// windows and windows where the test killed the serving container; the
// never-healthy version never answers.
func (r *chaosRig) checkRequests() {
	r.mu.Lock()
	defer r.mu.Unlock()
	var total, failed, down, downFailed, inflight, inflightFailed, disrupted, disruptedFailed int
	for _, q := range r.requests {
		total++
		if q.version == chaosBad {
			r.violations = append(r.violations, fmt.Sprintf("never-healthy version %s answered GET /%s%s at %s",
				chaosBad, q.challenge, q.path, q.start.Format(time.StampMilli)))
		}
		inDown, inFlightAtKill := false, false
		for _, w := range r.downWins {
			to := w.to
			if to.IsZero() {
				to = time.Now()
			}
			if (window{from: w.from, to: to}).covers(q.start, q.end) {
				inDown = true
				inFlightAtKill = inFlightAtKill || (q.start.Before(w.from) && q.end.After(w.from))
			}
		}
		inDisrupted := false
		for _, w := range r.disrupted[q.challenge] {
			inDisrupted = inDisrupted || w.covers(q.start, q.end)
		}
		switch {
		case inDown:
			down++
			if q.err != "" {
				downFailed++
			}
			if inFlightAtKill {
				inflight++
				if q.err != "" {
					inflightFailed++
				}
			}
		case inDisrupted:
			disrupted++
			if q.err != "" {
				disruptedFailed++
			}
		default:
			if q.err != "" {
				failed++
				if failed <= 20 {
					r.violations = append(r.violations, fmt.Sprintf("failed request while berth was up: GET /%s%s %s → %s (took %s)",
						q.challenge, q.path, q.start.Format(time.StampMilli), q.err, q.end.Sub(q.start).Round(time.Millisecond)))
				}
			}
		}
	}
	if failed > 20 {
		r.violations = append(r.violations, fmt.Sprintf("… %d failed requests while berth was up in all", failed))
	}
	r.t.Logf("client requests: %d in all; berth up: %d, %d failed; berth down: %d, %d failed (in flight at the kill: %d, %d failed); "+
		"while the test had killed the serving container: %d, %d failed",
		total, total-down-disrupted, failed, down, downFailed, inflight, inflightFailed, disrupted, disruptedFailed)
}

func (r *chaosRig) report(runs int, took []time.Duration) {
	var sum, longest time.Duration
	for _, d := range took {
		sum += d
		longest = max(longest, d)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "chaos: %d iterations, %d berth SIGKILLs, %d challenge containers killed while berth was down; mean iteration %s, longest %s\n",
		runs, r.kills, r.downKills, (sum / time.Duration(max(len(took), 1))).Round(100*time.Millisecond), longest.Round(100*time.Millisecond))
	fmt.Fprintf(&b, "%-18s %8s %8s %12s\n", "phase", "targeted", "hit", "seen at kill")
	for _, p := range append(slices.Clone(chaosPhases), "(no swap)") {
		fmt.Fprintf(&b, "%-18s %8d %8d %12d\n", p, r.targetTry[p], r.targetHit[p], r.phaseHits[p])
	}
	b.WriteString("(targeted: iterations that armed a kill on that phase of one challenge; hit: berth was killed as it logged that phase; " +
		"seen at kill: every challenge at every kill, by the swap phase berth had last logged)\n")
	fmt.Fprintf(&b, "actions: %v\nswap endings from events: %v\norphan_removed events: %d\n", r.actions, r.swapEnds, r.orphanEvs)
	r.t.Log(b.String())
	if len(r.violations) > 0 {
		r.t.Errorf("%d invariant violations:\n%s", len(r.violations), strings.Join(r.violations, "\n"))
	}
}
