package agent

import (
	"context"
	"fmt"
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
	// msgRestart asks for a restart now; it also clears a give-up. A
	// withdrawn ticket means the requester was told nothing happened.
	msgRestart struct {
		reply  chan error
		ticket *ticket
	}
)

// slotA is the slot a challenge's first container runs in; a swap starts the
// new version in the other slot.
const slotA = "a"

// otherSlot is where the next version of a challenge in slot s starts.
func otherSlot(s string) string {
	if s == "b" {
		return "a"
	}
	return "b"
}

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
	metrics   *metrics
	inflight  func(upstream string) int64 // proxied requests in progress
	closeIdle func()                      // drop the proxy's idle upstream connections
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

	configChanged bool     // the config entry differs from the last applied one
	recovered     bool     // an interrupted swap, if any, was settled
	pendingSwap   bool     // the adopted container runs an older spec: swap it
	swap          *swapJob // running, until its cut-over
	draining      *swapJob // cut over; its old container drains
	lastSwap      *swapJob
	swapMsgs      chan any
	swapsRunning  sync.WaitGroup
	cutOverAt     time.Time
	keepTimer     supervisor.Timer // due: remove the kept previous container (rec.Kept)
	keepAttempt   int              // failed removals of the kept container in a row
	recoverTimer  supervisor.Timer // due: retry settling an interrupted swap
	recoverTries  int
	autoTimer     supervisor.Timer
	badVersions   map[string]bool // failed or rolled back; auto-update skips them
	pendingSpec   *configs.Challenge
}

func newChallenge(sh *shared, h *challengeHandle, spec configs.Challenge, configChanged bool) *challenge {
	return &challenge{
		configChanged: configChanged,
		swapMsgs:      make(chan any),
		shared:        sh,
		handle:        h,
		spec:          spec,
		hash:          spec.SpecHash(),
		log:           sh.log.With().Str(fieldChallenge, spec.Name).Logger(),
		lifecycle:     Registered,
		tracker:       NewHealthTracker(time.Time{}),
		probeResults:  make(chan ProbeResult, 1),
	}
}

// Serve runs the challenge until ctx ends. It returns only after its probe
// goroutines have finished.
func (c *challenge) Serve(ctx context.Context) error {
	defer c.probes.Wait()
	defer c.swapsRunning.Wait()
	defer c.stopTimers()
	// Cancel the children before waiting for them: after a panic here, a
	// swap goroutine would otherwise wait forever to report to this one.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A restart by the supervisor begins from the store, not from leftovers.
	c.actionTimer, c.probeTimer, c.probing, c.current = nil, nil, false, nil
	c.keepTimer, c.swap, c.draining, c.recovered, c.autoTimer = nil, nil, nil, false, nil
	c.keepAttempt, c.recoverTimer, c.recoverTries = 0, nil, 0
	if c.badVersions == nil {
		c.badVersions = map[string]bool{}
	}
	select {
	case <-c.probeResults:
	default:
	}
	if err := c.load(); err != nil {
		return err
	}
	c.armKept() // the removal of a kept previous container outlives berth restarts
	c.publish()
	c.armAction(0)
	c.armAutoUpdate()
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
		case <-c.handle.specReady:
			if spec, ok := c.handle.takeSpec(); ok {
				c.applySpec(ctx, spec)
				c.publish()
			}
		case msg := <-c.swapMsgs:
			switch m := msg.(type) {
			case msgCutOver:
				c.onCutOver(m)
			case msgSwapDone:
				c.onSwapDone(ctx, m)
			}
		case <-timerC(c.keepTimer):
			c.keepTimer = nil
			c.removePrevious(ctx)
		case <-timerC(c.recoverTimer):
			c.recoverTimer = nil
			c.retryRecovery(ctx)
		case <-timerC(c.autoTimer):
			c.checkForUpdate(ctx)
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
	for _, t := range []supervisor.Timer{c.actionTimer, c.probeTimer, c.keepTimer, c.autoTimer, c.recoverTimer} {
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
	// A version set through the API stands until the config entry changes.
	if c.configChanged {
		c.rec.DesiredVersion = ""
	} else if rec.DesiredVersion != "" {
		c.spec.Version = rec.DesiredVersion
		c.hash = c.spec.SpecHash()
	}
	// Until the container is adopted, clients keep reaching it at its last address.
	c.upstream = rec.Upstream
	if h := Health(rec.Health); h.Serving() {
		c.tracker.State, c.tracker.PassedOnce = h, true
	}
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
	c.rec.Upstream = ""
	if c.current != nil {
		c.rec.Upstream = c.upstream
	}
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
		Swap:            swapStatus(c.lastSwap),
		ResponseTimeMS:  float64(c.tracker.AvgResponse.Microseconds()) / 1000,
	}
	for _, job := range []*swapJob{c.swap, c.draining} {
		if job != nil {
			st.swaps = append(st.swaps, job)
		}
	}
	if c.current != nil {
		st.ContainerID = c.current.ID
		st.ContainerName = c.current.Name
		st.Upstream = c.upstream
		if !c.rec.StartedAt.IsZero() {
			started := c.rec.StartedAt
			st.StartedAt = &started
		}
	} else if c.lifecycle == Registered {
		carryRecorded(st, c.rec)
	}
	c.handle.status.Store(st)
}

func (c *challenge) onMessage(ctx context.Context, msg any) {
	switch m := msg.(type) {
	case msgContainerEvent:
		if c.current == nil || m.ev.ContainerID != c.current.ID {
			return
		}
		switch m.ev.Action {
		case "die":
			c.onDie(ctx, m.ev)
		case "oom", "stop", "kill", "destroy":
			c.checkContainer(ctx)
		}
	case msgRestart:
		if !m.ticket.take() {
			return
		}
		m.reply <- nil
		c.operatorRestart(ctx)
	case msgSwap:
		if !m.ticket.take() {
			return
		}
		version := m.version
		if m.kind == swapRollback {
			version = c.rec.PreviousVersion
		}
		m.reply <- c.startSwap(ctx, version, m.kind)
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

// carryRecorded fills a not-yet-adopted challenge's status from its record:
// clients keep being served by the container that was serving before berth
// restarted, and the API never flips it to unknown.
func carryRecorded(st *ChallengeStatus, rec statestore.RuntimeRecord) {
	slot := rec.Slots[rec.ActiveSlot]
	st.ContainerID, st.ContainerName, st.Upstream = slot.ContainerID, slot.ContainerName, rec.Upstream
	if h := Health(rec.Health); h.Serving() {
		st.Health = h
	}
	if !rec.StartedAt.IsZero() {
		started := rec.StartedAt
		st.StartedAt = &started
	}
}
