package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
)

const token = "s3cret"

// adminAPI stands in for berth's admin API: it answers the challenge "web"
// (registered over the API), "cfg" (declared in the config file) and no
// other, refuses requests without the token and records what it was asked.
type adminAPI struct {
	URL string

	mu   sync.Mutex
	reqs []string // "METHOD PATH"
}

func (a *adminAPI) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string{}, a.reqs...)
}

var webObject = map[string]any{
	"name": "web", "image": "ghcr.io/org/web", "version": "1.2.0", "state": "running", "health": "healthy",
	"restarts": 2, "endpoint": "web.example.org", "upstream": "172.18.0.5:8080", "slot": "blue",
	"digest":           "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	"previous_version": "1.1.0", "last_error": "health check failed:\n\tconnection refused",
}

func newAdminAPI(t *testing.T) *adminAPI {
	t.Helper()
	a := &adminAPI{}
	writeJSON := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	notFound := func(w http.ResponseWriter, name string) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no challenge named \"" + name + "\"", "code": "unknown_challenge"})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/challenges", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, []any{webObject})
	})
	mux.HandleFunc("GET /v1/challenges/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != "web" {
			notFound(w, r.PathValue("name"))
			return
		}
		writeJSON(w, http.StatusOK, webObject)
	})
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string][]string{"added": {"a", "b"}, "updated": {}, "removed": {"old"}})
	})
	mux.HandleFunc("DELETE /v1/challenges/{name}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("name") {
		case "web":
			w.WriteHeader(http.StatusNoContent)
		case "cfg":
			writeJSON(w, http.StatusConflict, map[string]string{"error": "cfg is declared in the config file", "code": "config_managed"})
		default:
			notFound(w, r.PathValue("name"))
		}
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.reqs = append(a.reqs, r.Method+" "+r.URL.Path)
		a.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+token {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token", "code": "unauthorized"})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

// TestNewClientCommands runs status NAME, inspect, reload and rm against a
// stand-in admin API: the request each sends, what it prints, its exit code.
func TestNewClientCommands(t *testing.T) {
	t.Setenv("BERTH_TOKEN", token)
	tests := []struct {
		args     []string
		request  string
		code     int
		stdout   []string // substrings
		stderr   []string
		jsonName string // stdout is a JSON object with this name
	}{
		{args: []string{"status", "web"}, request: "GET /v1/challenges/web", stdout: []string{"NAME", "web", "1.2.0", "healthy"}},
		{args: []string{"status", "web", "-o", "wide"}, request: "GET /v1/challenges/web",
			stdout: []string{"UPSTREAM", "SLOT", "DIGEST", "PREVIOUS", "LAST ERROR", "172.18.0.5:8080", "blue", "sha256:0123456789ab ", "1.1.0",
				`health check failed:\n\tconnection refused`}},
		{args: []string{"status", "-o", "wide"}, request: "GET /v1/challenges", stdout: []string{"UPSTREAM", "172.18.0.5:8080"}},
		{args: []string{"ps", "web", "-o", "json"}, request: "GET /v1/challenges/web", jsonName: "web"},
		{args: []string{"status", "nope"}, request: "GET /v1/challenges/nope", code: exitFailed, stderr: []string{`no challenge named "nope"`}},
		{args: []string{"inspect", "web"}, request: "GET /v1/challenges/web", jsonName: "web", stdout: []string{"\n  \"name\": \"web\""}},
		{args: []string{"inspect", "nope"}, request: "GET /v1/challenges/nope", code: exitFailed, stderr: []string{`no challenge named "nope"`}},
		{args: []string{"reload"}, request: "POST /v1/reload", stdout: []string{"added:   a, b\n", "updated: -\n", "removed: old\n"}},
		{args: []string{"rm", "web"}, request: "DELETE /v1/challenges/web", stdout: []string{"web: removed\n"}},
		{args: []string{"rm", "cfg"}, request: "DELETE /v1/challenges/cfg", code: exitFailed,
			stderr: []string{"cannot remove cfg", "declared in the config file", "berth reload"}},
		{args: []string{"rm", "nope"}, request: "DELETE /v1/challenges/nope", code: exitFailed, stderr: []string{`no challenge named "nope"`}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			api := newAdminAPI(t)
			code, stdout, stderr := runCLI(t, append(tt.args, "--addr", api.URL)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, stderr)
			}
			if got := api.requests(); len(got) != 1 || got[0] != tt.request {
				t.Errorf("requests %q, want [%s]", got, tt.request)
			}
			for _, want := range tt.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			for _, want := range tt.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q: %q", want, stderr)
				}
			}
			if tt.code != exitOK && stdout != "" {
				t.Errorf("stdout %q on failure", stdout)
			}
			if tt.jsonName != "" {
				var obj map[string]any
				if err := json.Unmarshal([]byte(stdout), &obj); err != nil || obj["name"] != tt.jsonName {
					t.Errorf("stdout is not the %s object (%v):\n%s", tt.jsonName, err, stdout)
				}
			}
		})
	}
}

