package alerts

import "time"

// alertKey is the unit of dedupe: one challenge (empty for agent-wide
// events such as docker_disconnected) and one event type.
type alertKey struct {
	challenge string
	typ       string
}

type alertSlot struct {
	last       time.Time // when the last alert of this key was queued
	sent       bool      // last is set
	suppressed int       // held back since last
}

// alertLimiter allows one alert per key per interval and counts the rest.
// It is owned by the intake goroutine.
type alertLimiter struct {
	interval time.Duration
	slots    map[alertKey]*alertSlot
}

func newAlertLimiter(interval time.Duration) *alertLimiter {
	return &alertLimiter{interval: interval, slots: map[alertKey]*alertSlot{}}
}

// due reports whether an alert for k may go out at now.
func (l *alertLimiter) due(k alertKey, now time.Time) bool {
	s := l.slots[k]
	return s == nil || !s.sent || now.Sub(s.last) >= l.interval
}

// suppress counts an alert for k that was not sent.
func (l *alertLimiter) suppress(k alertKey, now time.Time) {
	s := l.slot(k, now)
	s.suppressed++
}

// take records an alert for k going out at now and returns how many were
// suppressed before it.
func (l *alertLimiter) take(k alertKey, now time.Time) int {
	s := l.slot(k, now)
	n := s.suppressed
	s.last, s.sent, s.suppressed = now, true, 0
	return n
}

func (l *alertLimiter) slot(k alertKey, now time.Time) *alertSlot {
	s := l.slots[k]
	if s == nil {
		if len(l.slots) >= alertLimiterPrune {
			l.prune(now)
		}
		s = &alertSlot{}
		l.slots[k] = s
	}
	return s
}

// prune forgets keys whose interval has passed with nothing suppressed:
// they would alert at once anyway, so the map stays bounded by recent keys.
func (l *alertLimiter) prune(now time.Time) {
	for k, s := range l.slots {
		if s.suppressed == 0 && (!s.sent || now.Sub(s.last) >= l.interval) {
			delete(l.slots, k)
		}
	}
}
