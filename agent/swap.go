package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Masterminds/semver/v3"

	"berth/configs"
	"berth/docker"
	"berth/statestore"
	"berth/supervisor"
)

// Swap phases (SPEC §5.5).
const (
	phasePulling        = "pulling"
	phaseExporting      = "exporting_state"
	phaseStarting       = "starting"
	phaseWaitingHealthy = "waiting_healthy"
	phaseImporting      = "importing_state"
	phaseCuttingOver    = "cutting_over"
	phaseDraining       = "draining"
	phaseCompleted      = "completed"
	phaseRollingBack    = "rolling_back"
	phaseRolledBack     = "rolled_back"
	phaseFailed         = "failed"
)

// Why a swap runs; rollbacks report swap_rolled_back when they finish.
const (
	swapRequested    = "swap"
	swapRollback     = "rollback"
	swapAutoRollback = "auto_rollback"
	swapConfig       = "config"
	swapAuto         = "auto"
)

// Errors a swap request can be refused with.
var (
	errSwapRunning = errors.New("a swap is already running for this challenge")
	errNoContainer = errors.New("challenge has no running container to swap from")
	errNoPrevious  = errors.New("challenge has no previous version to roll back to")
	errSwapNoop    = errors.New("version already running")
	errBadVersion  = errors.New("bad version")
)

// Messages of the swap protocol.
type (
	// msgSwap asks the challenge to swap to version.
	msgSwap struct {
		version string
		kind    string
		reply   chan swapReply
		ticket  *ticket // withdrawn: the requester was told nothing happened
	}
	swapReply struct {
		id, from, to string
		err          error
	}
	// msgCutOver is sent by the swap goroutine when the new container is
	// ready; the challenge makes it active and answers.
	msgCutOver struct {
		job   *swapJob
		ct    docker.Container
		slot  string
		tag   string
		dig   string
		reply chan error
	}
	// msgSwapDone ends a swap.
	msgSwapDone struct {
		job *swapJob
		err error
	}
)

// swapJob is one swap. The swap goroutine owns everything but plan, which
// it publishes for the challenge goroutine to read.
type swapJob struct {
	kind      string
	requested string
	spec      configs.Challenge // target spec: the challenge's with the new version
	hash      string
	fromID    string
	fromSlot  string
	fromURL   string
	fromHash  string
	fromSpec  configs.Challenge // the spec the old container runs, for a rollback to it
	previous  string            // container id of the previous version, after cut-over
	plan      atomic.Pointer[statestore.SwapPlan]
	cutOver   atomic.Bool
	newID     string
	startedAt time.Time

	// After the cut-over the old container drains and is then stopped,
	// unless a rollback routed back to it first; mu orders the two.
	mu         sync.Mutex
	stopping   bool          // the old container's stop has begun
	routedBack chan struct{} // closed when a rollback routed back to the old container
}

// beginStop claims the old container for stopping; false means a rollback
// routed back to it and it must keep serving.
func (j *swapJob) beginStop() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	select {
	case <-j.routedBack:
		return false
	default:
	}
	j.stopping = true
	return true
}

// routeBack claims the old container for serving again; false means its stop
// has begun.
func (j *swapJob) routeBack() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.stopping {
		return false
	}
	close(j.routedBack)
	return true
}

func (j *swapJob) snapshot() statestore.SwapPlan { return *j.plan.Load() }

func newSwapID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startSwap begins a swap from the active container; the work runs in its
// own goroutine so the challenge keeps supervising the serving container.
func (c *challenge) startSwap(ctx context.Context, version, kind string) swapReply {
	return c.startSwapTo(ctx, c.spec, version, kind)
}

