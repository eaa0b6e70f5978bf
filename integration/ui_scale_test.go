package integration_test

import (
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/rs/zerolog"

	"berth/agent/api"
	"berth/agent/challenge"
)

// fakeLog is an event log holding what the test appends, for the admin API
// served without an agent.
type fakeLog struct {
	mu     sync.Mutex
	events []challenge.Event
	subs   []chan challenge.Event
}

func (l *fakeLog) Events(since uint64, only string) ([]challenge.Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []challenge.Event
	for _, e := range l.events {
		if e.Seq > since && (only == "" || e.Challenge == only) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (l *fakeLog) Subscribe(buffer int) api.Subscription {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := make(chan challenge.Event, buffer)
	l.subs = append(l.subs, c)
	return &fakeSub{log: l, c: c}
}

func (l *fakeLog) append(e challenge.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.Seq = uint64(len(l.events) + 1)
	e.Time = time.Now()
	l.events = append(l.events, e)
	for _, c := range l.subs {
		select {
		case c <- e:
		default:
		}
	}
}

type fakeSub struct {
	log  *fakeLog
	c    chan challenge.Event
	once sync.Once
}

func (s *fakeSub) C() <-chan challenge.Event { return s.c }

func (s *fakeSub) Close() {
	s.once.Do(func() {
		s.log.mu.Lock()
		defer s.log.mu.Unlock()
		for i, c := range s.log.subs {
			if c == s.c {
				s.log.subs = append(s.log.subs[:i], s.log.subs[i+1:]...)
				break
			}
		}
		close(s.c)
	})
}

// TestUIScalesAndEscapes opens the status page over 200 challenges (the
// admin API alone, no engine needed): the troubled ones come first, the
// filter narrows them, and names, versions and event text that look like
// markup stay text.
func TestUIScalesAndEscapes(t *testing.T) {
	ctx := startBrowser(t)
	dir := &challenge.Directory{}
	now := time.Now().Add(-time.Hour)
	for i := range 200 {
		name := fmt.Sprintf("chal-%03d", i)
		st := &challenge.Status{Name: name, Image: "registry.test/" + name, Version: "1.0.0", State: challenge.Running,
			Health: challenge.HealthHealthy, Upstream: fmt.Sprintf("http://127.0.0.1:%d", 20000+i), StartedAt: &now, Restarts: i % 3}
		switch i {
		case 150:
			st.State, st.Health = challenge.Failed, challenge.HealthUnknown
		case 42:
			st.Health = challenge.HealthUnhealthy
		}
		h := challenge.NewHandle(name)
		h.SetStatus(st)
		for j := range 30 {
			h.RecordProbe(challenge.ProbeSample{At: now.Add(time.Duration(j) * time.Second), MS: float64(1 + (i+j)%7), OK: j != 20})
		}
		dir.Put(h)
	}
	hostile := `<img src=x onerror="window.pwned=1">`
	h := challenge.NewHandle(hostile)
	h.SetStatus(&challenge.Status{Name: hostile, Version: hostile, State: challenge.Running, Health: challenge.HealthHealthy,
		LastError: hostile, Swap: &challenge.SwapStatus{ID: "s1", Phase: "starting", From: "1.0.0", To: hostile}})
	dir.Put(h)
	events := &fakeLog{}
	events.append(challenge.Event{Type: "exited", Challenge: "chal-042", Message: hostile})
	srv := httptest.NewServer(api.New(api.Options{Directory: dir, Events: events, Log: zerolog.Nop(),
		Ready:  func() (bool, map[string]string) { return true, nil },
		Health: func() api.HealthReport { return api.HealthReport{Status: "healthy"} }}))
	// The page's stream stays open until the browser goes; Close waits for it.
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })

	start := time.Now()
	run(t, ctx, "opening /ui/", chromedp.Navigate(srv.URL+"/ui/"))
	waitJS(t, ctx, "201 cards", `document.querySelectorAll('.card').length === 201`, 20*time.Second)
	t.Logf("201 challenges rendered in %v", time.Since(start).Round(time.Millisecond))
	order := eval[[]string](t, ctx, `[...document.querySelectorAll('.card')].slice(0, 3).map(c => c.dataset.name)`)
	if len(order) != 3 || order[0] != "chal-150" || order[1] != "chal-042" {
		t.Errorf("trouble first: the first cards are %q, want chal-150 (failed) then chal-042 (unhealthy)", order)
	}
	events.append(challenge.Event{Type: "swap_started", Challenge: hostile, Message: hostile})
	waitJS(t, ctx, "both events listed", `document.querySelectorAll('#events li').length === 2`, 10*time.Second)
	if n := eval[int](t, ctx, `document.querySelectorAll('main img, main script, #events img').length`); n != 0 {
		t.Errorf("markup from challenge data became %d elements", n)
	}
	if eval[bool](t, ctx, `window.pwned === 1`) {
		t.Fatal("challenge data ran as script")
	}
	if !eval[bool](t, ctx, `[...document.querySelectorAll('.card .name')].some(n => n.textContent === `+"`"+hostile+"`"+`)`) {
		t.Error("the hostile name is not shown as text")
	}
	run(t, ctx, "filtering", chromedp.SendKeys(chromedp.CSS("#filter"), "chal-19"))
	waitJS(t, ctx, "ten cards left", `[...document.querySelectorAll('.card')].filter(c => c.offsetParent !== null).length === 10`, 5*time.Second)
}
