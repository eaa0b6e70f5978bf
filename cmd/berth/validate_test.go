package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfigFiles(tb testing.TB, dir string, files map[string]string) {
	tb.Helper()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestConfigValidateChecksWhatRunLoads: validate and run refuse the same
// files with the same lines; only BERTH_* variables are left to run.
func TestConfigValidateChecksWhatRunLoads(t *testing.T) {
	const dirs = "agent:\n  challenge_dirs: [challenges.d]\n  api: {listen: '127.0.0.1:0'}\n  proxy: {listen: '127.0.0.1:0'}\n  policy: {allowed_images: [ghcr.io/org]}\n"
	tests := []struct {
		name  string
		files map[string]string
		want  string // the stderr line, after the temporary directory; "" = valid
	}{
		{"valid with a dir", map[string]string{"berth.yaml": dirs, "challenges.d/a.yaml": "name: a\nimage: ghcr.io/org/a\nversion: '1'\n"}, ""},
		{"policy in a dir file", map[string]string{"berth.yaml": dirs, "challenges.d/d.yaml": "name: d\n\nimage: docker.io/evil/d\nversion: '1'\n"},
			`/challenges.d/d.yaml:3: image: image "docker.io/evil/d" is not admitted by agent.policy.allowed_images (ghcr.io/org)`},
		{"unknown key", map[string]string{"berth.yaml": "agent:\n  id: a\n  netwrok: x\n"},
			`/berth.yaml:3: agent: unknown key "netwrok", did you mean "network"?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeConfigFiles(t, dir, tt.files)
			path := filepath.Join(dir, "berth.yaml")
			var stdout, stderr bytes.Buffer
			code := run([]string{"config", "validate", path}, &stdout, &stderr)
			if tt.want == "" {
				if code != exitOK || stdout.String() != "ok\n" {
					t.Fatalf("validate: exit %d, stdout %q, stderr %q; want 0 and ok", code, stdout.String(), stderr.String())
				}
				return
			}
			if code != exitInvalid || !strings.HasPrefix(stderr.String(), dir+tt.want) {
				t.Fatalf("validate: exit %d, stderr %q; want 2 and %q", code, stderr.String(), dir+tt.want)
			}
			// run stops at the same load, before anything starts.
			var runOut, runErr bytes.Buffer
			if code := run([]string{"run", "--config", path}, &runOut, &runErr); code != exitInvalid || runErr.String() != stderr.String() {
				t.Errorf("run: exit %d, stderr %q; want 2 and validate's %q", code, runErr.String(), stderr.String())
			}
		})
	}
}

// TestConfigValidateIgnoresEnvironment: validate checks the files, not the
// shell's BERTH_* variables (docs/operations.md); run applies them.
func TestConfigValidateIgnoresEnvironment(t *testing.T) {
	dir := t.TempDir()
	writeConfigFiles(t, dir, map[string]string{"berth.yaml": "agent: {id: a}\n"})
	path := filepath.Join(dir, "berth.yaml")
	t.Setenv("BERTH_REACH", "anywhere")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"config", "validate", path}, &stdout, &stderr); code != exitOK {
		t.Fatalf("validate: exit %d, stderr %q; want 0", code, stderr.String())
	}
	stdout.Reset()
	if code := run([]string{"run", "--config", path}, &stdout, &stderr); code != exitInvalid || !strings.Contains(stderr.String(), "(from BERTH_REACH)") {
		t.Fatalf("run: exit %d, stderr %q; want 2 naming BERTH_REACH", code, stderr.String())
	}
}
