package supervisor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrStopped is returned by calls made after the Supervisor's Serve has returned
	// or, for Add, once it has begun shutting down.
	ErrStopped = errors.New("supervisor: stopped")
	// ErrDuplicateName is returned by Add when a service of that name is registered.
	ErrDuplicateName = errors.New("supervisor: duplicate service name")
	// ErrUnknownService is returned by Remove for an id or name that is not registered.
	ErrUnknownService = errors.New("supervisor: unknown service")
	// ErrAlreadyServed is returned by a second call to Serve. It wraps
	// ErrDoNotRestart so that a parent supervisor drops, rather than loops on, a
	// nested supervisor that cannot run again.
	ErrAlreadyServed = fmt.Errorf("supervisor: Serve called twice: %w", ErrDoNotRestart)
)

// Spec configures a Supervisor. Zero fields take the documented defaults.
type Spec struct {
	Name string
	// EventHook is called synchronously from the owner goroutine. It must not block
	// for long and must not call back into the same Supervisor. Nil is allowed.
	EventHook func(Event)
	// Clock is the source of time; nil means RealClock.
	Clock Clock
	// Backoff is the per-service restart delay; the zero value means
	// {Initial: 100ms, Max: 30s, Multiplier: 2, Jitter: 0.2}.
	Backoff Backoff
	// ResetAfter: a service that ran this long without failing has its failure
	// count reset; zero means 1m.
	ResetAfter time.Duration
	// StopTimeout: how long to wait for a cancelled service before emitting
	// EventStopTimeout. Waiting continues afterwards, because Serve must not return
	// while a child still runs. Zero means 10s.
	StopTimeout time.Duration
	// Rand returns values in [0, 1) for backoff jitter; nil means math/rand/v2.
	Rand func() float64
}

func (s Spec) withDefaults() Spec {
	if s.Clock == nil {
		s.Clock = RealClock()
	}
	if s.Backoff == (Backoff{}) {
		s.Backoff = defaultBackoff
	}
	if s.ResetAfter <= 0 {
		s.ResetAfter = time.Minute
	}
	if s.StopTimeout <= 0 {
		s.StopTimeout = 10 * time.Second
	}
	if s.Rand == nil {
		s.Rand = rand.Float64
	}
	return s
}

type phase int

const (
	phaseIdle    phase = iota // Serve not called yet: registrations go to pending
	phaseServing              // the owner goroutine holds all state
	phaseDone                 // Serve has returned
)

// Supervisor runs services, restarting each after its own backoff when it fails.
// Create one with New. A Supervisor is a Service, so supervisors nest.
type Supervisor struct {
	spec    Spec // defaults applied; read-only after New
	control chan message
	results chan result
	stopped chan struct{} // closed when Serve returns
	nextID  atomic.Uint64

	mu      sync.Mutex // guards phase and pending; the owner takes pending over in Serve
	phase   phase
	pending []pendingService
}

type pendingService struct {
	id   ServiceID
	name string
	svc  Service
}

var _ Service = (*Supervisor)(nil)

// New returns a Supervisor configured by spec. Nothing runs until Serve.
func New(spec Spec) *Supervisor {
	return &Supervisor{
		spec:    spec.withDefaults(),
		control: make(chan message),
		results: make(chan result),
		stopped: make(chan struct{}),
	}
}

