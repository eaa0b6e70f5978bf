package integration_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/integration/testenv"
	"berth/statestore"
)

func randomHex(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// authGet GETs an admin API URL with a bearer token.
func authGet(t testing.TB, url, token string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func authPost(t testing.TB, url, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

var base64RunRE = regexp.MustCompile(`[A-Za-z0-9+/]{16,}={0,2}`)

// holds reports whether b contains s as plain bytes or inside base64 (the
// store keeps specs as JSON byte strings, which encoding/json writes as base64).
func holds(b []byte, s string) bool {
	if bytes.Contains(b, []byte(s)) {
		return true
	}
	for _, run := range base64RunRE.FindAll(b, -1) {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
			if dec, err := enc.DecodeString(string(run)); err == nil && bytes.Contains(dec, []byte(s)) {
				return true
			}
		}
	}
	return false
}

// filesContaining returns the files under dir that hold s (see holds).
func filesContaining(t testing.TB, dir string, s string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if holds(b, s) {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return out
}

// TestSecuritySecretsNeverLeak: a secret_env_files value reaches the
// container's environment and nothing else berth writes or serves: not its
// log, events, API answers, CLI output, config validation, state store or
// checkpoints. The API token stays out of all of them too.
func TestSecuritySecretsNeverLeak(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)

	secrets := t.TempDir()
	secret := "berth-secret-" + randomHex(t)
	secretFile := filepath.Join(secrets, "api_key")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A second secret too large to use: refused, and the refusal must not quote it.
	bigSecret := "berth-big-secret-" + randomHex(t)
	bigFile := filepath.Join(secrets, "big")
	if err := os.WriteFile(bigFile, bytes.Repeat([]byte(bigSecret), 70<<10/len(bigSecret)+1), 0o600); err != nil {
		t.Fatal(err)
	}
	token := "berth-token-" + randomHex(t)
	tokenFile := filepath.Join(secrets, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	image := reg.Host + "/berth-it/echo"
	cfg := berthConfig(t, id,
		challengeYAML("echo", image, "1.0.0", "    env: {PLAIN: visible}\n    secret_env_files: {API_KEY: "+secretFile+"}\n")+
			challengeYAML("big", image, "1.0.0", "    secret_env_files: {API_KEY: "+bigFile+"}\n"))
	cfg = rewriteConfig(t, cfg, `api: {listen: "127.0.0.1:0"}`, `api: {listen: "127.0.0.1:0", token_file: `+tokenFile+`}`)
	dataDir := filepath.Join(filepath.Dir(cfg), "data")
	forbidden := map[string]string{"secret": secret, "oversized secret": bigSecret, "API token": token}
	noLeak := func(where string, b []byte) {
		t.Helper()
		for what, s := range forbidden {
			if holds(b, s) {
				t.Errorf("the %s appears in %s", what, where)
			}
		}
	}

	ra := startAgent(t, cfg)
	var view challengeView
	testenv.WaitFor(t, 60*time.Second, "echo running and healthy", func() (bool, error) {
		status, b := authGet(t, ra.api+"/v1/challenges/echo", token)
		if status != http.StatusOK || json.Unmarshal(b, &view) != nil {
			return false, fmt.Errorf("status %d: %s", status, b)
		}
		return view.State == "running" && view.Health == "healthy", fmt.Errorf("%+v", view)
	})

	// The secret does reach the container, trimmed of its newline.
	info := testenv.DockerInspect(t, view.ContainerID)
	config := info["Config"].(map[string]any)
	var env []string
	for _, e := range config["Env"].([]any) {
		env = append(env, e.(string))
	}
	if !slices.Contains(env, "API_KEY="+secret) || !slices.Contains(env, "PLAIN=visible") {
		t.Errorf("container env %v lacks API_KEY=<secret> and PLAIN=visible", env)
	}
	labels, _ := json.Marshal(config["Labels"])
	noLeak("the container's labels", labels)

	// The oversized secret is refused with an event that names the file, not its contents.
	var bigEvent []byte
	testenv.WaitFor(t, 30*time.Second, "an event refusing the oversized secret", func() (bool, error) {
		_, b := authGet(t, ra.api+"/v1/events?challenge=big", token)
		for _, line := range bytes.Split(b, []byte("\n")) {
			if bytes.Contains(line, []byte("larger than")) {
				bigEvent = line
				return true, nil
			}
		}
		return false, fmt.Errorf("events: %s", b)
	})
	if !bytes.Contains(bigEvent, []byte(bigFile)) {
		t.Errorf("refusal event does not name the file: %s", bigEvent)
	}

	// Restart, so stop, start and exit paths log too.
	if status, b := authPost(t, ra.api+"/v1/challenges/echo/restart", token); status != http.StatusAccepted {
		t.Fatalf("restart: %d %s", status, b)
	}
	testenv.WaitFor(t, 60*time.Second, "echo healthy after the restart", func() (bool, error) {
		status, b := authGet(t, ra.api+"/v1/challenges/echo", token)
		var v challengeView
		if status != http.StatusOK || json.Unmarshal(b, &v) != nil {
			return false, fmt.Errorf("status %d", status)
		}
		return v.Restarts >= 1 && v.State == "running" && v.Health == "healthy", fmt.Errorf("%+v", v)
	})
	if status, b := authPost(t, ra.api+"/v1/checkpoints", token); status/100 != 2 {
		t.Fatalf("create checkpoint: %d %s", status, b)
	}

	for _, path := range []string{"/v1/challenges", "/v1/challenges/echo", "/v1/challenges/big", "/v1/health",
		"/v1/events", "/v1/checkpoints", "/readyz", "/healthz", "/v1/challenges/echo/logs?tail=1000"} {
		status, b := authGet(t, ra.api+path, token)
		if status >= 500 {
			t.Errorf("GET %s: %d %s", path, status, b)
		}
		noLeak("GET "+path, b)
	}
	env2 := []string{"BERTH_ADDR=" + ra.api, "BERTH_TOKEN=" + token}
	for _, args := range [][]string{{"status", "-o", "json"}, {"events", "-o", "json"}, {"events"}, {"checkpoint", "list"}} {
		code, out := runCLI(t, env2, args...)
		if code != 0 {
			t.Errorf("berth %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		noLeak("berth "+strings.Join(args, " "), []byte(out))
	}
	ra.stop(t) // writes the final checkpoint and closes the store

	logs := ra.logs.String()
	if !strings.Contains(logs, `"challenge":"echo"`) || !strings.Contains(logs, "big") {
		t.Fatalf("berth's log does not cover both challenges; the check below would prove nothing:\n%.2000s", logs)
	}
	noLeak("berth's log", []byte(logs))

	// The store and checkpoints hold the secret's path, never its value.
	ckpts, _ := filepath.Glob(filepath.Join(dataDir, "checkpoints", "*.ckpt"))
	if len(ckpts) < 2 {
		t.Fatalf("checkpoints: %v, want the requested and the final one", ckpts)
	}
	for _, f := range ckpts {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !holds(b, secretFile) {
			t.Errorf("checkpoint %s does not hold the secret's path; the check below would prove nothing", f)
		}
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("checkpoint %s is readable by others: %v", f, fi.Mode())
		}
		noLeak("checkpoint "+filepath.Base(f), b)
	}
	// The store itself, every record, after berth wrote its last.
	store, err := statestore.Open(filepath.Join(dataDir, "state"), statestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var dump bytes.Buffer
	err = store.Backup(&dump)
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !holds(dump.Bytes(), secretFile) {
		t.Error("the store does not hold the secret's path; the check below would prove nothing")
	}
	noLeak("the state store's records", dump.Bytes())
	if fi, err := os.Stat(dataDir); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("data_dir %s is open to others: %v", dataDir, fi.Mode())
	}
	for what, s := range forbidden {
		if files := filesContaining(t, dataDir, s); len(files) > 0 {
			t.Errorf("the %s is stored in %v", what, files)
		}
	}

	// Validation checks that each secret file could be read at start (the
	// oversized one could not) and prints no secret's value, whether the
	// config is good or bad.
	code, out := runCLI(t, nil, "config", "validate", "--no-listen", cfg)
	if code != 2 || !strings.Contains(out, "challenges.big.secret_env_files.API_KEY") || !strings.Contains(out, "larger than 65536 bytes") ||
		strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("config validate: exit %d, want 2 and one line about the oversized secret\n%s", code, out)
	}
	noLeak("config validate", []byte(out))
	bad := rewriteConfig(t, cfg, "    env: {PLAIN: visible}\n", "    env: {PLAIN: visible}\n    bogus: 1\n")
	code, out = runCLI(t, nil, "config", "validate", bad)
	if code != 2 || !strings.Contains(out, "bogus") {
		t.Errorf("config validate of a bad config: exit %d\n%s", code, out)
	}
	noLeak("config validate", []byte(out))
}

// TestSecurityRefusedConfigStartsNothing: a config asking for a host bind
// mount, the Docker socket or a privileged container is refused whole by
// `berth run` and `berth config validate`, naming the line, and no container
// is created.
func TestSecurityRefusedConfigStartsNothing(t *testing.T) {
	testenv.RequireDocker(t)
	id := testenv.AgentID(t)
	for name, extra := range map[string]string{
		"docker socket": "    volumes: [{name: data, target: /var/run/docker.sock}]\n",
		"host path":     "    volumes: [{name: /etc, target: /host-etc}]\n",
		"privileged":    "    privileged: true\n",
		"cap_add":       "    security: {cap_add: [SYS_ADMIN]}\n",
		"host network":  "    network_mode: host\n",
	} {
		t.Run(name, func(t *testing.T) {
			cfg := berthConfig(t, id, challengeYAML("echo", "127.0.0.1:5000/berth-it/echo", "1.0.0", extra))
			for _, args := range [][]string{{"config", "validate", cfg}, {"run", "--config", cfg}} {
				code, out := runCLI(t, nil, args...)
				if code != 2 || !strings.Contains(out, cfg+":") || !strings.Contains(out, "refused") {
					t.Errorf("berth %s: exit %d, want 2 and a refusal naming the file:\n%s", args[0], code, out)
				}
			}
		})
	}
	if ps := testenv.DockerPS(t, id); len(ps) != 0 {
		t.Errorf("containers created for a refused config: %v", ps)
	}
}