// TestNewClientCommandsAuth: the token comes from BERTH_TOKEN, --token or
// --token-file; a refused one exits 1 and says how to pass it.
func TestNewClientCommandsAuth(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"inspect", "web"}, {"reload"}, {"rm", "web"}, {"status", "web"}} {
		t.Run(args[0], func(t *testing.T) {
			api := newAdminAPI(t)
			t.Setenv("BERTH_ADDR", api.URL)
			t.Setenv("BERTH_TOKEN", "")
			code, stdout, stderr := runCLI(t, args...)
			if code != exitFailed || stdout != "" || !strings.Contains(stderr, "--token") {
				t.Errorf("no token: exit %d, stdout %q, stderr %q; want 1 and a hint", code, stdout, stderr)
			}
			for _, extra := range [][]string{{"--token", token}, {"--token-file", tokenFile}} {
				if code, _, stderr := runCLI(t, append(args, extra...)...); code != exitOK {
					t.Errorf("%s: exit %d, stderr %q", extra[0], code, stderr)
				}
			}
			t.Setenv("BERTH_TOKEN", token)
			if code, _, stderr := runCLI(t, args...); code != exitOK {
				t.Errorf("BERTH_TOKEN: exit %d, stderr %q", code, stderr)
			}
		})
	}
}

func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_berth", "zsh": "#compdef berth", "fish": "complete -c berth"} {
		t.Run(shell, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, "completion", shell)
			if code != exitOK || stderr != "" || !strings.Contains(stdout, want) {
				t.Errorf("exit %d, stderr %q, stdout lacks %q", code, stderr, want)
			}
		})
	}
	for _, args := range [][]string{{"completion"}, {"completion", "tcsh"}, {"completion", "bash", "zsh"}} {
		if code, _, _ := runCLI(t, args...); code != exitInvalid {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

func TestVersionOutput(t *testing.T) {
	shape := regexp.MustCompile(`^berth \S+ \(revision \S+(, modified)?\)\n$`)
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, stdout, stderr := runCLI(t, args...)
		if code != exitOK || stderr != "" || !shape.MatchString(stdout) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 0 and %s", args, code, stdout, stderr, shape)
		}
	}
}

func TestBuildInfo(t *testing.T) {
	withVCS := &debug.BuildInfo{Main: debug.Module{Path: "berth", Version: "v1.4.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123abc"}, {Key: "vcs.modified", Value: "true"}}}
	tests := []struct {
		name    string
		ldflags string
		info    *debug.BuildInfo
		want    buildInfo
	}{
		{"none", "dev", nil, buildInfo{"dev", "unknown", false}},
		{"devel, no vcs", "dev", &debug.BuildInfo{Main: debug.Module{Path: "berth", Version: "(devel)"}}, buildInfo{"dev", "unknown", false}},
		{"module version and vcs", "dev", withVCS, buildInfo{"v1.4.0", "0123abc", true}},
		{"ldflags win", "1.5.0-rc1", withVCS, buildInfo{"1.5.0-rc1", "0123abc", true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := buildInfoFrom(tt.ldflags, tt.info); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestCompleteChallengeNames: NAME arguments complete from the running
// berth's challenges, with the client flags and the token.
func TestCompleteChallengeNames(t *testing.T) {
	api := newAdminAPI(t)
	t.Setenv("BERTH_TOKEN", token)
	for _, cmd := range []string{"inspect", "rm", "restart", "logs", "swap", "rollback", "status"} {
		code, stdout, stderr := runCLI(t, "__complete", cmd, "--addr", api.URL, "")
		if code != exitOK || !strings.HasPrefix(stdout, "web\n") || !strings.Contains(stdout, ":4\n") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want web and no file completion", cmd, code, stdout, stderr)
		}
	}
	// The second argument of swap (a version) is not a name.
	if _, stdout, _ := runCLI(t, "__complete", "swap", "web", "--addr", api.URL, ""); strings.Contains(stdout, "web") {
		t.Errorf("swap VERSION completed with names: %q", stdout)
	}
}