// Add registers svc under name, which must be unique among registered services.
// Before Serve the service is started when Serve begins; during Serve it starts at
// once. After Serve has returned, or while it is shutting down, Add returns
// ErrStopped.
func (s *Supervisor) Add(name string, svc Service) (ServiceID, error) {
	if name == "" {
		return 0, errors.New("supervisor: Add: empty service name")
	}
	if svc == nil {
		return 0, fmt.Errorf("supervisor: Add %q: nil service", name)
	}
	s.mu.Lock()
	switch s.phase {
	case phaseIdle:
		defer s.mu.Unlock()
		if slices.ContainsFunc(s.pending, func(p pendingService) bool { return p.name == name }) {
			return 0, fmt.Errorf("supervisor %q: Add %q: %w", s.spec.Name, name, ErrDuplicateName)
		}
		id := ServiceID(s.nextID.Add(1))
		s.pending = append(s.pending, pendingService{id: id, name: name, svc: svc})
		return id, nil
	case phaseDone:
		s.mu.Unlock()
		return 0, fmt.Errorf("supervisor %q: Add %q: %w", s.spec.Name, name, ErrStopped)
	}
	s.mu.Unlock()

	m := addMsg{name: name, svc: svc, reply: make(chan addReply, 1)}
	select {
	case s.control <- m:
	case <-s.stopped:
		return 0, fmt.Errorf("supervisor %q: Add %q: %w", s.spec.Name, name, ErrStopped)
	}
	r := <-m.reply // the owner always replies to a message it received
	return r.id, r.err
}

// Remove cancels the service with that id and waits until its Serve has returned.
// If ctx is done first it returns ctx.Err(); the service is still removed once it
// stops. A service waiting in backoff is removed at once.
func (s *Supervisor) Remove(ctx context.Context, id ServiceID) error {
	return s.remove(ctx, removeMsg{id: id, reply: make(chan error, 1)})
}

// RemoveByName is Remove for the service registered under name.
func (s *Supervisor) RemoveByName(ctx context.Context, name string) error {
	return s.remove(ctx, removeMsg{name: name, byName: true, reply: make(chan error, 1)})
}

