package api

import (
	"encoding/json"
	"net/http"
	"strconv"

	"berth/agent/challenge"
)

// EventLog is berth's event log as the API reads it.
type EventLog interface {
	// Events returns the events with Seq > since in ascending order, only
	// those of challenge unless it is "", up to one page; an empty page
	// means there are none.
	Events(since uint64, challenge string) ([]challenge.Event, error)
	// Subscribe follows the events committed after it returns. It never
	// blocks the log's writers: an event that finds the buffer full is
	// skipped, and the reader notices the gap from Seq.
	Subscribe(buffer int) Subscription
}

// Subscription is a live feed of events in Seq order.
type Subscription interface {
	// C is closed by Close or when the log closes.
	C() <-chan challenge.Event
	// Close stops the subscription; it is idempotent and returns once C is
	// closed.
	Close()
}

// followBuffer is how many events a follow stream's subscription holds
// while its client is slow; past it the stream fills the gap from the log.
const followBuffer = 256

// events streams the event log as NDJSON; with follow=true it keeps the
// response open and streams new events until the client leaves.
func (s *server) events(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var since uint64
	if v := q.Get("since"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return apiErr(http.StatusBadRequest, "bad_request", "since must be an event sequence number, got "+quote(v))
		}
		since = n
	}
	follow := false
	if f := q.Get("follow"); f != "" {
		b, err := strconv.ParseBool(f)
		if err != nil {
			return apiErr(http.StatusBadRequest, "bad_request", "follow must be true or false, got "+quote(f))
		}
		follow = b
	}
	only := q.Get("challenge")
	var sub Subscription
	if follow {
		release, err := s.startFollow(w)
		if err != nil {
			return err
		}
		defer release()
		// Subscribe before reading history so nothing falls in between.
		sub = s.Events.Subscribe(followBuffer)
		defer sub.Close()
	}
	history, err := s.Events.Events(since, only)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	last := since
	for _, ev := range history {
		_ = enc.Encode(ev)
		last = ev.Seq
	}
	if !follow {
		return nil
	}
	rc := http.NewResponseController(w)
	if s.flushFollow(rc) != nil {
		return nil
	}
	for {
		select {
		case <-r.Context().Done():
			return nil
		case ev, ok := <-sub.C():
			if !ok {
				return nil
			}
			if ev.Seq <= last {
				continue
			}
			batch := []challenge.Event{ev}
			if ev.Seq > last+1 {
				// The subscription dropped events; fill the gap from the log.
				batch, err = s.Events.Events(last, "")
				if err != nil {
					return nil
				}
			}
			s.followDeadline(rc)
			for _, e := range batch {
				last = e.Seq
				if only != "" && e.Challenge != only {
					continue
				}
				if enc.Encode(e) != nil {
					return nil // the client is gone or stopped reading
				}
			}
			if s.flushFollow(rc) != nil {
				return nil
			}
		}
	}
}
