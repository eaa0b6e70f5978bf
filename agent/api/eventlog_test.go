package api

import (
	"sync"
	"time"

	"berth/agent/challenge"
)

// memLog is an EventLog in memory with the state store's delivery rules:
// a subscriber gets the events appended after Subscribe, an event that finds
// its buffer full is dropped for it (it sees the gap from Seq), and Close
// ends every subscription.
type memLog struct {
	mu     sync.Mutex
	events []challenge.Event // the newest memLogKeep, ascending
	seq    uint64
	subs   map[*memSub]struct{}
	closed bool
}

// memLogKeep bounds the log as the store bounds its own.
const memLogKeep = 1000

var _ EventLog = (*memLog)(nil)

// newMemLog returns an empty log; the caller closes it.
func newMemLog() *memLog { return &memLog{subs: map[*memSub]struct{}{}} }

// Append commits e with the next Seq and the current time.
func (l *memLog) Append(e challenge.Event) challenge.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	e.Seq, e.Time = l.seq, time.Now().UTC()
	l.events = append(l.events, e)
	if len(l.events) > memLogKeep {
		l.events = l.events[len(l.events)-memLogKeep:]
	}
	for s := range l.subs {
		select {
		case s.c <- e:
		default:
		}
	}
	return e
}

func (l *memLog) Events(since uint64, name string) ([]challenge.Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []challenge.Event{}
	for _, e := range l.events {
		if e.Seq > since && (name == "" || e.Challenge == name) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (l *memLog) Subscribe(buffer int) Subscription {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &memSub{log: l, c: make(chan challenge.Event, max(buffer, 1))}
	if l.closed {
		close(s.c)
		return s
	}
	l.subs[s] = struct{}{}
	return s
}

// Close ends every subscription, as closing the store does.
func (l *memLog) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for s := range l.subs {
		delete(l.subs, s)
		close(s.c)
	}
}

type memSub struct {
	log *memLog
	c   chan challenge.Event // closed under log.mu, by Close or the log's Close
}

func (s *memSub) C() <-chan challenge.Event { return s.c }

func (s *memSub) Close() {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	if _, ok := s.log.subs[s]; ok {
		delete(s.log.subs, s)
		close(s.c)
	}
}