// startSwapTo swaps to base's spec at version (a spec change swaps too).
func (c *challenge) startSwapTo(ctx context.Context, base configs.Challenge, version, kind string) swapReply {
	if c.swap != nil {
		return swapReply{err: errSwapRunning}
	}
	if !c.recovered && c.current != nil {
		return swapReply{err: fmt.Errorf("%w: the swap berth was running when it stopped is still being settled", errSwapRunning)}
	}
	if c.draining != nil {
		// The last swap has served its purpose; only its old container
		// still drains, and a rollback routes straight back to it.
		if (kind == swapRollback || kind == swapAutoRollback) && version == c.draining.snapshot().From {
			return c.routeBack(ctx, kind)
		}
		return swapReply{err: errSwapRunning}
	}
	if c.current == nil || c.lifecycle != Running {
		return swapReply{err: errNoContainer}
	}
	if version == "" {
		return swapReply{err: errNoPrevious}
	}
	if !configs.IsExactVersion(version) {
		if _, err := semver.NewConstraint(version); err != nil {
			return swapReply{err: fmt.Errorf("%w: %q is neither a tag nor a semver constraint", errBadVersion, version)}
		}
	}
	target := base.Clone()
	target.Version = version
	job := &swapJob{kind: kind, requested: version, spec: target, hash: target.SpecHash(), fromID: c.current.ID,
		fromSlot: c.activeSlot(), fromURL: c.upstream, fromHash: c.rec.Slots[c.activeSlot()].SpecHash, fromSpec: c.spec.Clone(),
		startedAt: c.clock.Now(), routedBack: make(chan struct{})}
	plan := statestore.SwapPlan{ID: newSwapID(), Challenge: c.spec.Name, Phase: phasePulling, From: c.rec.Version, To: version,
		FromSlot: job.fromSlot, ToSlot: otherSlot(job.fromSlot), StartedAt: job.startedAt, UpdatedAt: job.startedAt}
	job.plan.Store(&plan)
	err := c.store.Update(func(tx *statestore.Tx) error {
		if err := tx.PutSwap(plan); err != nil {
			return err
		}
		ev, err := tx.AppendEvent(statestore.Event{Type: "swap_started", Challenge: c.spec.Name, Version: c.rec.Version, From: plan.From, To: version,
			Phase: plan.Phase, Message: fmt.Sprintf("%s %s → %s (%s)", kind, plan.From, version, plan.ID)})
		if err == nil {
			logEvent(c.log, ev)
		}
		return err
	})
	if err != nil {
		return swapReply{err: err}
	}
	c.swap = job
	c.lastSwap = job
	c.swapsRunning.Add(1)
	go func() {
		defer c.swapsRunning.Done()
		err := c.runSwap(ctx, job)
		select {
		case c.swapMsgs <- msgSwapDone{job: job, err: err}:
		case <-ctx.Done():
		}
	}()
	c.publish()
	return swapReply{id: plan.ID, from: plan.From, to: version}
}

// setPhase persists the plan's next phase before the phase is acted on.
func (c *challenge) setPhase(job *swapJob, phase string, change func(*statestore.SwapPlan)) error {
	plan := job.snapshot()
	plan.Phase = phase
	plan.UpdatedAt = c.clock.Now()
	if change != nil {
		change(&plan)
	}
	err := c.store.Update(func(tx *statestore.Tx) error {
		if err := tx.PutSwap(plan); err != nil {
			return err
		}
		_, err := tx.AppendEvent(statestore.Event{Type: "swap_phase", Challenge: c.spec.Name, Phase: phase, From: plan.From, To: plan.To,
			Message: "swap " + plan.ID + ": " + phase})
		return err
	})
	if err != nil {
		return fmt.Errorf("persist swap phase %s: %w", phase, err)
	}
	job.plan.Store(&plan)
	c.log.Info().Str("swap", plan.ID).Str("phase", phase).Str("from", plan.From).Str("to", plan.To).Msg("swap phase")
	return nil
}

