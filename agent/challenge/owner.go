package challenge

import (
	"context"
	"fmt"
	"sync"
	"time"

	"berth/configs"
	"berth/supervisor"
)

// slotA is the slot a challenge's first instance runs in; a swap starts the
// new version in the other slot.
const slotA = "a"

// otherSlot is where the next version of a challenge in slot s starts.
func otherSlot(s string) string {
	if s == "b" {
		return "a"
	}
	return "b"
}

// Deps is what every owner needs; shared by all owners, immutable.
type Deps struct {
	Runtime  Runtime
	Store    Store
	Observer Observer
	Traffic  Traffic
	Prober   *Prober
	Clock    Clock
	Rand     func() float64
	// RuntimeUp reports whether the runtime answered recently; nil: always.
	RuntimeUp func() bool
	// Endpoint is the stable endpoint's prefix, e.g. http://127.0.0.1:7080.
	Endpoint string
	// StopOnShutdown stops the serving instance when berth stops.
	StopOnShutdown bool
}

// Owner is the service owning one challenge: its instance, probes,
// restarts and swaps. Every field below is owned by the Serve goroutine.
type Owner struct {
	*Deps
	handle *Handle
	spec   configs.Challenge
	hash   string

	rec       Record
	lifecycle Lifecycle
	tracker   HealthTracker
	current   *Instance // active instance, nil when none
	lastErr   string

	timers
	jobs    chan jobReport
	running sync.WaitGroup // jobs, probes and swaps in flight

	probing     bool
	imageGen    int    // bumped whenever an image job's answer goes stale
	imageJob    bool   // an image job runs
	stopping    string // an instance whose stop job runs
	upAfterStop bool   // bring up once that stop has finished

	configChanged bool     // the config entry differs from the last applied one
	recovered     bool     // an interrupted swap, if any, was settled
	pendingSwap   bool     // the adopted instance runs an older spec: swap it
	swap          *swapJob // running, until its cut-over
	draining      *swapJob // cut over; its old instance drains
	lastSwap      *swapJob
	cutOverAt     time.Time
	keepAttempt   int // failed removals of the kept instance in a row
	recoverTries  int
	recoveryStop  string          // the old instance a recovery's stop job stops
	badVersions   map[string]bool // failed or rolled back; auto-update skips them
	// notifiedVersion is the newer version update_available last named.
	notifiedVersion string
	saving          bool          // a snapshot job runs
	saveFailure     string        // the last refusal reported, until a snapshot succeeds
	snapshot        *SnapshotInfo // the newest stored snapshot
	restoring       *restoreRun
	resumeRestore   bool // berth stopped while the recorded instance was migrating
	standby         *warmStandby
	standbyAttempt  int             // failed standby starts in a row
	standbyGaveUp   bool            // promotions hit max_restarts: no new standby until an operator restart
	discarding      map[string]bool // instances a discard job removes
	pendingSpec     *configs.Challenge
}

// timers are the owner's one-shot timers; nil when not armed.
type timers struct {
	actionTimer  supervisor.Timer // due: bring the instance up
	probeTimer   supervisor.Timer
	keepTimer    supervisor.Timer // due: remove the kept previous instance
	recoverTimer supervisor.Timer // due: retry settling an interrupted swap
	autoTimer    supervisor.Timer // due: look for a newer version
	snapTimer    supervisor.Timer // due: take a periodic snapshot
	restoreTimer supervisor.Timer // due: retry a failed import
	standbyTimer supervisor.Timer // due: start the next standby
	// standbyProbeTimer is due: probe the standby.
	standbyProbeTimer supervisor.Timer
}

// New returns the owner of spec, reached through h. configChanged says the
// config entry differs from the one applied before (a version set through
// the API then stops standing).
func New(deps *Deps, h *Handle, spec configs.Challenge, configChanged bool) *Owner {
	return &Owner{
		Deps:          deps,
		configChanged: configChanged,
		handle:        h,
		spec:          spec,
		hash:          spec.SpecHash(),
		lifecycle:     Registered,
		tracker:       NewHealthTracker(time.Time{}),
		jobs:          make(chan jobReport),
		badVersions:   map[string]bool{},
	}
}

