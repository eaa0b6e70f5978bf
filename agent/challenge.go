package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"berth/configs"
	"berth/docker"
	"berth/statestore"
	"berth/supervisor"
)

// Messages a challenge goroutine accepts on its inbox.
type (
	// msgContainerEvent is an engine event about one of the challenge's containers.
	msgContainerEvent struct{ ev docker.Event }
	// msgContainerList is the engine's full list of the challenge's containers.
	msgContainerList struct{ containers []docker.Container }
	// msgRestart asks for a restart now; it also clears a give-up.
	msgRestart struct{ reply chan error }
)

// slotA is the slot a challenge's first container runs in; swaps use "b".
const slotA = "a"

// maxSecretSize bounds a secret env file.
const maxSecretSize = 64 << 10

// maxExitOutput bounds the container output kept with an exit event.
const maxExitOutput = 1 << 10

// shared holds what every challenge goroutine needs; immutable after New.
type shared struct {
	agentID   string
	agent     configs.Agent
	engine    Engine
	store     *statestore.Store
	prober    *Prober
	clock     supervisor.Clock
	rand      func() float64
	log       zerolog.Logger
	proxyBase string // stable endpoint prefix, e.g. http://127.0.0.1:7080
	dockerUp  func() bool
}

// challenge is the service owning one challenge: its container, probes and
// restarts. Every field below is owned by the Serve goroutine.
type challenge struct {
	*shared
	handle *challengeHandle
	spec   configs.Challenge
	hash   string
	log    zerolog.Logger

	rec       statestore.RuntimeRecord
	lifecycle Lifecycle
	tracker   HealthTracker
	current   *docker.Container // active container, nil when none
	upstream  string
	lastErr   string

	actionTimer  supervisor.Timer
	probeTimer   supervisor.Timer
	probeResults chan ProbeResult
	probing      bool
	probes       sync.WaitGroup
}

func newChallenge(sh *shared, h *challengeHandle, spec configs.Challenge) *challenge {
	return &challenge{
		shared:       sh,
		handle:       h,
		spec:         spec,
		hash:         spec.SpecHash(),
		log:          sh.log.With().Str(fieldChallenge, spec.Name).Logger(),
		lifecycle:    Registered,
		tracker:      NewHealthTracker(time.Time{}),
		probeResults: make(chan ProbeResult, 1),
	}
}

// Serve runs the challenge until ctx ends. It returns only after its probe
// goroutines have finished.
func (c *challenge) Serve(ctx context.Context) error {
	defer c.probes.Wait()
	defer c.stopTimers()
	// A restart by the supervisor begins from the store, not from leftovers.
	c.actionTimer, c.probeTimer, c.probing, c.current = nil, nil, false, nil
	select {
	case <-c.probeResults:
	default:
	}
	if err := c.load(); err != nil {
		return err
	}
	c.publish()
	c.armAction(0)
	for {
		select {
		case <-ctx.Done():
			c.shutdown()
			return nil
		case <-timerC(c.actionTimer):
			c.actionTimer = nil
			c.bringUp(ctx)
		case <-timerC(c.probeTimer):
			c.probeTimer = nil
			c.startProbe(ctx)
		case r := <-c.probeResults:
			c.probing = false
			c.onProbe(ctx, r)
		case msg := <-c.handle.inbox:
			c.onMessage(ctx, msg)
		}
	}
}

func timerC(t supervisor.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C()
}

func (c *challenge) armAction(d time.Duration) {
	if c.actionTimer != nil {
		c.actionTimer.Stop()
	}
	c.actionTimer = c.clock.NewTimer(d)
}

func (c *challenge) armProbe(d time.Duration) {
	if c.probeTimer != nil {
		c.probeTimer.Stop()
	}
	c.probeTimer = c.clock.NewTimer(d)
}

func (c *challenge) stopTimers() {
	for _, t := range []supervisor.Timer{c.actionTimer, c.probeTimer} {
		if t != nil {
			t.Stop()
		}
	}
}

