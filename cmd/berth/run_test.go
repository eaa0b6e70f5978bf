package main

import (
	"bytes"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunStartupErrorPrintedOnce: a startup error of berth run reaches the
// operator once, whichever of the logger (stdout) or stderr carries it;
// under systemd both go to the journal.
func TestRunStartupErrorPrintedOnce(t *testing.T) {
	t.Setenv("BERTH_TOKEN", "")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name   string
		config string
		want   string // the error text, counted in stdout and stderr together
		code   int
	}{
		{"bad config", "agent:\n  id: a\n  netwrok: x\n", `unknown key "netwrok"`, exitInvalid},
		{"missing token file", "agent:\n  api: {listen: 127.0.0.1:0, token_file: /nonexistent/berth-token}\n  proxy: {listen: 127.0.0.1:0}\n",
			"api.token_file: open /nonexistent/berth-token", exitFailed},
		{"busy port", "agent:\n  api: {listen: " + busy.Addr().String() + "}\n  proxy: {listen: 127.0.0.1:0}\n",
			"api.listen " + busy.Addr().String(), exitFailed},
	}
	for _, tt := range tests {
		for _, format := range []string{"json", "console"} {
			t.Run(tt.name+"/"+format, func(t *testing.T) {
				dir := t.TempDir()
				writeConfigFiles(t, dir, map[string]string{"berth.yaml": tt.config})
				var stdout, stderr bytes.Buffer
				code := run([]string{"run", "--config", filepath.Join(dir, "berth.yaml"), "--data-dir", filepath.Join(dir, "data"),
					"--log-format", format}, &stdout, &stderr)
				if code != tt.code {
					t.Errorf("exit %d, want %d", code, tt.code)
				}
				all := stdout.String() + stderr.String()
				if n := strings.Count(all, tt.want); n != 1 {
					t.Errorf("%q printed %d times, want once:\nstdout: %s\nstderr: %s", tt.want, n, stdout.String(), stderr.String())
				}
			})
		}
	}
}
