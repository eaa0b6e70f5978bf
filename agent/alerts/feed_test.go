package alerts

import (
	"sync"
	"time"

	"berth/agent/challenge"
)

// fakeFeed is an in-memory Feed with the state store's contract: seqs
// without holes, subscribers that never block the writer and skip what
// does not fit their buffer, and a log to fill gaps from.
type fakeFeed struct {
	mu     sync.Mutex
	events []challenge.Event
	subs   map[*fakeSub]struct{}
	closed bool
	page   int // EventsSince returns at most this many
}

func newFakeFeed() *fakeFeed { return &fakeFeed{subs: map[*fakeSub]struct{}{}, page: 100} }

// append commits e with the next seq and, unless it has one, the current
// time, then offers it to every subscriber.
func (f *fakeFeed) append(e challenge.Event) challenge.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	e.Seq = uint64(len(f.events)) + 1
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	f.events = append(f.events, e)
	for s := range f.subs {
		select {
		case s.c <- e:
		default: // full: the subscriber finds the gap from Seq
		}
	}
	return e
}

func (f *fakeFeed) LastSeq() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return uint64(len(f.events))
}

func (f *fakeFeed) Subscribe(buffer int) Subscription {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &fakeSub{feed: f, c: make(chan challenge.Event, max(buffer, 1))}
	if f.closed {
		close(s.c)
		return s
	}
	f.subs[s] = struct{}{}
	return s
}

func (f *fakeFeed) EventsSince(seq uint64) ([]challenge.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []challenge.Event{}
	for _, e := range f.events[min(seq, uint64(len(f.events))):] {
		if len(out) == f.page {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

// close ends every subscription, as a closing store does.
func (f *fakeFeed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for s := range f.subs {
		delete(f.subs, s)
		close(s.c)
	}
}

type fakeSub struct {
	feed *fakeFeed
	c    chan challenge.Event
}

func (s *fakeSub) C() <-chan challenge.Event { return s.c }

func (s *fakeSub) Close() {
	f := s.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.subs[s]; ok {
		delete(f.subs, s)
		close(s.c)
	}
}

// chanSub is a Subscription a test drives by hand.
type chanSub chan challenge.Event

func (c chanSub) C() <-chan challenge.Event { return c }
func (c chanSub) Close()                    {}
