package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"berth/agent/challenge"
	"berth/configs"
	"berth/internal/testkit"
)

// fakeDesired records the changes it is asked for and answers with err;
// a Put it takes registers the challenge in dir, as the reconciler does.
type fakeDesired struct {
	cfg *configs.Config
	dir *challenge.Directory

	mu     sync.Mutex
	err    error
	reload ReloadResult
	calls  []string
}

func (d *fakeDesired) Config() *configs.Config { return d.cfg }

func (d *fakeDesired) answer(call string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, call)
	return d.err
}

func (d *fakeDesired) Put(_ context.Context, spec configs.Challenge) error {
	if err := d.answer("put " + spec.Name + " " + spec.Image + ":" + spec.Version); err != nil {
		return err
	}
	if d.dir.Get(spec.Name) == nil {
		putChallenge(d.dir, spec.Name, "", challenge.HealthUnknown)
	}
	return nil
}

func (d *fakeDesired) Delete(_ context.Context, name string) error { return d.answer("delete " + name) }

func (d *fakeDesired) Reload(context.Context) (ReloadResult, error) {
	if err := d.answer("reload"); err != nil {
		return ReloadResult{}, err
	}
	return d.reload, nil
}

func (d *fakeDesired) set(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.err = err
}

func (d *fakeDesired) lastCall() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.calls) == 0 {
		return ""
	}
	return d.calls[len(d.calls)-1]
}

func desiredFixture(tb testing.TB) (*apiFixture, *fakeDesired) {
	d := &fakeDesired{cfg: configs.Default()}
	f := newAPIFixture(tb, "", func(o *Options) { d.dir = o.Directory; o.Desired = d })
	return f, d
}

func TestAPIPutChallenge(t *testing.T) {
	f, d := desiredFixture(t)
	resp, body := putSpec(t, f.srv, "app", `{`+baseSpec+`}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("first PUT: %d %s, want 201", resp.StatusCode, body)
	}
	if got := d.lastCall(); got != "put app example/app:1.0.0" {
		t.Fatalf("Desired got %q", got)
	}
	var obj map[string]any
	if err := json.Unmarshal(body, &obj); err != nil || obj["name"] != "app" {
		t.Fatalf("PUT answer %s (%v), want the challenge object", body, err)
	}
	resp, body = putSpec(t, f.srv, "app", `{"name":"app",`+baseSpec+`}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("second PUT: %d %s, want 200", resp.StatusCode, body)
	}
	resp, body = putSpec(t, f.srv, "app", `{"name":"other",`+baseSpec+`}`)
	testkit.JSONError(t, resp, body, http.StatusBadRequest, "invalid_spec")

	tests := []struct {
		name   string
		err    error
		status int
		code   string
		msg    string
	}{
		{"not ready", fmt.Errorf("%w: still starting", ErrNotReady), 503, "not_ready", "still starting"},
		{"config managed", fmt.Errorf("%w; change it there", ErrConfigManaged), 409, "config_managed", "app is declared in the config file; change it there"},
		{"refused", fmt.Errorf("%w: pids above the policy", ErrSpecRefused), 400, "invalid_spec", "pids above the policy"},
		{"other", errors.New("disk full at /var/lib/berth"), 500, "internal", "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.set(tt.err)
			resp, body := putSpec(t, f.srv, "app", `{`+baseSpec+`}`)
			e := testkit.JSONError(t, resp, body, tt.status, tt.code)
			if !strings.Contains(e.Error, tt.msg) {
				t.Errorf("message %q, want it to hold %q", e.Error, tt.msg)
			}
		})
	}
}

func TestAPIDeleteChallenge(t *testing.T) {
	f, d := desiredFixture(t)
	resp, body := testkit.Do(t, http.MethodDelete, f.srv.URL+"/v1/challenges/app", nil, nil)
	if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("DELETE: %d %s, want 204 and no body", resp.StatusCode, body)
	}
	if got := d.lastCall(); got != "delete app" {
		t.Fatalf("Desired got %q", got)
	}
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("%w: still starting", ErrNotReady), 503, "not_ready"},
		{ErrConfigManaged, 409, "config_managed"},
		{ErrUnknownChallenge, 404, "unknown_challenge"},
		{errors.New("store closed"), 500, "internal"},
	}
	for _, tt := range tests {
		d.set(tt.err)
		resp, body := testkit.Do(t, http.MethodDelete, f.srv.URL+"/v1/challenges/app", nil, nil)
		testkit.JSONError(t, resp, body, tt.status, tt.code)
	}
}

func TestAPIReload(t *testing.T) {
	f, d := desiredFixture(t)
	d.reload = ReloadResult{Added: []string{"b"}, Removed: []string{"a"}}
	resp, body := testkit.Do(t, http.MethodPost, f.srv.URL+"/v1/reload", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reload: %d %s", resp.StatusCode, body)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "map[added:[b] removed:[a] updated:<nil>]" {
		t.Fatalf("reload answer %s", body)
	}

	d.set(fmt.Errorf("load: %w", configs.Errors{{File: "berth.yaml", Line: 3, Key: "agent.id", Msg: "is required"}}))
	resp, body = testkit.Do(t, http.MethodPost, f.srv.URL+"/v1/reload", nil, nil)
	if e := testkit.JSONError(t, resp, body, http.StatusBadRequest, "invalid_config"); !strings.Contains(e.Error, "agent.id") {
		t.Errorf("invalid config answer does not name the key: %s", e.Error)
	}
	d.set(fmt.Errorf("%w: still starting", ErrNotReady))
	resp, body = testkit.Do(t, http.MethodPost, f.srv.URL+"/v1/reload", nil, nil)
	testkit.JSONError(t, resp, body, http.StatusServiceUnavailable, "not_ready")
}

// Without a Desired the API changes nothing: those routes do not exist.
func TestAPIWithoutDesired(t *testing.T) {
	f := newAPIFixture(t, "")
	for _, m := range []struct{ method, path string }{
		{http.MethodPut, "/v1/challenges/app"}, {http.MethodDelete, "/v1/challenges/app"}, {http.MethodPost, "/v1/reload"},
	} {
		resp, body := testkit.Do(t, m.method, f.srv.URL+m.path, nil, nil)
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d %s", m.method, m.path, resp.StatusCode, body)
		}
	}
}