// runSwap runs the phases in the swap goroutine. It touches no challenge
// state: the cut-over goes through the challenge goroutine.
func (c *challenge) runSwap(ctx context.Context, job *swapJob) error {
	spec := job.spec
	tag, err := resolveVersion(ctx, c.engine, spec.Image, job.requested)
	if err != nil {
		return c.failSwap(ctx, job, err)
	}
	if err := c.setPhase(job, phasePulling, func(p *statestore.SwapPlan) { p.To, p.Delta = tag, versionDelta(p.From, tag) }); err != nil {
		return err
	}
	if tag == job.snapshot().From && job.hash == job.fromHash && job.kind != swapAutoRollback && job.kind != swapRollback {
		return errSwapNoop
	}
	ref := spec.Image + ":" + tag
	digest, err := c.imageDigest(ctx, spec.Name, spec.PullPolicy, ref, nil)
	if err != nil {
		return c.failSwap(ctx, job, err)
	}
	if spec.Digest != "" && digest != spec.Digest {
		return c.failSwap(ctx, job, fmt.Errorf("image %s has digest %q, but the challenge pins %s", ref, digest, spec.Digest))
	}

	var snapshot []byte
	if spec.State.Export != "" && handOffAllowed(job.snapshot().From, tag, spec.State.AcrossMajor) {
		if err := c.setPhase(job, phaseExporting, nil); err != nil {
			return err
		}
		if snapshot, err = c.exportState(ctx, job.fromURL, spec.State.Export); err != nil {
			return c.failSwap(ctx, job, fmt.Errorf("export state: %w", err))
		}
		if _, err := c.store.PutSnapshot(statestore.Snapshot{Challenge: spec.Name, Version: job.snapshot().From, Data: snapshot}); err != nil {
			return c.failSwap(ctx, job, fmt.Errorf("store state snapshot: %w", err))
		}
	}

	slot := otherSlot(job.fromSlot)
	if err := c.setPhase(job, phaseStarting, nil); err != nil {
		return err
	}
	ct, err := c.startInSlot(ctx, job, ref, tag, slot)
	if err != nil {
		return c.failSwap(ctx, job, err)
	}
	if err := c.setPhase(job, phaseWaitingHealthy, func(p *statestore.SwapPlan) { p.ToContainerID = ct.ID }); err != nil {
		return err
	}
	upstream := c.upstreamOn(ct, spec.Port)
	tracker, err := c.waitHealthy(ctx, spec, upstream)
	if err != nil {
		return c.failSwap(ctx, job, err)
	}
	if spec.State.Import != "" && snapshot != nil {
		if err := c.setPhase(job, phaseImporting, nil); err != nil {
			return err
		}
		if err := c.importState(ctx, upstream, spec.State.Import, snapshot); err != nil {
			return c.failSwap(ctx, job, fmt.Errorf("import state: %w", err))
		}
	}

	if err := c.setPhase(job, phaseCuttingOver, nil); err != nil {
		return err
	}
	reply := make(chan error, 1)
	select {
	case c.swapMsgs <- msgCutOver{job: job, ct: ct, slot: slot, tag: tag, dig: digest, reply: reply}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		if err != nil {
			return c.failSwap(ctx, job, err)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	_ = tracker
	c.retireOld(ctx, job)
	return nil
}

// retireOld runs after the cut-over: it drains the old container, then stops
// it (it is kept for rollback), unless a rollback routed back to it meanwhile.
func (c *challenge) retireOld(ctx context.Context, job *swapJob) {
	c.drain(ctx, job.routedBack, job.fromURL, job.spec.Update.DrainTimeout)
	if !job.beginStop() {
		return
	}
	c.stopPrevious(ctx, job.fromID, job.fromSpec.Restart.StopTimeout)
}

// stopPrevious stops a drained previous container, even while berth stops.
func (c *challenge) stopPrevious(ctx context.Context, id string, timeout time.Duration) {
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout+30*time.Second)
	defer cancel()
	if err := c.engine.Stop(stopCtx, id, timeout); err != nil {
		c.log.Warn().Err(err).Str(fieldContainerID, shortID(id)).Msg("stop previous container")
	}
}

// versionDelta classifies a version change for the plan and hand-off rules.
func versionDelta(from, to string) string {
	a, errA := semver.NewVersion(from)
	b, errB := semver.NewVersion(to)
	switch {
	case errA != nil || errB != nil:
		return "other"
	case b.LessThan(a):
		return "downgrade"
	case a.Major() != b.Major():
		return "major"
	case a.Minor() != b.Minor():
		return "minor"
	case a.Equal(b):
		return "same"
	default:
		return "patch"
	}
}

// handOffAllowed refuses state hand-off across a major version unless the
// challenge allows it.
func handOffAllowed(from, to string, acrossMajor bool) bool {
	if acrossMajor {
		return true
	}
	a, errA := semver.NewVersion(from)
	b, errB := semver.NewVersion(to)
	if errA != nil || errB != nil {
		return false
	}
	return a.Major() == b.Major()
}

// startInSlot starts the new version in slot, reusing a kept container of
// exactly that version and spec (a fast rollback) or creating a fresh one.
func (c *challenge) startInSlot(ctx context.Context, job *swapJob, ref, tag, slot string) (docker.Container, error) {
	name := docker.ContainerName(c.agentID, job.spec.Name, slot)
	if old, err := c.engine.Inspect(ctx, name); err == nil {
		reusable := old.Labels[docker.LabelVersion] == tag && old.Labels[docker.LabelSpecHash] == job.hash && !old.Running &&
			docker.ForeignVolume(c.agentID, job.spec.Name, old) == ""
		if reusable {
			if err := c.claimNew(job, old.ID); err != nil {
				return docker.Container{}, err
			}
			if c.engine.Start(ctx, old.ID) == nil {
				return c.engine.Inspect(ctx, old.ID)
			}
		}
		if err := c.engine.Remove(ctx, old.ID); err != nil {
			return docker.Container{}, err
		}
	}
	spec, err := c.containerSpec(job.spec, job.hash, ref, tag, slot)
	if err != nil {
		return docker.Container{}, err
	}
	id, err := c.engine.Create(ctx, spec)
	if err != nil {
		return docker.Container{}, err
	}
	if err := c.claimNew(job, id); err != nil {
		return docker.Container{}, err
	}
	if err := c.engine.Start(ctx, id); err != nil {
		return docker.Container{}, err
	}
	return c.engine.Inspect(ctx, id)
}

// claimNew records id as the swap's new container, in the plan too, before
// it starts: the orphan reaper spares it and a crash-recovery removes it.
func (c *challenge) claimNew(job *swapJob, id string) error {
	job.newID = id
	plan := job.snapshot()
	plan.ToContainerID = id
	plan.UpdatedAt = c.clock.Now()
	if err := c.store.Update(func(tx *statestore.Tx) error { return tx.PutSwap(plan) }); err != nil {
		return fmt.Errorf("persist the new container of swap %s: %w", plan.ID, err)
	}
	job.plan.Store(&plan)
	return nil
}

// waitHealthy probes the new container until it has passed success_threshold
// probes and stayed healthy for min_healthy_time, within healthy_deadline.
func (c *challenge) waitHealthy(ctx context.Context, spec configs.Challenge, upstream string) (HealthTracker, error) {
	if upstream == "" {
		return HealthTracker{}, errors.New("new container has no reachable address")
	}
	deadline := c.clock.Now().Add(spec.Update.HealthyDeadline)
	tracker := NewHealthTracker(c.clock.Now())
	var healthySince time.Time
	for {
		r := c.prober.ProbeFor(ctx, upstream+spec.Health.Path, spec.Health, tracker)
		r.At = c.clock.Now()
		tracker = tracker.Observe(r, spec.Health)
		switch {
		case tracker.State != HealthHealthy:
			healthySince = time.Time{}
		case healthySince.IsZero():
			healthySince = r.At
		}
		if !healthySince.IsZero() && r.At.Sub(healthySince) >= spec.Update.MinHealthyTime {
			return tracker, nil
		}
		if !r.At.Before(deadline) {
			last := tracker.LastError
			if last == "" {
				last = "health " + string(tracker.State)
			}
			return tracker, fmt.Errorf("new version not healthy within healthy_deadline %s (last: %s)", spec.Update.HealthyDeadline, last)
		}
		wait := max(0, tracker.NextProbeIn(spec.Health)-r.Spent)
		if !healthySince.IsZero() {
			wait = min(wait, spec.Update.MinHealthyTime-r.At.Sub(healthySince))
		}
		t := c.clock.NewTimer(min(wait, time.Until(deadline)+time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return tracker, ctx.Err()
		case <-t.C():
		}
	}
}

// drain waits until the old upstream has no proxied request in flight, up to
// timeout or until stop closes, then drops idle connections to it.
func (c *challenge) drain(ctx context.Context, stop <-chan struct{}, upstream string, timeout time.Duration) {
	deadline := c.clock.Now().Add(timeout)
	// Requests that read the old address just before the cut-over count
	// themselves in right after; give them a moment.
	grace := 250 * time.Millisecond
	for {
		t := c.clock.NewTimer(grace)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-stop:
			t.Stop()
			return
		case <-t.C():
		}
		grace = 100 * time.Millisecond
		n := c.inflight(upstream)
		if n == 0 || !c.clock.Now().Before(deadline) {
			if n > 0 {
				c.log.Warn().Int64("in_flight", n).Str("drain_timeout", timeout.String()).Msg("drain timed out; stopping the previous container")
			}
			break
		}
	}
	c.closeIdle()
}

// maxStateTransfer bounds one state hand-off request.
const maxStateTransfer = 60 * time.Second

// maxImportAnswer bounds what berth reads of an import's answer.
const maxImportAnswer = 64 << 10

// handOffClient is the one client of state hand-offs. The old container
// answers the export and the new one the import, so neither is trusted: no
// redirect is followed (a 302 or 307 could point berth at its own admin API
// or any loopback service), no proxy is used, and the transport dials only
// the address the request's context names (see handOffTo).
var handOffClient = &http.Client{
	Transport: &http.Transport{
		Proxy:                  nil,
		DialContext:            dialHandOff,
		DisableKeepAlives:      true,
		ResponseHeaderTimeout:  maxStateTransfer,
		MaxResponseHeaderBytes: 64 << 10,
	},
	Timeout: maxStateTransfer,
	CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		return fmt.Errorf("state hand-off does not follow redirects (the container redirected to %s)", req.URL.Redacted())
	},
}

