package api

import (
	"encoding/json"
	"io"
	"net/http"
	"time"

	"berth/agent/challenge"
)

// The status page's live feed is one Server-Sent Events stream: the recent
// events and every new one ("events"), and the challenges that changed
// since the last look ("challenges"), each with its new probes. One
// connection per open page, counted against MaxFollowStreams.

const (
	// uiTick is how often the stream looks for changed challenges: a
	// status is published on every change, so comparing pointers is cheap
	// even for hundreds of challenges.
	uiTick = 500 * time.Millisecond
	// uiPing keeps an idle stream's connection, and its client's liveness
	// check, going.
	uiPing = 15 * time.Second
	// uiRecentEvents is how many past events a new page starts with.
	uiRecentEvents = 100
)

// eventTail is an EventLog that knows its newest sequence number, so a page
// can start from the recent events without reading the whole log.
type eventTail interface {
	LastSeq() uint64
}

// uiChallenge is a challenge object with its probes added since the last
// frame (all of them when ProbesReset).
type uiChallenge struct {
	*challenge.Status
	Probes      []challenge.ProbeSample `json:"probes"`
	ProbesReset bool                    `json:"probes_reset"`
}

type uiChallengesFrame struct {
	Now        time.Time     `json:"now"`
	Full       bool          `json:"full"` // the page drops challenges not listed
	Challenges []uiChallenge `json:"challenges"`
	Removed    []string      `json:"removed"`
}

// uiSent is what the stream last sent of one challenge.
type uiSent struct {
	handle    *challenge.Handle
	status    *challenge.Status
	lastProbe time.Time
}

func (s *server) uiStream(w http.ResponseWriter, r *http.Request) error {
	release, err := s.startFollow(w)
	if err != nil {
		return err
	}
	defer release()
	// Subscribe before reading history so nothing falls in between.
	sub := s.Events.Subscribe(followBuffer)
	defer sub.Close()
	recent, err := s.recentEvents()
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	last := uint64(0)
	if n := len(recent); n > 0 {
		last = recent[n-1].Seq
	}
	sent := map[string]uiSent{}
	s.followDeadline(rc)
	if writeSSE(w, "challenges", s.challengesFrame(sent, true)) != nil || writeSSE(w, "events", recent) != nil || rc.Flush() != nil {
		return nil
	}
	tick := time.NewTicker(uiTick)
	defer tick.Stop()
	ping := time.NewTicker(uiPing)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-ping.C:
			s.followDeadline(rc)
			if _, err := io.WriteString(w, ": ping\n\n"); err != nil {
				return nil
			}
		case <-tick.C:
			frame := s.challengesFrame(sent, false)
			if len(frame.Challenges) == 0 && len(frame.Removed) == 0 {
				continue
			}
			s.followDeadline(rc)
			if writeSSE(w, "challenges", frame) != nil {
				return nil
			}
		case ev, ok := <-sub.C():
			if !ok {
				return nil
			}
			if ev.Seq <= last {
				continue
			}
			batch := []challenge.Event{ev}
			if ev.Seq > last+1 && last > 0 {
				// The subscription dropped events; fill the gap from the log.
				if batch, err = s.Events.Events(last, ""); err != nil {
					return nil
				}
			}
			if len(batch) == 0 {
				continue
			}
			last = batch[len(batch)-1].Seq
			s.followDeadline(rc)
			if writeSSE(w, "events", batch) != nil {
				return nil
			}
		}
		if s.flushFollow(rc) != nil {
			return nil
		}
	}
}

// recentEvents returns up to uiRecentEvents of the newest events, oldest first.
func (s *server) recentEvents() ([]challenge.Event, error) {
	var since uint64
	if t, ok := s.Events.(eventTail); ok {
		since = t.LastSeq() - min(t.LastSeq(), uiRecentEvents)
	}
	var out []challenge.Event
	// Without a tail the log is paged from its start; its pages are bounded.
	for range 100 {
		page, err := s.Events.Events(since, "")
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			break
		}
		out = append(out, page...)
		if len(out) > uiRecentEvents {
			out = out[len(out)-uiRecentEvents:]
		}
		since = page[len(page)-1].Seq
	}
	return append([]challenge.Event{}, out...), nil
}

// challengesFrame lists the challenges whose status or probes changed since
// sent (all of them when full) and those removed, and updates sent.
func (s *server) challengesFrame(sent map[string]uiSent, full bool) uiChallengesFrame {
	frame := uiChallengesFrame{Now: time.Now(), Full: full, Challenges: []uiChallenge{}, Removed: []string{}}
	seen := make(map[string]bool, len(sent))
	for _, h := range s.Directory.List() {
		name := h.Name()
		seen[name] = true
		st, probes := h.Status(), h.Probes()
		prev, known := sent[name]
		var newest time.Time
		if n := len(probes); n > 0 {
			newest = probes[n-1].At
		}
		reset := full || !known || prev.handle != h
		if !reset && prev.status == st && newest.Equal(prev.lastProbe) {
			continue
		}
		if !reset {
			probes = newerThan(probes, prev.lastProbe)
		}
		frame.Challenges = append(frame.Challenges, uiChallenge{Status: st, Probes: probes, ProbesReset: reset})
		sent[name] = uiSent{handle: h, status: st, lastProbe: newest}
	}
	for name := range sent {
		if !seen[name] {
			delete(sent, name)
			frame.Removed = append(frame.Removed, name)
		}
	}
	return frame
}

// newerThan returns the samples after t; samples are oldest first.
func newerThan(samples []challenge.ProbeSample, t time.Time) []challenge.ProbeSample {
	i := len(samples)
	for i > 0 && samples[i-1].At.After(t) {
		i--
	}
	return samples[i:]
}

// writeSSE writes one event of the stream; JSON never holds a raw newline,
// so the data fits one line.
func writeSSE(w io.Writer, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, "event: "+name+"\ndata: "+string(b)+"\n\n")
	return err
}