// load restores the runtime record so counters and containers survive berth restarts.
func (c *challenge) load() error {
	rec, ok, err := c.store.GetRuntime(c.spec.Name)
	if err != nil {
		return fmt.Errorf("challenge %s: load runtime record: %w", c.spec.Name, err)
	}
	if !ok {
		rec = statestore.RuntimeRecord{Name: c.spec.Name, Lifecycle: string(Registered), Health: string(HealthUnknown)}
	}
	if rec.Slots == nil {
		rec.Slots = map[string]statestore.SlotRecord{}
	}
	c.rec = rec
	// A new process starts from registered; only a give-up outlives berth.
	if ParseLifecycle(rec.Lifecycle) == Failed {
		c.lifecycle = Failed
	}
	c.rec.Lifecycle = string(c.lifecycle)
	return nil
}

// setLifecycle applies a transition through the table; an invalid one is logged and refused.
func (c *challenge) setLifecycle(to Lifecycle) bool {
	if c.lifecycle == to {
		return true
	}
	next, err := Transition(c.lifecycle, to)
	if err != nil {
		c.log.Error().Err(err).Msg("refused lifecycle transition")
		return false
	}
	c.lifecycle = next
	c.rec.Lifecycle = string(next)
	return true
}

// persist writes the runtime record and events in one transaction, then logs
// each event once.
func (c *challenge) persist(events ...statestore.Event) {
	c.rec.Health = string(c.tracker.State)
	c.rec.UpdatedAt = c.clock.Now()
	var committed []statestore.Event
	err := c.store.Update(func(tx *statestore.Tx) error {
		committed = committed[:0]
		if err := tx.PutRuntime(c.rec); err != nil {
			return err
		}
		for _, ev := range events {
			ev.Challenge = c.spec.Name
			if ev.ContainerID == "" && c.current != nil {
				ev.ContainerID = c.current.ID
			}
			if ev.Version == "" {
				ev.Version = c.rec.Version
			}
			saved, err := tx.AppendEvent(ev)
			if err != nil {
				return err
			}
			committed = append(committed, saved)
		}
		return nil
	})
	if err != nil {
		c.log.Error().Err(err).Msg("persist challenge state")
		committed = events
	}
	for _, ev := range committed {
		logEvent(c.log, ev)
	}
	c.publish()
}