type handOffAddr struct{}

// handOffTo returns ctx allowing the hand-off client to dial the host:port
// of container, the URL of the container's own address.
func handOffTo(ctx context.Context, container string) context.Context {
	addr := ""
	if u, err := url.Parse(container); err == nil && u.Scheme == "http" && u.Hostname() != "" {
		port := u.Port()
		if port == "" {
			port = "80"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	return context.WithValue(ctx, handOffAddr{}, addr)
}

var handOffDialer = &net.Dialer{Timeout: 10 * time.Second}

func dialHandOff(ctx context.Context, network, addr string) (net.Conn, error) {
	allowed, _ := ctx.Value(handOffAddr{}).(string)
	if allowed == "" || addr != allowed {
		return nil, fmt.Errorf("state hand-off dials only the container's address %q, not %q", allowed, addr)
	}
	return handOffDialer.DialContext(ctx, network, addr)
}

// exportState GETs path from the container at base (its own address).
func (c *challenge) exportState(ctx context.Context, base, path string) ([]byte, error) {
	target := base + path
	ctx, cancel := context.WithTimeout(handOffTo(ctx, base), maxStateTransfer)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, err
	}
	resp, err := handOffClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", target, resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, statestore.MaxSnapshotBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > statestore.MaxSnapshotBytes {
		return nil, fmt.Errorf("state larger than %d bytes", statestore.MaxSnapshotBytes)
	}
	return data, nil
}

