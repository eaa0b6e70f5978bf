package integration_test

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/integration/testenv"
)

// notifySocket listens where berth's NOTIFY_SOCKET points, as systemd does,
// and delivers every datagram on the returned channel.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	// Unix socket paths are limited to 108 bytes; t.TempDir can be longer.
	dir, err := os.MkdirTemp("", "berth-sdn-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan string, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			select {
			case msgs <- string(buf[:n]):
			default: // a test that stopped reading does not block this goroutine
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return path, msgs
}

// nextNotify waits for a datagram containing want and returns the ones before it.
func nextNotify(t *testing.T, msgs <-chan string, want string, timeout time.Duration) []string {
	t.Helper()
	var before []string
	deadline := time.After(timeout)
	for {
		select {
		case m := <-msgs:
			for _, line := range strings.Split(m, "\n") {
				if line == want {
					return before
				}
			}
			before = append(before, m)
		case <-deadline:
			t.Fatalf("no %s within %v; got %q", want, timeout, before)
		}
	}
}

func TestSdNotifyReadyWatchdogStopping(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	cfg := berthConfig(t, id, challengeYAML("echo", reg.Host+"/berth-it/echo", "1.0.0", ""))
	sock, msgs := notifySocket(t)
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "1000000") // feed every 500ms
	p := startBerthProcess(t, cfg)

	before := nextNotify(t, msgs, "READY=1", 60*time.Second)
	for _, m := range before {
		if m != "WATCHDOG=1" {
			t.Errorf("datagram %q before READY=1", m)
		}
	}
	// READY=1 means: reconciled, the challenge registered, /readyz 200.
	if status, body := getBody(t, p.api+"/readyz"); status != http.StatusOK {
		t.Errorf("/readyz after READY=1: %d %s", status, body)
	}
	if _, err := challengeStatus(t, p.api, "echo"); err != nil {
		t.Errorf("challenge echo not registered at READY=1: %v", err)
	}
	for i := 0; i < 3; i++ {
		nextNotify(t, msgs, "WATCHDOG=1", 10*time.Second)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	nextNotify(t, msgs, "STOPPING=1", 30*time.Second)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("berth did not exit within 30s of SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("berth exited with %d after SIGTERM, want 0", code)
	}
}