// logEvent writes one JSON line per event with its cause fields.
func logEvent(log zerolog.Logger, ev statestore.Event) {
	level := zerolog.InfoLevel
	switch ev.Type {
	case "exited", "oom_killed", "restarting", "start_failed", "pull_failed", "docker_disconnected":
		level = zerolog.WarnLevel
	case "gave_up", "digest_mismatch":
		level = zerolog.ErrorLevel
	}
	e := log.WithLevel(level).Str(fieldEvent, ev.Type)
	if ev.Seq != 0 {
		e = e.Uint64("seq", ev.Seq)
	}
	if ev.ContainerID != "" {
		e = e.Str(fieldContainerID, shortID(ev.ContainerID))
	}
	if ev.Version != "" {
		e = e.Str(fieldVersion, ev.Version)
	}
	if ev.ExitCode != nil {
		e = e.Int("exit_code", *ev.ExitCode)
	}
	if ev.OOM {
		e = e.Bool("oom", true)
	}
	if ev.From != "" {
		e = e.Str("from", ev.From)
	}
	if ev.To != "" {
		e = e.Str("to", ev.To)
	}
	if ev.Attempt != 0 {
		e = e.Int("attempt", ev.Attempt).Int64("delay_ms", ev.DelayMS)
	}
	if ev.Error != "" {
		e = e.Str("error", ev.Error)
	}
	e.Msg(ev.Message)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// publish hands readers a fresh immutable status.
func (c *challenge) publish() {
	st := &ChallengeStatus{
		Name:            c.spec.Name,
		Image:           c.spec.Image,
		Version:         c.rec.Version,
		Digest:          c.rec.Digest,
		State:           c.lifecycle,
		Health:          c.tracker.State,
		Slot:            c.rec.ActiveSlot,
		Restarts:        c.rec.Restarts,
		LastExitCode:    c.rec.LastExitCode,
		Endpoint:        c.proxyBase + "/" + c.spec.Name + "/",
		PreviousVersion: c.rec.PreviousVersion,
		LastError:       c.lastErr,
		ResponseTimeMS:  float64(c.tracker.AvgResponse.Microseconds()) / 1000,
	}
	if c.current != nil {
		st.ContainerID = c.current.ID
		st.ContainerName = c.current.Name
		st.Upstream = c.upstream
		if !c.rec.StartedAt.IsZero() {
			started := c.rec.StartedAt
			st.StartedAt = &started
		}
	}
	c.handle.status.Store(st)
}

// bringUp makes the challenge's container run: adopt, start or create it.
func (c *challenge) bringUp(ctx context.Context) {
	if c.lifecycle == Failed {
		return
	}
	if c.dockerUp != nil && !c.dockerUp() {
		// Not a failure of the challenge; try again when the engine answers.
		c.armAction(time.Second)
		return
	}
	err := c.ensureRunning(ctx)
	if err == nil || ctx.Err() != nil {
		return
	}
	c.lastErr = err.Error()
	var refused *refusal
	if errors.As(err, &refused) {
		c.setLifecycle(Failed)
		c.persist(statestore.Event{Type: refused.event, Message: "start refused", Error: err.Error()})
		return
	}
	if docker.IsTransient(err) || (c.dockerUp != nil && !c.dockerUp()) {
		c.log.Warn().Err(err).Msg("docker unavailable; will retry")
		c.armAction(time.Second)
		c.publish()
		return
	}
	c.scheduleRestart(statestore.Event{Type: "start_failed", Message: "could not start container", Error: err.Error()})
}

// refusal is an error retrying cannot fix; the challenge waits in failed
// until its spec changes or an operator restarts it.
type refusal struct {
	event string
	err   error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

func (c *challenge) ensureRunning(ctx context.Context) error {
	if slot, ok := c.rec.Slots[slotA]; !ok || slot.ContainerID == "" {
		c.claimByName(ctx)
	}
	if slot, ok := c.rec.Slots[slotA]; ok && slot.ContainerID != "" {
		done, err := c.reuse(ctx, slot)
		if done || err != nil {
			return err
		}
	}
	tag, err := resolveVersion(ctx, c.engine, c.spec.Image, c.spec.Version)
	if err != nil {
		return err
	}
	ref := c.spec.Image + ":" + tag
	digest, err := c.ensureImage(ctx, ref)
	if err != nil {
		return err
	}
	if c.spec.Digest != "" && digest != c.spec.Digest {
		return &refusal{event: "digest_mismatch", err: fmt.Errorf("image %s has digest %q, but the challenge pins %s", ref, digest, c.spec.Digest)}
	}
	return c.createAndStart(ctx, ref, tag, digest)
}

// claimByName finds this challenge's container by its deterministic name and
// labels when no record names it (a lost store, or a crash between create
// and persist), so it is adopted instead of duplicated.
func (c *challenge) claimByName(ctx context.Context) {
	name := docker.ContainerName(c.agentID, c.spec.Name, slotA)
	ct, err := c.engine.Inspect(ctx, name)
	if err != nil || ct.Labels[docker.LabelAgent] != c.agentID || ct.Labels[docker.LabelChallenge] != c.spec.Name {
		return
	}
	c.rec.Slots[slotA] = statestore.SlotRecord{ContainerID: ct.ID, ContainerName: ct.Name, Image: ct.Image,
		Version: ct.Labels[docker.LabelVersion], SpecHash: ct.Labels[docker.LabelSpecHash], CreatedAt: c.clock.Now()}
	c.log.Info().Str(fieldContainerID, shortID(ct.ID)).Msg("found unrecorded container by name")
}

// reuse adopts a running container of the current spec or starts a stopped
// one again (the fast path after a crash). done=false means create anew.
func (c *challenge) reuse(ctx context.Context, slot statestore.SlotRecord) (bool, error) {
	ct, err := c.engine.Inspect(ctx, slot.ContainerID)
	if errors.Is(err, docker.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if slot.SpecHash != c.hash {
		c.log.Info().Str(fieldContainerID, shortID(ct.ID)).Msg("spec changed; replacing container")
		if err := c.engine.Stop(ctx, ct.ID, c.spec.Restart.StopTimeout); err != nil {
			return false, err
		}
		return false, c.engine.Remove(ctx, ct.ID)
	}
	if ct.Running {
		c.adopt(ct)
		return true, nil
	}
	if c.lifecycle == Registered {
		// It stopped while no berth was watching: record that exit like any other.
		code := ct.ExitCode
		c.rec.LastExitCode = &code
		c.rec.Restarts++
		ev := statestore.Event{Type: "exited", ContainerID: ct.ID, ExitCode: &code, OOM: ct.OOMKilled,
			Message: fmt.Sprintf("container exited with code %d while berth was not running", code)}
		if ct.OOMKilled {
			ev.Type = "oom_killed"
		}
		c.persist(ev)
	}
	c.setLifecycle(Starting)
	c.persist()
	if err := c.engine.Start(ctx, ct.ID); err != nil {
		c.log.Warn().Err(err).Msg("starting existing container failed; recreating")
		return false, c.engine.Remove(ctx, ct.ID)
	}
	ct, err = c.engine.Inspect(ctx, ct.ID)
	if err != nil {
		return false, err
	}
	c.started(ct, slot.Version, slot.Digest)
	return true, nil
}

func (c *challenge) ensureImage(ctx context.Context, ref string) (string, error) {
	needPull := c.spec.PullPolicy == "always"
	if !needPull {
		info, err := c.engine.ImageInfo(ctx, ref)
		switch {
		case err == nil:
			return info.RepoDigest(ref), nil
		case !errors.Is(err, docker.ErrNotFound):
			return "", err
		case c.spec.PullPolicy == "never":
			return "", &refusal{event: "start_failed", err: fmt.Errorf("image %s is not present locally and pull_policy is never", ref)}
		}
	}
	c.setLifecycle(Pulling)
	c.persist(statestore.Event{Type: "pulling", Message: "pulling " + ref})
	start := c.clock.Now()
	lastLog := time.Time{}
	digest, err := c.engine.Pull(ctx, ref, func(p docker.PullProgress) {
		if now := time.Now(); now.Sub(lastLog) > 5*time.Second {
			lastLog = now
			c.log.Info().Str("status", p.Status).Int64("current", p.Current).Int64("total", p.Total).Msg("pull progress")
		}
	})
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", ref, err)
	}
	c.persist(statestore.Event{Type: "pulled", Message: fmt.Sprintf("pulled %s in %s", ref, c.clock.Now().Sub(start).Round(time.Millisecond)), To: digest})
	return digest, nil
}

func (c *challenge) containerSpec(ref, tag string) (docker.ContainerSpec, error) {
	env, err := c.environment()
	if err != nil {
		return docker.ContainerSpec{}, err
	}
	name := docker.ContainerName(c.agentID, c.spec.Name, slotA)
	labels := docker.OwnerLabels(c.agentID)
	labels[docker.LabelChallenge] = c.spec.Name
	labels[docker.LabelVersion] = tag
	labels[docker.LabelSlot] = slotA
	labels[docker.LabelSpecHash] = c.hash
	spec := docker.ContainerSpec{
		Name:            name,
		Image:           ref,
		Env:             env,
		Labels:          labels,
		Port:            c.spec.Port,
		Publish:         c.agent.Reach != "network",
		Network:         c.agent.Network,
		Aliases:         []string{c.spec.Name + "-" + slotA},
		NanoCPUs:        int64(math.Round(c.spec.Resources.CPUs * 1e9)),
		MemoryBytes:     int64(c.spec.Resources.Memory),
		PidsLimit:       c.spec.Resources.Pids,
		ReadOnlyRootfs:  c.spec.Security.ReadOnly,
		CapDrop:         c.spec.Security.CapDrop,
		NoNewPrivileges: c.spec.Security.NoNewPrivileges,
		Tmpfs:           c.spec.Security.Tmpfs,
		StopTimeout:     c.spec.Restart.StopTimeout,
	}
	for _, v := range c.spec.Volumes {
		spec.Volumes = append(spec.Volumes, docker.VolumeMount{Name: v.Name, Target: v.Target, ReadOnly: v.ReadOnly})
	}
	return spec, nil
}

// environment builds the container env; secret values are read here and
// never logged or stored.
func (c *challenge) environment() ([]string, error) {
	env := make([]string, 0, len(c.spec.Env)+len(c.spec.SecretEnvFiles))
	for k, v := range c.spec.Env {
		env = append(env, k+"="+v)
	}
	for k, path := range c.spec.SecretEnvFiles {
		value, err := readSecret(path)
		if err != nil {
			return nil, fmt.Errorf("secret_env_files.%s: %w", k, err)
		}
		env = append(env, k+"="+value)
	}
	sort.Strings(env)
	return env, nil
}

func readSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, maxSecretSize+1)
	n, err := f.Read(buf)
	if err != nil && n == 0 {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if n > maxSecretSize {
		return "", fmt.Errorf("%s is larger than %d bytes", path, maxSecretSize)
	}
	value := string(buf[:n])
	for len(value) > 0 && (value[len(value)-1] == '\n' || value[len(value)-1] == '\r') {
		value = value[:len(value)-1]
	}
	return value, nil
}

func (c *challenge) createAndStart(ctx context.Context, ref, tag, digest string) error {
	spec, err := c.containerSpec(ref, tag)
	if err != nil {
		return &refusal{event: "start_failed", err: err}
	}
	c.setLifecycle(Starting)
	c.persist()
	id, err := c.engine.Create(ctx, spec)
	if errors.Is(err, docker.ErrConflict) {
		// A container of that deterministic name exists but no record
		// claims it (e.g. berth died between create and persist): replace it.
		if old, ierr := c.engine.Inspect(ctx, spec.Name); ierr == nil && old.Labels[docker.LabelAgent] == c.agentID {
			if rerr := c.engine.Remove(ctx, old.ID); rerr != nil {
				return rerr
			}
			id, err = c.engine.Create(ctx, spec)
		}
	}
	if err != nil {
		if errors.Is(err, docker.ErrRefused) {
			return &refusal{event: "start_failed", err: err}
		}
		return err
	}
	c.rec.Slots[slotA] = statestore.SlotRecord{ContainerID: id, ContainerName: spec.Name, Image: ref, Version: tag,
		Digest: digest, SpecHash: c.hash, CreatedAt: c.clock.Now()}
	c.rec.ActiveSlot = slotA
	c.persist() // record the id before starting, so a crash now cannot orphan it
	if err := c.engine.Start(ctx, id); err != nil {
		return err
	}
	ct, err := c.engine.Inspect(ctx, id)
	if err != nil {
		return err
	}
	c.started(ct, tag, digest)
	return nil
}

// started records a container that is now running and begins probing it.
func (c *challenge) started(ct docker.Container, version, digest string) {
	c.current = &ct
	c.upstream = c.upstreamFor(ct)
	c.rec.Version = version
	c.rec.Digest = digest
	c.rec.StartedAt = ct.StartedAt
	c.rec.ActiveSlot = slotA
	c.lastErr = ""
	c.tracker = NewHealthTracker(c.clock.Now())
	c.setLifecycle(Running)
	c.persist(statestore.Event{Type: "started", ContainerID: ct.ID, Message: "container started", To: c.upstream})
	c.armProbe(0)
}

// adopt takes over a container that is already running (after berth restarted).
func (c *challenge) adopt(ct docker.Container) {
	c.current = &ct
	c.upstream = c.upstreamFor(ct)
	slot := c.rec.Slots[slotA]
	c.rec.Version = slot.Version
	c.rec.Digest = slot.Digest
	// Keep the recorded health so clients never see a healthy container flip to unknown.
	c.tracker = NewHealthTracker(ct.StartedAt)
	if h := Health(c.rec.Health); h != "" {
		c.tracker.State = h
		c.tracker.PassedOnce = h == HealthHealthy || h == HealthDegraded
	}
	c.setLifecycle(Running)
	c.persist(statestore.Event{Type: "adopted", ContainerID: ct.ID, Message: "adopted running container", To: c.upstream})
	c.armProbe(0)
}

func (c *challenge) upstreamFor(ct docker.Container) string {
	if c.agent.Reach == "network" {
		if ip := ct.NetworkIPs[c.agent.Network]; ip != "" {
			return "http://" + net.JoinHostPort(ip, strconv.Itoa(c.spec.Port))
		}
		return ""
	}
	if ct.HostPort == "" {
		return ""
	}
	return "http://" + net.JoinHostPort("127.0.0.1", ct.HostPort)
}

func (c *challenge) startProbe(ctx context.Context) {
	if c.probing || c.current == nil || c.upstream == "" || c.lifecycle != Running {
		return
	}
	c.probing = true
	url := c.upstream + c.spec.Health.Path
	timeout := c.spec.Health.Timeout
	c.probes.Add(1)
	go func() {
		defer c.probes.Done()
		r := c.prober.Probe(ctx, url, timeout)
		r.At = c.clock.Now()
		select {
		case c.probeResults <- r:
		case <-ctx.Done():
		}
	}()
}

func (c *challenge) onProbe(ctx context.Context, r ProbeResult) {
	if c.lifecycle != Running || c.current == nil {
		return
	}
	before := c.tracker.State
	c.tracker = c.tracker.Observe(r, c.spec.Health)
	after := c.tracker.State
	now := c.clock.Now()
	var events []statestore.Event
	if before != after {
		events = append(events, statestore.Event{Type: "health_changed", Health: string(after), From: string(before), To: string(after),
			Error: c.tracker.LastError, Message: "health " + string(before) + " → " + string(after)})
		if after == HealthHealthy {
			c.rec.HealthySince = now
		} else {
			c.rec.HealthySince = time.Time{}
		}
	}
	// The backoff attempt count resets only after continuous health.
	if after == HealthHealthy && c.rec.RestartAttempt > 0 && !c.rec.HealthySince.IsZero() &&
		now.Sub(c.rec.HealthySince) >= c.spec.Restart.ResetAfter {
		c.rec.RestartAttempt = 0
		events = append(events, statestore.Event{Type: "backoff_reset", Message: "healthy for " + c.spec.Restart.ResetAfter.String()})
	}
	if len(events) > 0 {
		c.persist(events...)
	} else {
		c.publish()
	}
	if after == HealthUnhealthy && c.spec.Restart.OnUnhealthy {
		c.restartUnhealthy(ctx)
		return
	}
	// Probes keep their cadence even when each one takes its full timeout.
	c.armProbe(max(0, c.tracker.NextProbeIn(c.spec.Health)-r.Duration))
}

// restartUnhealthy stops a container that stopped answering and schedules its restart.
func (c *challenge) restartUnhealthy(ctx context.Context) {
	ct := c.current
	c.current = nil
	if err := c.engine.Stop(ctx, ct.ID, c.spec.Restart.StopTimeout); err != nil {
		c.log.Warn().Err(err).Msg("stop unhealthy container")
	}
	c.scheduleRestart(statestore.Event{Type: "unhealthy", ContainerID: ct.ID, Health: string(HealthUnhealthy),
		Message: "restarting unhealthy container", Error: c.tracker.LastError})
}

func (c *challenge) onMessage(ctx context.Context, msg any) {
	switch m := msg.(type) {
	case msgContainerEvent:
		if c.current == nil || m.ev.ContainerID != c.current.ID {
			return
		}
		switch m.ev.Action {
		case "die", "oom", "stop", "kill", "destroy":
			c.checkContainer(ctx)
		}
	case msgRestart:
		m.reply <- nil
		c.operatorRestart(ctx)
	case msgContainerList:
		if c.current == nil {
			return
		}
		for _, ct := range m.containers {
			if ct.ID == c.current.ID && ct.Running {
				return
			}
		}
		c.checkContainer(ctx)
	}
}

// checkContainer confirms with the engine whether the current container has
// exited; events are hints, the engine's state is the truth.
func (c *challenge) checkContainer(ctx context.Context) {
	ct, err := c.engine.Inspect(ctx, c.current.ID)
	switch {
	case errors.Is(err, docker.ErrNotFound):
		c.onExit(ctx, docker.Container{ID: c.current.ID, ExitCode: -1})
	case err != nil:
		c.log.Warn().Err(err).Msg("inspect container after event")
	case !ct.Running:
		c.onExit(ctx, ct)
	}
}

func (c *challenge) onExit(ctx context.Context, ct docker.Container) {
	c.current = nil
	code := ct.ExitCode
	c.rec.LastExitCode = &code
	before := c.tracker.State
	c.tracker.State = HealthUnhealthy
	c.tracker.LastError = fmt.Sprintf("container exited with code %d", code)
	ev := statestore.Event{Type: "exited", ContainerID: ct.ID, ExitCode: &code, Message: fmt.Sprintf("container exited with code %d", code)}
	if ct.OOMKilled {
		ev.Type, ev.OOM, ev.Message = "oom_killed", true, "container killed: out of memory"
	}
	if tail := c.lastOutput(ctx, ct.ID); tail != "" {
		ev.Message += "; last output: " + tail
	}
	if before != HealthUnhealthy {
		c.persist(statestore.Event{Type: "health_changed", ContainerID: ct.ID, Health: string(HealthUnhealthy), From: string(before),
			To: string(HealthUnhealthy), Error: c.tracker.LastError, Message: "health " + string(before) + " → unhealthy"})
	}
	c.scheduleRestart(ev)
}

// lastOutput returns the end of a container's output for the exit cause,
// bounded in time and size.
func (c *challenge) lastOutput(ctx context.Context, id string) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rc, err := c.engine.Logs(ctx, id, docker.LogOptions{Tail: 5})
	if err != nil {
		return ""
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, maxExitOutput))
	return strings.TrimSpace(strings.ToValidUTF8(string(b), ""))
}

