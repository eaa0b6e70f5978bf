package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"berth/configs"
	"berth/internal/testkit"
)

// notReady is a Desired whose reconciler has not started: a PUT that
// passes every check reaches Put and answers 503 not_ready.
type notReady struct{ cfg *configs.Config }

func (d notReady) Config() *configs.Config                      { return d.cfg }
func (d notReady) Put(context.Context, configs.Challenge) error { return errNotReadyYet }
func (d notReady) Delete(context.Context, string) error         { return errNotReadyYet }
func (d notReady) Reload(context.Context) (ReloadResult, error) {
	return ReloadResult{}, errNotReadyYet
}

var errNotReadyYet = fmt.Errorf("%w: still starting", ErrNotReady)

// specAPI serves the admin API with cfg in force and no reconciler yet.
func specAPI(tb testing.TB, cfg *configs.Config) *httptest.Server {
	tb.Helper()
	return newAPIFixture(tb, "", func(o *Options) { o.Desired = notReady{cfg} }).srv
}

func putSpec(tb testing.TB, srv *httptest.Server, name, body string) (*http.Response, []byte) {
	tb.Helper()
	return testkit.Do(tb, http.MethodPut, srv.URL+"/v1/challenges/"+name, strings.NewReader(body),
		http.Header{"Content-Type": {"application/json"}})
}

const baseSpec = `"image":"example/app","version":"1.0.0"`

// TestAPISpecCannotNameHostFiles: secret_env_files name files on berth's
// host; only the operator's config may.
func TestAPISpecCannotNameHostFiles(t *testing.T) {
	srv := specAPI(t, configs.Default())
	for _, path := range []string{"/proc/self/environ", "relative/secret", "../../etc/shadow"} {
		resp, body := putSpec(t, srv, "app", `{`+baseSpec+`,"secret_env_files":{"K":"`+path+`"}}`)
		e := testkit.JSONError(t, resp, body, http.StatusBadRequest, "invalid_spec")
		if !strings.Contains(e.Error, "secret_env_files") {
			t.Errorf("%s: error does not name the field: %s", path, e.Error)
		}
	}
}

// TestAPISpecCannotWeakenHardening: relaxing the defaults' hardening and
// exceeding the policy maxima are config-only.
func TestAPISpecCannotWeakenHardening(t *testing.T) {
	srv := specAPI(t, configs.Default())
	tests := []struct{ name, extra, field string }{
		{"cap_drop empty", `"security":{"cap_drop":[]}`, "security.cap_drop"},
		{"cap_drop partial", `"security":{"cap_drop":["NET_RAW"]}`, "security.cap_drop"},
		{"read_only off", `"security":{"read_only":false}`, "security.read_only"},
		{"no_new_privileges off", `"security":{"no_new_privileges":false}`, "security.no_new_privileges"},
		{"writable tmpfs added", `"security":{"tmpfs":["/tmp","/etc"]}`, "security.tmpfs"},
		{"cpus above max", `"resources":{"cpus":100000}`, "resources.cpus"},
		{"memory above max", `"resources":{"memory":"1000t"}`, "resources.memory"},
		{"pids above max", `"resources":{"pids":10000000}`, "resources.pids"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := putSpec(t, srv, "app", `{`+baseSpec+`,`+tt.extra+`}`)
			e := testkit.JSONError(t, resp, body, http.StatusBadRequest, "invalid_spec")
			if !strings.Contains(e.Error, tt.field) {
				t.Errorf("error does not name %s: %s", tt.field, e.Error)
			}
		})
	}
	// Tightening is fine: the spec gets past every check to the reconciler.
	for _, extra := range []string{`"security":{"tmpfs":[]}`, `"security":{"cap_drop":["ALL","NET_RAW"]}`, `"resources":{"cpus":0.5,"pids":64}`} {
		resp, body := putSpec(t, srv, "app", `{`+baseSpec+`,`+extra+`}`)
		testkit.JSONError(t, resp, body, http.StatusServiceUnavailable, "not_ready")
	}
}