// importState POSTs data to path on the container at base (its own address).
func (c *challenge) importState(ctx context.Context, base, path string, data []byte) error {
	target := base + path
	ctx, cancel := context.WithTimeout(handOffTo(ctx, base), maxStateTransfer)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := handOffClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxImportAnswer))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("POST %s: status %d", target, resp.StatusCode)
	}
	return nil
}

// failSwap removes the new container; the old one never stopped serving.
func (c *challenge) failSwap(ctx context.Context, job *swapJob, cause error) error {
	if ctx.Err() != nil {
		return ctx.Err() // berth is stopping: the plan stays for recovery
	}
	_ = c.setPhase(job, phaseRollingBack, func(p *statestore.SwapPlan) { p.Error = cause.Error() })
	if job.newID != "" {
		rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := c.engine.Remove(rmCtx, job.newID); err != nil {
			c.log.Warn().Err(err).Msg("remove container of failed swap")
		}
	}
	_ = c.setPhase(job, phaseRolledBack, nil)
	return cause
}

// onCutOver makes the new container active: one transaction records the new
// active slot and the plan's cut-over, then the proxy routes to it.
func (c *challenge) onCutOver(m msgCutOver) {
	plan := m.job.snapshot()
	plan.Phase = phaseDraining
	plan.CutOver = true
	plan.UpdatedAt = c.clock.Now()
	slot := statestore.SlotRecord{ContainerID: m.ct.ID, ContainerName: m.ct.Name, Image: m.job.spec.Image + ":" + m.tag,
		Version: m.tag, Digest: m.dig, SpecHash: m.job.hash, CreatedAt: c.clock.Now()}
	ev := statestore.Event{Type: "swap_phase", Challenge: c.spec.Name, ContainerID: m.ct.ID, Version: m.tag,
		Phase: phaseDraining, From: plan.From, To: m.tag, Message: "swap " + plan.ID + ": cut over to " + m.tag}
	m.reply <- c.cutOver(m.job, plan, m.slot, slot, m.ct, ev)
}