// operatorRestart restarts now, without backoff, and clears a give-up.
func (c *challenge) operatorRestart(ctx context.Context) {
	if c.current != nil {
		id := c.current.ID
		c.current = nil
		if err := c.engine.Stop(ctx, id, c.spec.Restart.StopTimeout); err != nil {
			c.log.Warn().Err(err).Msg("stop container for restart")
		}
	}
	c.rec.RestartTimes = nil
	c.rec.RestartAttempt = 0
	c.rec.Restarts++
	c.lastErr = ""
	c.tracker = NewHealthTracker(c.clock.Now())
	if !c.setLifecycle(Restarting) {
		return
	}
	c.persist(statestore.Event{Type: "restarting", Message: "restart requested by operator"})
	c.armAction(0)
}

// scheduleRestart records cause and arms the restart after the challenge's
// own backoff, or gives up when max_restarts is exceeded within window.
func (c *challenge) scheduleRestart(cause statestore.Event) {
	now := c.clock.Now()
	policy := c.spec.Restart
	kept := c.rec.RestartTimes[:0]
	for _, t := range c.rec.RestartTimes {
		if now.Sub(t) < policy.Window {
			kept = append(kept, t)
		}
	}
	c.rec.RestartTimes = kept
	if policy.MaxRestarts > 0 && len(kept) >= policy.MaxRestarts {
		c.setLifecycle(Failed)
		c.persist(cause, statestore.Event{Type: "gave_up", Message: fmt.Sprintf("%d restarts within %s; giving up until restarted by an operator", len(kept), policy.Window)})
		return
	}
	c.rec.RestartAttempt++
	c.rec.Restarts++
	c.rec.RestartTimes = append(c.rec.RestartTimes, now)
	if len(c.rec.RestartTimes) > 1000 {
		c.rec.RestartTimes = c.rec.RestartTimes[len(c.rec.RestartTimes)-1000:]
	}
	backoff := supervisor.Backoff{Initial: policy.InitialBackoff, Max: policy.MaxBackoff, Multiplier: policy.Multiplier, Jitter: policy.Jitter}
	delay := backoff.Delay(c.rec.RestartAttempt, c.rand())
	c.setLifecycle(Restarting)
	c.persist(cause, statestore.Event{Type: "restarting", Attempt: c.rec.RestartAttempt, DelayMS: delay.Milliseconds(),
		Message: fmt.Sprintf("restart %d in %s", c.rec.RestartAttempt, delay.Round(time.Millisecond))})
	c.armAction(delay)
}

// shutdown runs when berth stops: containers keep serving unless the agent
// is configured to stop them.
func (c *challenge) shutdown() {
	if c.agent.Shutdown != "stop" || c.current == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.spec.Restart.StopTimeout+30*time.Second)
	defer cancel()
	c.setLifecycle(Stopping)
	c.persist()
	if err := c.engine.Stop(ctx, c.current.ID, c.spec.Restart.StopTimeout); err != nil {
		c.log.Error().Err(err).Msg("stop container at shutdown")
		return
	}
	c.current = nil
	c.setLifecycle(Stopped)
	c.persist(statestore.Event{Type: "stopped", Message: "stopped at shutdown"})
}
