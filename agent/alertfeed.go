package agent

import (
	"sync"

	"berth/agent/alerts"
	"berth/agent/challenge"
	"berth/statestore"
)

// alertFeed is the state store as the alerter reads it: the event log in
// the challenge package's terms.
type alertFeed struct{ store *statestore.Store }

func (f alertFeed) LastSeq() uint64 { return f.store.LastSeq() }

func (f alertFeed) EventsSince(seq uint64) ([]challenge.Event, error) {
	return queryEvents(f.store, statestore.EventQuery{Since: seq})
}

func (f alertFeed) Subscribe(buffer int) alerts.Subscription { return subscribeEvents(f.store, buffer) }

// queryEvents reads one page of the event log in the challenge package's terms.
func queryEvents(store *statestore.Store, q statestore.EventQuery) ([]challenge.Event, error) {
	page, err := store.Events(q)
	if err != nil {
		return nil, err
	}
	out := make([]challenge.Event, len(page))
	for i, e := range page {
		out[i] = challenge.Event(e)
	}
	return out, nil
}

// subscribeEvents starts a goroutine that converts the store's events;
// Close stops it and waits for it.
func subscribeEvents(store *statestore.Store, buffer int) *eventSubscription {
	s := &eventSubscription{sub: store.Subscribe(buffer), c: make(chan challenge.Event),
		stop: make(chan struct{}), done: make(chan struct{})}
	go s.pump()
	return s
}

// eventSubscription hands on the store subscription's events one at a
// time. Its own channel is unbuffered, so when the reader falls behind the
// store's buffer fills and drops, and the reader sees the gap from Seq.
// It serves both the alerter and the admin API's follow streams.
type eventSubscription struct {
	sub  *statestore.Subscription
	c    chan challenge.Event // closed by pump
	stop chan struct{}        // closed by Close
	done chan struct{}        // closed when pump returns
	once sync.Once
}

func (s *eventSubscription) C() <-chan challenge.Event { return s.c }

func (s *eventSubscription) Close() {
	s.once.Do(func() {
		close(s.stop)
		s.sub.Close()
	})
	<-s.done
}

func (s *eventSubscription) pump() {
	defer close(s.done)
	defer close(s.c)
	for {
		select {
		case <-s.stop:
			return
		case ev, ok := <-s.sub.C:
			if !ok {
				return // closed by Close or by the store
			}
			select {
			case s.c <- challenge.Event(ev):
			case <-s.stop:
				return
			}
		}
	}
}