func (s *Supervisor) remove(ctx context.Context, m removeMsg) error {
	s.mu.Lock()
	switch s.phase {
	case phaseIdle:
		defer s.mu.Unlock()
		i := slices.IndexFunc(s.pending, func(p pendingService) bool {
			if m.byName {
				return p.name == m.name
			}
			return p.id == m.id
		})
		if i < 0 {
			return s.unknown(m)
		}
		s.pending = slices.Delete(s.pending, i, i+1)
		return nil
	case phaseDone:
		s.mu.Unlock()
		return fmt.Errorf("supervisor %q: Remove: %w", s.spec.Name, ErrStopped)
	}
	s.mu.Unlock()

	select {
	case s.control <- m:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopped:
		return fmt.Errorf("supervisor %q: Remove: %w", s.spec.Name, ErrStopped)
	}
	select {
	case err := <-m.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Supervisor) unknown(m removeMsg) error {
	if m.byName {
		return fmt.Errorf("supervisor %q: Remove %q: %w", s.spec.Name, m.name, ErrUnknownService)
	}
	return fmt.Errorf("supervisor %q: Remove id %d: %w", s.spec.Name, m.id, ErrUnknownService)
}

// Services returns the sorted names of the registered services, including those
// waiting in backoff. It returns nil once Serve has returned. During Serve, every
// restart already due on the Clock has been started, and reported, before it
// answers, which makes it a synchronisation point for tests on a FakeClock.
func (s *Supervisor) Services() []string {
	s.mu.Lock()
	switch s.phase {
	case phaseIdle:
		defer s.mu.Unlock()
		names := make([]string, 0, len(s.pending))
		for _, p := range s.pending {
			names = append(names, p.name)
		}
		slices.Sort(names)
		return names
	case phaseDone:
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()

	m := listMsg{reply: make(chan []string, 1)}
	select {
	case s.control <- m:
	case <-s.stopped:
		return nil
	}
	return <-m.reply
}

// Serve runs the services until ctx is done, then cancels every service and waits
// for all of them to return. It returns nil after such a clean shutdown, and
// ErrAlreadyServed if called a second time.
func (s *Supervisor) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.phase != phaseIdle {
		s.mu.Unlock()
		return fmt.Errorf("supervisor %q: %w", s.spec.Name, ErrAlreadyServed)
	}
	s.phase = phaseServing
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()

	defer func() {
		s.mu.Lock()
		s.phase = phaseDone
		s.mu.Unlock()
		close(s.stopped)
	}()

	if ctx.Err() != nil {
		return nil // nothing to run, and nothing started that would need stopping
	}
	o := &owner{
		s:        s,
		spec:     &s.spec,
		ctx:      ctx,
		children: make(map[ServiceID]*child),
		byName:   make(map[string]*child),
	}
	now := o.spec.Clock.Now()
	for _, p := range pending {
		o.start(o.register(p.id, p.name, p.svc), now)
	}
	o.loop()
	return nil
}

type childState int

const (
	stateRunning  childState = iota // Serve is executing
	stateBackoff                    // failed; restarts at due
	stateStopping                   // cancelled by the supervisor; waiting for Serve to return
)

// child is one registered service. Owned by the owner goroutine.
type child struct {
	id        ServiceID
	name      string
	svc       Service
	state     childState
	cancel    context.CancelFunc // set while running or stopping
	startedAt time.Time
	failures  int       // consecutive failures, reset after ResetAfter of running
	due       time.Time // stateBackoff: when to restart
	stopAt    time.Time // stateStopping: when to emit EventStopTimeout
	warned    bool      // EventStopTimeout already emitted for this stop
	waiters   []chan error
}

// owner is the state of one Serve call, touched only by the goroutine running it.
type owner struct {
	s        *Supervisor
	spec     *Spec
	ctx      context.Context
	children map[ServiceID]*child
	byName   map[string]*child
	running  int  // runs that have not yet reported a result
	closing  bool // ctx is done: no starts, no restarts, no adds
	timer    Timer
	timerAt  time.Time // deadline timer was armed for
	outbox   []Event   // emitted this iteration; delivered once timers are armed
}

func (o *owner) loop() {
	done := o.ctx.Done()
	for {
		if o.closing && o.running == 0 {
			o.disarm()
			o.flush()
			return
		}
		o.tick()
		o.flush()
		var timerC <-chan time.Time
		if o.timer != nil {
			timerC = o.timer.C()
		}
		select {
		case <-done:
			done = nil
			o.shutdown()
		case m := <-o.s.control:
			// Catch up with the clock first so a caller's round trip observes every
			// restart or timeout that is already due.
			o.tick()
			o.flush()
			o.handle(m)
		case r := <-o.s.results:
			o.finished(r)
		case <-timerC:
			o.timer = nil
		}
	}
}

// tick starts services whose backoff has elapsed, reports stop timeouts, and arms
// one timer for the earliest remaining deadline. Deadlines are per service, so a
// long backoff of one service never postpones another.
func (o *owner) tick() {
	now := o.spec.Clock.Now()
	var due []*child
	var next time.Time
	earliest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, c := range o.children {
		switch c.state {
		case stateBackoff:
			if now.Before(c.due) {
				earliest(c.due)
			} else {
				due = append(due, c)
			}
		case stateStopping:
			if c.warned {
				continue
			}
			if now.Before(c.stopAt) {
				earliest(c.stopAt)
			} else {
				due = append(due, c)
			}
		}
	}
	slices.SortFunc(due, func(a, b *child) int { return cmp.Compare(a.id, b.id) })
	for _, c := range due {
		if c.state == stateBackoff {
			o.start(c, now)
		} else {
			c.warned = true
			o.emit(EventStopTimeout{Supervisor: o.spec.Name, Service: c.name})
		}
	}
	o.arm(now, next)
}

func (o *owner) arm(now, next time.Time) {
	if next.IsZero() {
		o.disarm()
		return
	}
	if o.timer != nil && o.timerAt.Equal(next) {
		return
	}
	o.disarm()
	o.timer = o.spec.Clock.NewTimer(next.Sub(now))
	o.timerAt = next
}

func (o *owner) disarm() {
	if o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
}

func (o *owner) handle(m message) {
	switch m := m.(type) {
	case addMsg:
		switch {
		case o.closing:
			m.reply <- addReply{err: fmt.Errorf("supervisor %q: Add %q: %w", o.spec.Name, m.name, ErrStopped)}
		case o.byName[m.name] != nil:
			m.reply <- addReply{err: fmt.Errorf("supervisor %q: Add %q: %w", o.spec.Name, m.name, ErrDuplicateName)}
		default:
			c := o.register(ServiceID(o.s.nextID.Add(1)), m.name, m.svc)
			o.start(c, o.spec.Clock.Now())
			m.reply <- addReply{id: c.id}
		}
	case removeMsg:
		c := o.children[m.id]
		if m.byName {
			c = o.byName[m.name]
		}
		if c == nil {
			m.reply <- o.s.unknown(m)
			return
		}
		switch c.state {
		case stateBackoff:
			o.forget(c)
			m.reply <- nil
		case stateRunning:
			o.stop(c, o.spec.Clock.Now())
			c.waiters = append(c.waiters, m.reply)
		case stateStopping:
			c.waiters = append(c.waiters, m.reply)
		}
	case listMsg:
		names := make([]string, 0, len(o.byName))
		for name := range o.byName {
			names = append(names, name)
		}
		slices.Sort(names)
		m.reply <- names
	}
}

func (o *owner) register(id ServiceID, name string, svc Service) *child {
	c := &child{id: id, name: name, svc: svc}
	o.children[id] = c
	o.byName[name] = c
	return c
}

func (o *owner) start(c *child, now time.Time) {
	ctx, cancel := context.WithCancel(o.ctx)
	c.state = stateRunning
	c.cancel = cancel
	c.startedAt = now
	o.running++
	go run(ctx, c.id, c.svc, o.s.results)
	o.emit(EventServiceStarted{Supervisor: o.spec.Name, Service: c.name})
}

func (o *owner) stop(c *child, now time.Time) {
	c.cancel()
	c.state = stateStopping
	c.stopAt = now.Add(o.spec.StopTimeout)
	c.warned = false
}

// forget removes c from the tree and releases Remove calls waiting for it.
func (o *owner) forget(c *child) {
	delete(o.children, c.id)
	delete(o.byName, c.name)
	for _, w := range c.waiters {
		w <- nil
	}
	c.waiters = nil
}

func (o *owner) shutdown() {
	o.closing = true
	now := o.spec.Clock.Now()
	for _, c := range o.children {
		switch c.state {
		case stateBackoff:
			o.forget(c)
		case stateRunning:
			o.stop(c, now)
		}
	}
}

// finished decides what a returned Serve means: a stop, a completion or a failure.
func (o *owner) finished(r result) {
	o.running--
	c := o.children[r.id]
	c.cancel()
	c.cancel = nil

	if c.state == stateStopping || r.cancelled {
		// Stopped on request; a panic on the way out is still worth reporting.
		if r.panicked {
			c.failures++
			o.emit(o.failedEvent(c, r))
		}
		o.forget(c)
		return
	}
	if !r.panicked && (r.err == nil || errors.Is(r.err, ErrDoNotRestart)) {
		o.emit(EventServiceCompleted{Supervisor: o.spec.Name, Service: c.name})
		o.forget(c)
		return
	}

	now := o.spec.Clock.Now()
	if now.Sub(c.startedAt) >= o.spec.ResetAfter {
		c.failures = 0
	}
	c.failures++
	o.emit(o.failedEvent(c, r))
	delay := o.spec.Backoff.Delay(c.failures, o.spec.Rand())
	c.state = stateBackoff
	c.due = now.Add(delay)
	o.emit(EventServiceBackoff{Supervisor: o.spec.Name, Service: c.name, Delay: delay, Attempt: c.failures})
}

func (o *owner) failedEvent(c *child, r result) EventServiceFailed {
	return EventServiceFailed{
		Supervisor: o.spec.Name,
		Service:    c.name,
		Err:        r.err,
		Panic:      r.panicked,
		Stack:      r.stack,
		Failures:   c.failures,
	}
}

func (o *owner) emit(e Event) {
	if o.spec.EventHook != nil {
		o.outbox = append(o.outbox, e)
	}
}

// flush delivers queued events. It runs only after tick has armed the timer, so
// whoever reacts to an event (say, by advancing a FakeClock after
// EventServiceBackoff) finds the timer for it already in place.
func (o *owner) flush() {
	for i, e := range o.outbox {
		o.spec.EventHook(e)
		o.outbox[i] = nil
	}
	o.outbox = o.outbox[:0]
}