// cutOver makes ct in slot active for job, in one transaction with the
// job's plan and events; the swap has then served its purpose, and only the
// old container's drain remains.
func (c *challenge) cutOver(job *swapJob, plan statestore.SwapPlan, slot string, sr statestore.SlotRecord, ct docker.Container, events ...statestore.Event) error {
	rec := c.rec
	rec.Slots = make(map[string]statestore.SlotRecord, len(c.rec.Slots)+1)
	for k, v := range c.rec.Slots {
		rec.Slots[k] = v
	}
	rec.Slots[slot] = sr
	rec.ActiveSlot = slot
	upstream := c.upstreamOn(ct, job.spec.Port)
	rec.Upstream = upstream
	rec.PreviousVersion = c.rec.Version
	rec.Version = sr.Version
	rec.Digest = sr.Digest
	rec.StartedAt = ct.StartedAt
	rec.RestartAttempt = 0
	if job.kind != swapConfig && job.kind != swapAuto {
		rec.DesiredVersion = job.requested
	}
	tracker := NewHealthTracker(c.clock.Now())
	tracker.State, tracker.PassedOnce = HealthHealthy, true
	rec.Health = string(HealthHealthy)
	rec.HealthySince = c.clock.Now()
	rec.UpdatedAt = c.clock.Now()
	var saved []statestore.Event
	err := c.store.Update(func(tx *statestore.Tx) error {
		saved = saved[:0]
		if err := tx.PutRuntime(rec); err != nil {
			return err
		}
		if err := tx.PutSwap(plan); err != nil {
			return err
		}
		for _, ev := range events {
			ev, err := tx.AppendEvent(ev)
			if err != nil {
				return err
			}
			saved = append(saved, ev)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("persist cut-over: %w", err)
	}
	for _, ev := range saved {
		logEvent(c.log, ev)
	}
	job.plan.Store(&plan)
	job.cutOver.Store(true)
	job.previous = job.fromID
	c.rec = rec
	c.spec = job.spec
	c.hash = job.hash
	c.current = &ct
	c.upstream = upstream
	c.tracker = tracker
	c.cutOverAt = c.clock.Now()
	if c.swap == job {
		c.swap = nil
	}
	c.draining = job
	c.publish()
	c.armProbe(c.spec.Health.Interval)
	return nil
}

// routeBack rolls back a swap whose old container still drains: that
// container still runs and serves, so the rollback is a cut-over back to it,
// with no start and no health wait. The version rolled back from then drains
// in turn and is stopped and kept like any previous version.
func (c *challenge) routeBack(ctx context.Context, kind string) swapReply {
	old := c.draining
	oldPlan := old.snapshot()
	ct, err := c.engine.Inspect(ctx, old.fromID)
	if err != nil || !ct.Running {
		return swapReply{err: errSwapRunning} // the drain ends soon; roll back then
	}
	if !old.routeBack() {
		return swapReply{err: errSwapRunning} // its stop has begun
	}
	// The version rolled back from may have exited already (then it has no
	// current container); its slot still names it.
	fromID := c.rec.Slots[c.activeSlot()].ContainerID
	if c.current != nil {
		fromID = c.current.ID
	}
	now := c.clock.Now()
	job := &swapJob{kind: kind, requested: oldPlan.From, spec: old.fromSpec, hash: old.fromHash, fromID: fromID,
		fromSlot: c.activeSlot(), fromURL: c.upstream, fromHash: c.hash, fromSpec: c.spec.Clone(), newID: old.fromID,
		startedAt: now, routedBack: make(chan struct{})}
	plan := statestore.SwapPlan{ID: newSwapID(), Challenge: c.spec.Name, Phase: phaseDraining, From: c.rec.Version, To: oldPlan.From,
		Delta: versionDelta(c.rec.Version, oldPlan.From), FromSlot: job.fromSlot, ToSlot: old.fromSlot, ToContainerID: old.fromID,
		CutOver: true, StartedAt: now, UpdatedAt: now}
	job.plan.Store(&plan)
	sr := c.rec.Slots[old.fromSlot]
	sr.ContainerID, sr.Version = old.fromID, oldPlan.From
	started := statestore.Event{Type: "swap_started", Challenge: c.spec.Name, Version: plan.From, From: plan.From, To: plan.To,
		Phase: phaseDraining, Message: fmt.Sprintf("%s %s → %s (%s): routed back to the draining container", kind, plan.From, plan.To, plan.ID)}
	cut := statestore.Event{Type: "swap_phase", Challenge: c.spec.Name, ContainerID: old.fromID, Version: plan.To,
		Phase: phaseDraining, From: plan.From, To: plan.To, Message: "swap " + plan.ID + ": cut over to " + plan.To}
	if err := c.cutOver(job, plan, old.fromSlot, sr, ct, started, cut); err != nil {
		// Nothing changed, but the old job saw the route-back and leaves its
		// container running: drain and stop it here instead.
		c.log.Error().Err(err).Msg("route back to the draining container")
		id, upstream, drainFor, stopFor := old.fromID, old.fromURL, old.spec.Update.DrainTimeout, old.fromSpec.Restart.StopTimeout
		c.swapsRunning.Add(1)
		go func() {
			defer c.swapsRunning.Done()
			c.drain(ctx, nil, upstream, drainFor)
			c.stopPrevious(ctx, id, stopFor)
		}()
		return swapReply{err: err}
	}
	c.lastSwap = job
	if c.lifecycle != Running {
		// A restart of the exited version was pending: the rollback replaces it.
		if c.actionTimer != nil {
			c.actionTimer.Stop()
			c.actionTimer = nil
		}
		c.lastErr = ""
		c.setLifecycle(Running)
		c.persist()
	}
	c.swapsRunning.Add(1)
	go func() {
		defer c.swapsRunning.Done()
		c.retireOld(ctx, job)
		select {
		case c.swapMsgs <- msgSwapDone{job: job}:
		case <-ctx.Done():
		}
	}()
	return swapReply{id: plan.ID, from: plan.From, to: plan.To}
}

// onSwapDone records how a swap ended and schedules removal of the kept
// previous container.
func (c *challenge) onSwapDone(ctx context.Context, m msgSwapDone) {
	switch m.job {
	case c.swap:
		c.swap = nil
	case c.draining:
		c.draining = nil
	default:
		return // a rollback routed back to its old container and took over
	}
	plan := m.job.snapshot()
	ev := statestore.Event{Type: "swap_completed", Challenge: c.spec.Name, From: plan.From, To: plan.To, Phase: phaseCompleted,
		Message: fmt.Sprintf("swap %s: %s → %s completed in %s", plan.ID, plan.From, plan.To, c.clock.Now().Sub(m.job.startedAt).Round(time.Millisecond))}
	switch {
	case errors.Is(m.err, errSwapNoop):
		ev.Message = "swap " + plan.ID + ": " + plan.To + " is already running"
	case m.err != nil:
		c.badVersions[plan.To] = true
		plan.Phase, plan.Error = phaseRolledBack, m.err.Error()
		ev.Type, ev.Phase, ev.Error = "swap_failed", phaseRolledBack, m.err.Error()
		ev.Message = fmt.Sprintf("swap %s: %s → %s failed; %s keeps serving", plan.ID, plan.From, plan.To, plan.From)
	case m.job.kind == swapAutoRollback || m.job.kind == swapRollback:
		c.badVersions[plan.From] = m.job.kind == swapAutoRollback
		ev.Type = "swap_rolled_back"
		ev.Message = fmt.Sprintf("rolled back %s → %s", plan.From, plan.To)
	}
	if m.err == nil || errors.Is(m.err, errSwapNoop) {
		plan.Phase = phaseCompleted
	}
	result := map[string]string{"swap_completed": "completed", "swap_failed": "failed", "swap_rolled_back": "rolled_back"}[ev.Type]
	if errors.Is(m.err, errSwapNoop) {
		result = "noop"
	}
	c.metrics.swaps.WithLabelValues(c.spec.Name, result).Inc()
	c.metrics.swapDuration.WithLabelValues(c.spec.Name).Observe(c.clock.Now().Sub(m.job.startedAt).Seconds())
	m.job.plan.Store(&plan)
	if m.job.cutOver.Load() && m.job.previous != "" {
		c.keepPrevious(m.job.previous, c.spec.Update.KeepPrevious)
	}
	if err := c.closeSwapRecord(ev); err != nil {
		c.log.Error().Err(err).Msg("persist end of swap")
	}
	if c.keepTimer == nil {
		c.armKept()
	}
	c.publish()
	if next := c.pendingSpec; next != nil {
		c.pendingSpec = nil
		c.applySpec(ctx, *next)
	}
}

// applySpec takes a changed spec (config reload or API update): a serving
// challenge swaps to it blue-green; otherwise it applies at the next start
// and clears a give-up.
func (c *challenge) applySpec(ctx context.Context, spec configs.Challenge) {
	if spec.SpecHash() == c.hash {
		return
	}
	c.rec.DesiredVersion = ""
	if c.swap != nil || c.draining != nil || c.recoverTimer != nil {
		c.pendingSpec = &spec
		return
	}
	if c.current != nil && c.lifecycle == Running {
		if r := c.startSwapTo(ctx, spec, spec.Version, swapConfig); r.err == nil {
			return
		}
	}
	c.spec, c.hash = spec, spec.SpecHash()
	c.rec.RestartTimes, c.rec.RestartAttempt = nil, 0
	if c.lifecycle == Failed && c.setLifecycle(Restarting) {
		c.persist(statestore.Event{Type: "restarting", Message: "spec changed; starting again"})
		c.armAction(0)
	}
}

// keepPrevious records id as the kept previous container, due for removal
// after keep; the caller persists the record.
func (c *challenge) keepPrevious(id string, keep time.Duration) {
	c.rec.Kept = &statestore.KeptContainer{ContainerID: id, RemoveAt: c.clock.Now().Add(keep)}
	c.keepAttempt = 0
	c.armKeep(keep)
}

// armKept arms the removal of the kept previous container, if any, for
// when it is due.
func (c *challenge) armKept() {
	if k := c.rec.Kept; k != nil {
		c.armKeep(max(0, k.RemoveAt.Sub(c.clock.Now())))
	}
}

func (c *challenge) armKeep(d time.Duration) {
	if c.keepTimer != nil {
		c.keepTimer.Stop()
	}
	c.keepTimer = c.clock.NewTimer(d)
}

// cleanupBackoff paces retries of a failed stop or remove of a container
// that should no longer run or exist.
var cleanupBackoff = supervisor.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 2, Jitter: 0.2}

// removePrevious removes the kept previous container once it is due; a
// failed removal is retried with backoff.
func (c *challenge) removePrevious(ctx context.Context) {
	kept := c.rec.Kept
	if kept == nil {
		return
	}
	if !c.recovered || c.swap != nil {
		// An interrupted swap is settled first, and a running swap may be
		// starting the kept container again for a rollback; each re-arms
		// the removal when it ends.
		return
	}
	id := kept.ContainerID
	if c.inUse(id) {
		c.rec.Kept = nil
		c.persist()
		return
	}
	if err := c.engine.Remove(ctx, id); err != nil {
		c.keepAttempt++
		delay := cleanupBackoff.Delay(c.keepAttempt, c.rand())
		c.log.Warn().Err(err).Str(fieldContainerID, shortID(id)).Str("retry_in", delay.Round(time.Millisecond).String()).
			Msg("remove previous container; will retry")
		c.armKeep(delay)
		return
	}
	c.keepAttempt = 0
	c.rec.Kept = nil
	for slot, rec := range c.rec.Slots {
		if rec.ContainerID == id && slot != c.activeSlot() {
			delete(c.rec.Slots, slot)
		}
	}
	c.persist()
}

// inUse says whether id serves or is about to: the active container, or a
// draining swap's old container.
func (c *challenge) inUse(id string) bool {
	return (c.current != nil && c.current.ID == id) || c.rec.Slots[c.activeSlot()].ContainerID == id ||
		(c.draining != nil && c.draining.fromID == id)
}

// retryRecovery settles an interrupted swap, and retries with backoff while
// its stop or remove fails: an old version must not run on until the next
// bring-up, which for an adopted container may never come.
func (c *challenge) retryRecovery(ctx context.Context) {
	c.recovered = c.recoverSwap(ctx)
	if c.recovered {
		c.recoverTries = 0
		c.armKept()
		if next := c.pendingSpec; next != nil && c.swap == nil && c.draining == nil {
			c.pendingSpec = nil
			c.applySpec(ctx, *next)
		} else if c.pendingSwap && c.current != nil && c.lifecycle == Running {
			c.pendingSwap = false
			if r := c.startSwap(ctx, c.spec.Version, swapConfig); r.err != nil {
				c.log.Error().Err(r.err).Msg("swap to the changed config entry")
			}
		}
		return
	}
	if ctx.Err() != nil {
		return
	}
	c.recoverTries++
	delay := cleanupBackoff.Delay(c.recoverTries, c.rand())
	c.log.Warn().Str("retry_in", delay.Round(time.Millisecond).String()).Msg("interrupted swap not settled; will retry")
	if c.recoverTimer != nil {
		c.recoverTimer.Stop()
	}
	c.recoverTimer = c.clock.NewTimer(delay)
}

// recoverSwap settles a swap interrupted by a berth crash: before the
// cut-over it is rolled back, after it completed.
func (c *challenge) recoverSwap(ctx context.Context) bool {
	plan, ok, err := c.store.GetSwap(c.spec.Name)
	if err != nil {
		return false
	}
	if !ok {
		return true
	}
	activeID := c.rec.Slots[c.activeSlot()].ContainerID
	ev := statestore.Event{Challenge: c.spec.Name, From: plan.From, To: plan.To}
	if !plan.CutOver {
		if id := plan.ToContainerID; id != "" && id != activeID {
			if err := c.engine.Remove(ctx, id); err != nil {
				c.log.Warn().Err(err).Msg("remove container of interrupted swap; will retry")
				return false
			}
		} else if name := docker.ContainerName(c.agentID, c.spec.Name, plan.ToSlot); plan.ToSlot != c.activeSlot() {
			_ = c.engine.Remove(ctx, name)
		}
		ev.Type, ev.Phase, ev.Error = "swap_failed", phaseRolledBack, "berth restarted before the cut-over"
		ev.Message = fmt.Sprintf("swap %s: rolled back after a berth restart; %s keeps serving", plan.ID, plan.From)
	} else {
		if from := c.rec.Slots[plan.FromSlot]; from.ContainerID != "" && from.ContainerID != activeID {
			if err := c.engine.Stop(ctx, from.ContainerID, c.spec.Restart.StopTimeout); err != nil {
				c.log.Warn().Err(err).Msg("stop previous container of interrupted swap; will retry")
				return false
			}
			c.keepPrevious(from.ContainerID, c.spec.Update.KeepPrevious)
		}
		ev.Type, ev.Phase = "swap_completed", phaseCompleted
		ev.Message = fmt.Sprintf("swap %s: completed after a berth restart", plan.ID)
	}
	return c.closeSwapRecord(ev) == nil
}

// closeSwapRecord deletes the swap plan and records how the swap ended,
// with the runtime record (the kept previous container), in one
// transaction, and logs that once.
func (c *challenge) closeSwapRecord(ev statestore.Event) error {
	err := c.store.Update(func(tx *statestore.Tx) error {
		if err := tx.DeleteSwap(c.spec.Name); err != nil {
			return err
		}
		if err := tx.PutRuntime(c.rec); err != nil {
			return err
		}
		saved, err := tx.AppendEvent(ev)
		if err == nil {
			ev = saved
		}
		return err
	})
	logEvent(c.log, ev)
	return err
}

// swapStatus is the API view of a swap.
func swapStatus(job *swapJob) *SwapStatus {
	if job == nil {
		return nil
	}
	p := job.snapshot()
	return &SwapStatus{ID: p.ID, Phase: p.Phase, From: p.From, To: p.To, StartedAt: p.StartedAt, Error: p.Error}
}