// Serve runs the challenge until ctx ends. It returns only after every job
// it started has finished.
func (c *Owner) Serve(ctx context.Context) error {
	defer c.running.Wait()
	defer c.stopTimers()
	// Cancel the jobs before waiting for them: after a panic here, a job
	// would otherwise wait forever to report to this goroutine.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A restart by the supervisor begins from the store, not from leftovers.
	c.timers = timers{}
	c.probing, c.current, c.imageJob, c.stopping, c.upAfterStop = false, nil, false, "", false
	c.swap, c.draining, c.recovered, c.keepAttempt, c.recoverTries, c.recoveryStop = nil, nil, false, 0, 0, ""
	c.saving, c.restoring, c.standby, c.standbyAttempt, c.discarding = false, nil, nil, 0, nil
	c.imageGen++
	if err := c.load(); err != nil {
		return err
	}
	c.armKept() // the removal of a kept previous instance outlives berth restarts
	c.publish()
	c.armAction(0)
	c.armAutoUpdate()
	for {
		select {
		case <-ctx.Done():
			c.shutdown()
			return nil
		case msg := <-c.handle.inbox:
			c.onMessage(ctx, msg)
		case <-c.handle.specReady:
			if spec, ok := c.handle.takeSpec(); ok {
				c.applySpec(ctx, spec)
				c.publish()
			}
		case r := <-c.jobs:
			c.onJob(ctx, r)
		case <-timerC(c.actionTimer):
			c.actionTimer = nil
			c.bringUp(ctx)
		case <-timerC(c.probeTimer):
			c.probeTimer = nil
			c.startProbe(ctx)
		case <-timerC(c.keepTimer):
			c.keepTimer = nil
			c.removePrevious(ctx)
		case <-timerC(c.recoverTimer):
			c.recoverTimer = nil
			c.retryRecovery(ctx)
		case <-timerC(c.autoTimer):
			c.autoTimer = nil
			c.checkForUpdate(ctx)
		case <-timerC(c.snapTimer):
			c.snapTimer = nil
			c.snapshotDue(ctx)
		case <-timerC(c.restoreTimer):
			c.restoreTimer = nil
			c.restoreDue(ctx)
		case <-timerC(c.standbyTimer):
			c.standbyTimer = nil
			c.standbyDue(ctx)
		case <-timerC(c.standbyProbeTimer):
			c.standbyProbeTimer = nil
			c.probeStandby(ctx)
		}
	}
}

