package api

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"berth/agent/challenge"
	"berth/internal/testkit"
)

// uiLogin logs in through the form's endpoint and returns the session cookie.
func uiLogin(tb testing.TB, f *apiFixture, token string) *http.Cookie {
	tb.Helper()
	resp, body := testkit.Do(tb, http.MethodPost, f.srv.URL+"/ui/login", strings.NewReader(`{"token":`+quote(token)+`}`),
		http.Header{"Content-Type": {"application/json"}})
	if resp.StatusCode != http.StatusNoContent {
		tb.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			return c
		}
	}
	tb.Fatalf("login set no %s cookie: %v", sessionCookie, resp.Header["Set-Cookie"])
	return nil
}

func withCookie(c *http.Cookie, h http.Header) http.Header {
	if h == nil {
		h = http.Header{}
	}
	h.Set("Cookie", c.Name+"="+c.Value)
	return h
}

func TestUIPageServedWithItsHeaders(t *testing.T) {
	f := newAPIFixture(t, "s3cret")
	for path, ctype := range map[string]string{"/ui/": "text/html", "/ui/app.js": "text/javascript", "/ui/app.css": "text/css"} {
		resp, body := f.get(t, path, false) // the files need no token: they hold no data
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", path)
		}
		if strings.Contains(string(body), "s3cret") {
			t.Errorf("%s carries the token", path)
		}
	}
	// The script renders data as text only.
	_, js := f.get(t, "/ui/app.js", false)
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(string(js), bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
	resp, body := f.get(t, "/ui/nope.js", false)
	testkit.JSONError(t, resp, body, http.StatusNotFound, "not_found")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := client.Get(f.srv.URL + "/ui")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusMovedPermanently || r.Header.Get("Location") != "/ui/" {
		t.Fatalf("/ui: %d to %q", r.StatusCode, r.Header.Get("Location"))
	}
}

