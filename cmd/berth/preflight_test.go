package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// config validate checks what berth run needs of the host, so that "ok"
// means run will not stop at once for a missing file, an unusable data_dir
// or a busy port.
func TestConfigValidateChecksTheHost(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	const secretValue = "s3cr3t-value"
	tests := []struct {
		name  string
		agent string // agent keys, indented by two spaces
		extra []string
		want  string // "" = ok; else a substring of the one problem line
	}{
		{"all good", "", nil, ""},
		{"missing token file", "  api: {listen: '127.0.0.1:0', token_file: DIR/missing-token}\n", nil, "agent.api.token_file: open DIR/missing-token"},
		{"empty token file", "  api: {listen: '127.0.0.1:0', token_file: DIR/empty-token}\n", nil, "agent.api.token_file: DIR/empty-token is empty"},
		{"data_dir under a file", "  data_dir: DIR/afile/data\n", nil, "agent.data_dir: stat DIR/afile/data: not a directory"},
		{"busy api port", "  api: {listen: 'BUSY'}\n", nil, "agent.api.listen: listen tcp BUSY: bind: address already in use"},
		{"busy port skipped", "  api: {listen: 'BUSY'}\n", []string{"--no-listen"}, ""},
		{"secret is a directory", "", nil, "challenges.web.secret_env_files.TOKEN: DIR/secretdir is not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "afile"), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "empty-token"), []byte("\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "secret"), []byte(secretValue), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(dir, "secretdir"), 0o700); err != nil {
				t.Fatal(err)
			}
			agent := "  data_dir: DIR/data\n  api: {listen: '127.0.0.1:0'}\n  proxy: {listen: '127.0.0.1:0'}\n"
			if tt.agent != "" {
				agent = strings.Replace(agent, "  api: {listen: '127.0.0.1:0'}\n", "", 1)
				if strings.Contains(tt.agent, "data_dir") {
					agent = strings.Replace(agent, "  data_dir: DIR/data\n", "", 1)
				}
				agent += tt.agent
			}
			secret := "DIR/secret"
			if tt.name == "secret is a directory" {
				secret = "DIR/secretdir"
			}
			config := fmt.Sprintf("agent:\n%schallenges:\n  - name: web\n    image: example.test/web\n    version: '1.0.0'\n    secret_env_files: {TOKEN: %s}\n", agent, secret)
			config = strings.ReplaceAll(strings.ReplaceAll(config, "DIR", dir), "BUSY", busy.Addr().String())
			path := filepath.Join(dir, "berth.yaml")
			if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			code := run(append(append([]string{"config", "validate"}, tt.extra...), path), &stdout, &stderr)
			if strings.Contains(stdout.String()+stderr.String(), secretValue) {
				t.Fatal("validate printed a secret's value")
			}
			if tt.want == "" {
				if code != exitOK || stdout.String() != "ok\n" {
					t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and ok", code, stdout.String(), stderr.String())
				}
				return
			}
			want := strings.ReplaceAll(strings.ReplaceAll(tt.want, "DIR", dir), "BUSY", busy.Addr().String())
			if code != exitInvalid || !strings.HasPrefix(stderr.String(), path+": ") || !strings.Contains(stderr.String(), want) {
				t.Fatalf("exit %d, stderr %q; want 2 and a line %q", code, stderr.String(), path+": ..."+want)
			}
			if n := strings.Count(strings.TrimSpace(stderr.String()), "\n"); n != 0 {
				t.Fatalf("%d problem lines, want 1: %q", n+1, stderr.String())
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".berth-validate") {
					t.Fatalf("validate left %s behind", e.Name())
				}
			}
		})
	}
}