func (c *Owner) onMessage(ctx context.Context, msg message) {
	switch m := msg.(type) {
	case msgInstanceEvent:
		if c.standby != nil && m.ev.ID == c.standby.in.ID {
			c.checkStandby(ctx)
			return
		}
		if c.current == nil || m.ev.ID != c.current.ID {
			return
		}
		switch {
		case m.ev.Kind == InstanceExited && m.ev.ExitCode != nil:
			// The restart's backoff starts at once: the runtime holds the
			// instance while it cleans up after the exit, so reading the
			// details first would add that wait to every restart.
			c.onExit(ctx, Instance{ID: m.ev.ID, ExitCode: *m.ev.ExitCode}, false)
		default:
			c.checkInstance(ctx)
		}
	case msgInstanceList:
		if c.standby != nil && !runningIn(m.instances, c.standby.in.ID) {
			c.checkStandby(ctx)
		}
		if c.current == nil {
			return
		}
		for _, in := range m.instances {
			if in.ID == c.current.ID && in.Running {
				return
			}
		}
		c.checkInstance(ctx)
	case msgSaveState:
		if m.ticket.take() {
			c.requestSave(ctx, m.reply)
		}
	case msgRestoreState:
		if m.ticket.take() {
			c.requestRestore(ctx, m.seq, m.reply)
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
	}
}

func (c *Owner) onJob(ctx context.Context, r jobReport) {
	switch m := r.(type) {
	case msgPulling:
		if m.gen == c.imageGen {
			c.setLifecycle(Pulling)
			c.persist(Event{Type: EventPulling, Message: "pulling " + m.ref})
		}
	case msgImage:
		c.onImage(ctx, m)
	case msgStopped:
		c.onStopped(ctx, m)
	case msgProbed:
		c.probing = false
		c.onProbe(ctx, m.of, m.r)
	case msgUpdateCheck:
		c.onUpdateCheck(ctx, m)
	case msgRecoveryStopped:
		c.onRecoveryStopped(ctx, m)
	case msgImagePruned:
		c.onImagePruned(m)
	case msgSnapshotTaken:
		c.onSnapshotTaken(m)
		if m.err == nil && m.why == snapPeriodic {
			c.feedStandby(ctx, m.snap)
		}
	case msgStandbyProbed:
		c.onStandbyProbed(ctx, m)
	case msgStandbyFed:
		c.onStandbyFed(ctx, m)
	case msgDiscarded:
		c.onDiscarded(m)
	case msgRestored:
		c.onRestored(ctx, m)
	case msgCutOver:
		c.onCutOver(m)
	case msgSwapProgress:
		if m.job == c.swap || m.job == c.draining {
			c.publish()
		}
	case msgSwapDone:
		c.onSwapDone(ctx, m)
	}
}

// report sends a job's news to the owner; false when the owner is gone.
func report(ctx context.Context, jobs chan<- jobReport, r jobReport) bool {
	select {
	case jobs <- r:
		return true
	case <-ctx.Done():
		return false
	}
}

// goJob runs fn as one of the owner's jobs.
func (c *Owner) goJob(fn func()) {
	c.running.Add(1)
	go func() {
		defer c.running.Done()
		fn()
	}()
}

func timerC(t supervisor.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C()
}

// rearm stops *t, if armed, and arms it for d.
func (c *Owner) rearm(t *supervisor.Timer, d time.Duration) {
	if *t != nil {
		(*t).Stop()
	}
	*t = c.Clock.NewTimer(d)
}

func (c *Owner) armAction(d time.Duration) { c.rearm(&c.actionTimer, d) }
func (c *Owner) armProbe(d time.Duration)  { c.rearm(&c.probeTimer, d) }

func (c *Owner) stopTimers() {
	for _, t := range []supervisor.Timer{c.actionTimer, c.probeTimer, c.keepTimer, c.autoTimer, c.recoverTimer, c.snapTimer, c.restoreTimer,
		c.standbyTimer, c.standbyProbeTimer} {
		if t != nil {
			t.Stop()
		}
	}
}

// load restores the record so counters and instances survive berth restarts.
func (c *Owner) load() error {
	rec, ok, err := c.Store.Runtime(c.spec.Name)
	if err != nil {
		return fmt.Errorf("challenge %s: load runtime record: %w", c.spec.Name, err)
	}
	if !ok {
		rec = Record{Name: c.spec.Name, Lifecycle: string(Registered), Health: string(HealthUnknown)}
	}
	if rec.Slots == nil {
		rec.Slots = map[string]Slot{}
	}
	c.rec = rec
	c.lifecycle = Registered
	c.tracker = NewHealthTracker(time.Time{})
	if v, keep := DesiredVersion(c.spec.Version, rec.DesiredVersion, c.configChanged); keep {
		c.spec.Version = v
		c.hash = c.spec.SpecHash()
	} else {
		c.rec.DesiredVersion = ""
	}
	if h := Health(rec.Health); h.Serving() {
		c.tracker.State, c.tracker.PassedOnce = h, true
	}
	// An instance that was migrating has not got its state yet.
	c.resumeRestore = ParseLifecycle(rec.Lifecycle) == Migrating
	c.loadSnapshotInfo()
	// A new process starts from registered; only a give-up outlives berth.
	if ParseLifecycle(rec.Lifecycle) == Failed {
		c.lifecycle = Failed
	}
	c.rec.Lifecycle = string(c.lifecycle)
	return nil
}

// setLifecycle applies a transition through the table; an invalid one is logged and refused.
func (c *Owner) setLifecycle(to Lifecycle) bool {
	if c.lifecycle == to {
		return true
	}
	next, err := Transition(c.lifecycle, to)
	if err != nil {
		c.logf(LevelError, "refused lifecycle transition", err)
		return false
	}
	c.lifecycle = next
	c.rec.Lifecycle = string(next)
	return true
}

func (c *Owner) logf(level Level, msg string, err error, fields ...Field) {
	c.Observer.Log(level, c.spec.Name, msg, err, fields...)
}

// persist writes the record and events in one transaction, then reports
// each event once.
func (c *Owner) persist(events ...Event) {
	c.rec.Health = string(c.tracker.State)
	c.rec.UpdatedAt = c.Clock.Now()
	c.rec.Upstream = ""
	if c.current != nil {
		c.rec.Upstream = c.current.Address
	}
	for i := range events {
		events[i].Challenge = c.spec.Name
		if events[i].ContainerID == "" && c.current != nil {
			events[i].ContainerID = c.current.ID
		}
		if events[i].Version == "" {
			events[i].Version = c.rec.Version
		}
	}
	rec := c.rec
	c.commit(Write{Runtime: &rec, Events: events})
	c.publish()
}

// commit writes w and reports its events; a failed write is logged and its
// events still reported, so nothing the operator should see is silent.
func (c *Owner) commit(w Write) error {
	w.Challenge = c.spec.Name
	saved, err := c.Store.Commit(w)
	if err != nil {
		c.logf(LevelError, "persist challenge state", err)
		saved = w.Events
	}
	for _, ev := range saved {
		c.Observer.Event(ev)
	}
	return err
}