func TestUILoginSetsAStrictHttpOnlyCookie(t *testing.T) {
	f := newAPIFixture(t, "s3cret")
	start := time.Now()
	resp, body := testkit.Do(t, http.MethodPost, f.srv.URL+"/ui/login", strings.NewReader(`{"token":"wrong"}`),
		http.Header{"Content-Type": {"application/json"}})
	testkit.JSONError(t, resp, body, http.StatusUnauthorized, "unauthorized")
	if len(resp.Cookies()) != 0 || time.Since(start) < loginDelay {
		t.Fatalf("a wrong token got a cookie %v or no delay (%v)", resp.Cookies(), time.Since(start))
	}
	c := uiLogin(t, f, "s3cret")
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || strings.Contains(c.Value, "s3cret") {
		t.Fatalf("cookie %+v", c)
	}
	if c.MaxAge <= 0 || c.MaxAge > int(sessionTTL.Seconds()) {
		t.Fatalf("cookie lives %d s", c.MaxAge)
	}
	// A form post from another site is refused before the token is looked at.
	resp, body = testkit.Do(t, http.MethodPost, f.srv.URL+"/ui/login", strings.NewReader(`{"token":"s3cret"}`),
		http.Header{"Content-Type": {"application/json"}, "Origin": {"http://evil.example"}})
	testkit.JSONError(t, resp, body, http.StatusForbidden, "forbidden_origin")
	resp, body = testkit.Do(t, http.MethodPost, f.srv.URL+"/ui/login", strings.NewReader(`token=s3cret`),
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	testkit.JSONError(t, resp, body, http.StatusUnsupportedMediaType, "unsupported_media_type")
	// Logging out clears the cookie.
	resp, _ = testkit.Do(t, http.MethodPost, f.srv.URL+"/ui/logout", nil, nil)
	if resp.StatusCode != http.StatusNoContent || len(resp.Cookies()) != 1 || resp.Cookies()[0].MaxAge >= 0 {
		t.Fatalf("logout: %d %v", resp.StatusCode, resp.Header["Set-Cookie"])
	}
}

// The cookie stands in for the bearer token on every /v1 route; a request
// that changes something must also carry the session's CSRF token.
func TestUICookieAuthAndCSRF(t *testing.T) {
	f := newAPIFixture(t, "s3cret")
	putChallenge(f.dir, "web", "http://10.0.0.2:8080", challenge.HealthHealthy)
	c := uiLogin(t, f, "s3cret")

	resp, body := testkit.Do(t, http.MethodGet, f.srv.URL+"/v1/challenges", nil, withCookie(c, nil))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"web"`) {
		t.Fatalf("list with the cookie: %d %s", resp.StatusCode, body)
	}
	resp, body = testkit.Do(t, http.MethodGet, f.srv.URL+"/v1/challenges", nil, nil)
	testkit.JSONError(t, resp, body, http.StatusUnauthorized, "unauthorized")
	forged := &http.Cookie{Name: sessionCookie, Value: newSessionValue("guess", time.Now().Add(time.Hour))}
	resp, body = testkit.Do(t, http.MethodGet, f.srv.URL+"/v1/challenges", nil, withCookie(forged, nil))
	testkit.JSONError(t, resp, body, http.StatusUnauthorized, "unauthorized")

	resp, body = testkit.Do(t, http.MethodGet, f.srv.URL+"/ui/session", nil, withCookie(c, nil))
	var info sessionInfo
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &info) != nil || !info.Auth || info.CSRF == "" {
		t.Fatalf("session: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(string(body), "s3cret") {
		t.Fatal("the session answer carries the token")
	}

	swap := func(h http.Header) (*http.Response, []byte) {
		h.Set("Content-Type", "application/json")
		return testkit.Do(t, http.MethodPost, f.srv.URL+"/v1/challenges/ghost/swap", strings.NewReader(`{"version":"2.0.0"}`), h)
	}
	resp, body = swap(withCookie(c, nil))
	testkit.JSONError(t, resp, body, http.StatusForbidden, "csrf")
	resp, body = swap(withCookie(c, http.Header{csrfHeader: {"0" + info.CSRF[1:]}}))
	testkit.JSONError(t, resp, body, http.StatusForbidden, "csrf")
	// Past authentication the request reaches its handler: ghost is unknown.
	resp, body = swap(withCookie(c, http.Header{csrfHeader: {info.CSRF}}))
	testkit.JSONError(t, resp, body, http.StatusNotFound, "unknown_challenge")
	// A bearer token still needs no CSRF token, and a wrong one is not rescued by a cookie.
	resp, body = swap(http.Header{"Authorization": {"Bearer s3cret"}})
	testkit.JSONError(t, resp, body, http.StatusNotFound, "unknown_challenge")
	resp, body = swap(withCookie(c, http.Header{"Authorization": {"Bearer wrong"}, csrfHeader: {info.CSRF}}))
	testkit.JSONError(t, resp, body, http.StatusUnauthorized, "unauthorized")
}

func TestUISessionWithoutToken(t *testing.T) {
	f := newAPIFixture(t, "")
	resp, body := f.get(t, "/ui/session", false)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "{\n  \"auth\": false,\n  \"csrf\": \"\"\n}" {
		t.Fatalf("session without a token: %d %s", resp.StatusCode, body)
	}
}

func TestProbeRoutes(t *testing.T) {
	f := newAPIFixture(t, "s3cret")
	h := putChallenge(f.dir, "web", "http://10.0.0.2:8080", challenge.HealthHealthy)
	putChallenge(f.dir, "idle", "", challenge.HealthUnknown)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	h.RecordProbe(challenge.ProbeSample{At: at, MS: 1.5, OK: true})
	h.RecordProbe(challenge.ProbeSample{At: at.Add(time.Second), MS: 900, OK: false})

	resp, body := f.get(t, "/v1/challenges/web/probes", true)
	var one []challenge.ProbeSample
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &one) != nil || len(one) != 2 || one[1].MS != 900 || one[1].OK || !one[0].At.Equal(at) {
		t.Fatalf("web's probes: %d %s", resp.StatusCode, body)
	}
	resp, body = f.get(t, "/v1/probes", true)
	var all map[string][]challenge.ProbeSample
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &all) != nil || len(all["web"]) != 2 || all["idle"] == nil || len(all["idle"]) != 0 {
		t.Fatalf("all probes: %d %s", resp.StatusCode, body)
	}
	resp, body = f.get(t, "/v1/challenges/ghost/probes", true)
	testkit.JSONError(t, resp, body, http.StatusNotFound, "unknown_challenge")
	resp, body = f.get(t, "/v1/probes", false)
	testkit.JSONError(t, resp, body, http.StatusUnauthorized, "unauthorized")
}

// sseReader reads a Server-Sent Events stream one event at a time.
type sseReader struct {
	events chan [2]string
}

func openSSE(tb testing.TB, target string, h http.Header) *sseReader {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		tb.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &sseReader{events: make(chan [2]string, 64)}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var name, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			case line == "" && name != "":
				s.events <- [2]string{name, data}
				name, data = "", ""
			}
		}
	}()
	return s
}

// next returns the next event named name, skipping others.
func (s *sseReader) next(tb testing.TB, name string, v any) {
	tb.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				tb.Fatalf("stream ended waiting for %q", name)
			}
			if ev[0] != name {
				continue
			}
			if err := json.Unmarshal([]byte(ev[1]), v); err != nil {
				tb.Fatalf("%s: %v in %s", name, err, ev[1])
			}
			return
		case <-deadline:
			tb.Fatalf("no %q event within 5s", name)
		}
	}
}

type testFrame struct {
	Full       bool `json:"full"`
	Challenges []struct {
		Name        string                  `json:"name"`
		State       string                  `json:"state"`
		Health      string                  `json:"health"`
		Restarts    int                     `json:"restarts"`
		Probes      []challenge.ProbeSample `json:"probes"`
		ProbesReset bool                    `json:"probes_reset"`
	} `json:"challenges"`
	Removed []string `json:"removed"`
}

// The stream starts with every challenge and the recent events, then sends
// what changes: new events, changed statuses with only their new probes,
// removed challenges.
func TestUIStream(t *testing.T) {
	f := newAPIFixture(t, "s3cret")
	web := putChallenge(f.dir, "web", "http://10.0.0.2:8080", challenge.HealthHealthy)
	putChallenge(f.dir, "api", "http://10.0.0.3:8080", challenge.HealthHealthy)
	at := time.Now()
	web.RecordProbe(challenge.ProbeSample{At: at, MS: 2, OK: true})
	for i := range uiRecentEvents + 20 {
		f.appendEvent(t, challenge.Event{Type: "started", Challenge: "web", Message: "n" + string(rune('a'+i%26))})
	}
	c := uiLogin(t, f, "s3cret")
	resp, body := testkit.Do(t, http.MethodGet, f.srv.URL+"/ui/stream", nil, nil)
	testkit.JSONError(t, resp, body, http.StatusUnauthorized, "unauthorized")

	s := openSSE(t, f.srv.URL+"/ui/stream", withCookie(c, nil))
	var first testFrame
	s.next(t, "challenges", &first)
	if !first.Full || len(first.Challenges) != 2 || first.Challenges[0].Name != "api" || first.Challenges[1].Name != "web" ||
		len(first.Challenges[1].Probes) != 1 || !first.Challenges[1].ProbesReset {
		t.Fatalf("first frame: %+v", first)
	}
	var recent []challenge.Event
	s.next(t, "events", &recent)
	if len(recent) != uiRecentEvents || recent[len(recent)-1].Seq != uiRecentEvents+20 {
		t.Fatalf("recent events: %d ending at %v", len(recent), recent[len(recent)-1])
	}

	f.appendEvent(t, challenge.Event{Type: "exited", Challenge: "web", Message: "<b>boom</b>"})
	var live []challenge.Event
	s.next(t, "events", &live)
	if len(live) != 1 || live[0].Type != "exited" || live[0].Message != "<b>boom</b>" {
		t.Fatalf("live events: %+v", live)
	}

	web.RecordProbe(challenge.ProbeSample{At: at.Add(time.Second), MS: 7, OK: false})
	web.SetStatus(&challenge.Status{Name: "web", State: challenge.Restarting, Health: challenge.HealthUnhealthy, Restarts: 1})
	var delta testFrame
	s.next(t, "challenges", &delta)
	if delta.Full || len(delta.Challenges) != 1 || delta.Challenges[0].Name != "web" || delta.Challenges[0].Restarts != 1 ||
		delta.Challenges[0].State != "restarting" || delta.Challenges[0].ProbesReset ||
		len(delta.Challenges[0].Probes) != 1 || delta.Challenges[0].Probes[0].MS != 7 {
		t.Fatalf("delta: %+v", delta)
	}

	f.dir.Remove("api")
	var gone testFrame
	s.next(t, "challenges", &gone)
	if len(gone.Removed) != 1 || gone.Removed[0] != "api" || len(gone.Challenges) != 0 {
		t.Fatalf("removal: %+v", gone)
	}
}

// Each open page holds one follow stream; past MaxFollowStreams the page is
// told to come back later.
func TestUIStreamCountsAsAFollowStream(t *testing.T) {
	f := newAPIFixture(t, "", func(o *Options) { o.MaxFollowStreams = 1 })
	openSSE(t, f.srv.URL+"/ui/stream", nil)
	resp, body := f.get(t, "/ui/stream", false)
	testkit.JSONError(t, resp, body, http.StatusTooManyRequests, "too_many_streams")
}
