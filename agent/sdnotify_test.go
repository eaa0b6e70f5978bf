package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"berth/supervisor"
)

// notifyListener is the service manager's end of NOTIFY_SOCKET.
func notifyListener(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// recvNotify returns the next datagram, or "" when none arrives within wait.
func recvNotify(t *testing.T, conn *net.UnixConn, wait time.Duration) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// serveNotifier runs n.Serve until the test ends.
func serveNotifier(t *testing.T, n *notifier, ready, alive func(context.Context) bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx, ready, alive) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
}

func always(v bool) func(context.Context) bool { return func(context.Context) bool { return v } }

const notifyWait = 5 * time.Second // bound for a datagram that must arrive

func TestNotifyDisabledWithoutSocket(t *testing.T) {
	n := newNotifier(envOf(nil), zerolog.Nop())
	n.Ready()
	n.Stopping()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := n.Serve(ctx, always(true), always(true)); err != nil {
		t.Fatal(err)
	}
	if n := newNotifier(envOf(map[string]string{"NOTIFY_SOCKET": "relative/path"}), zerolog.Nop()); n.addr != nil {
		t.Error("a relative NOTIFY_SOCKET was accepted")
	}
}

func TestNotifyReadyOnceThenStopping(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn := notifyListener(t, sock)
	n := newNotifier(envOf(map[string]string{"NOTIFY_SOCKET": sock}), zerolog.Nop())
	n.poll = time.Millisecond
	var asked atomic.Int32
	ready := func(context.Context) bool { return asked.Add(1) >= 3 }
	serveNotifier(t, n, ready, always(true))

	if got := recvNotify(t, conn, notifyWait); got != "READY=1\nSTATUS=serving" {
		t.Fatalf("first datagram %q, want READY=1", got)
	}
	if asked.Load() < 3 {
		t.Errorf("READY=1 sent after %d readiness checks, before ready answered true", asked.Load())
	}
	n.Ready() // a second call sends nothing
	n.Stopping()
	n.Stopping()
	if got := recvNotify(t, conn, notifyWait); got != "STOPPING=1\nSTATUS=stopping" {
		t.Fatalf("datagram %q, want STOPPING=1", got)
	}
	if got := recvNotify(t, conn, 100*time.Millisecond); got != "" {
		t.Errorf("unexpected datagram %q (no watchdog is set)", got)
	}
}

func TestNotifyNoReadyOnceStopping(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn := notifyListener(t, sock)
	n := newNotifier(envOf(map[string]string{"NOTIFY_SOCKET": sock}), zerolog.Nop())
	n.Stopping()
	n.Ready()
	if got := recvNotify(t, conn, notifyWait); got != "STOPPING=1\nSTATUS=stopping" {
		t.Fatalf("datagram %q, want STOPPING=1", got)
	}
	if got := recvNotify(t, conn, 100*time.Millisecond); got != "" {
		t.Errorf("datagram %q after STOPPING=1", got)
	}
}

func TestNotifyAbstractSocket(t *testing.T) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "@berth-notify-test-" + hex.EncodeToString(b[:])
	conn := notifyListener(t, name)
	n := newNotifier(envOf(map[string]string{"NOTIFY_SOCKET": name}), zerolog.Nop())
	n.Ready()
	if got := recvNotify(t, conn, notifyWait); got != "READY=1\nSTATUS=serving" {
		t.Fatalf("datagram %q, want READY=1", got)
	}
}

// watchdogNotifier has a 1s feed interval on a fake clock; READY=1 is
// consumed so only watchdog datagrams follow.
func watchdogNotifier(t *testing.T, alive func(context.Context) bool) (*notifier, *net.UnixConn, *supervisor.FakeClock) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn := notifyListener(t, sock)
	n := newNotifier(envOf(map[string]string{"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "2000000"}), zerolog.Nop())
	if n.watchdog != time.Second {
		t.Fatalf("feed interval %v, want half of WATCHDOG_USEC", n.watchdog)
	}
	clock := supervisor.NewFakeClock(time.Unix(1_700_000_000, 0))
	n.clock = clock
	serveNotifier(t, n, always(true), alive)
	if got := recvNotify(t, conn, notifyWait); got != "READY=1\nSTATUS=serving" {
		t.Fatalf("datagram %q, want READY=1", got)
	}
	return n, conn, clock
}

func waitTimer(t *testing.T, clock *supervisor.FakeClock) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), notifyWait)
	defer cancel()
	if err := clock.WaitTimers(ctx, 1); err != nil {
		t.Fatal("watchdog timer not armed:", err)
	}
}

func TestNotifyWatchdogCadence(t *testing.T) {
	var calls atomic.Int32
	_, conn, clock := watchdogNotifier(t, func(context.Context) bool { calls.Add(1); return true })
	for i := 1; i <= 3; i++ {
		waitTimer(t, clock)
		clock.Advance(time.Second - time.Millisecond)
		if clock.Timers() != 1 || calls.Load() != int32(i-1) {
			t.Fatalf("tick %d: the watchdog fired before its interval", i)
		}
		clock.Advance(time.Millisecond)
		if got := recvNotify(t, conn, notifyWait); got != "WATCHDOG=1" {
			t.Fatalf("tick %d: datagram %q, want WATCHDOG=1", i, got)
		}
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("alive called %d times for 3 intervals", got)
	}
}

func TestNotifyNoWatchdogWhileNotAlive(t *testing.T) {
	var alive atomic.Bool
	asked := make(chan struct{}, 100)
	_, conn, clock := watchdogNotifier(t, func(context.Context) bool {
		select {
		case asked <- struct{}{}:
		default:
		}
		return alive.Load()
	})
	for i := 0; i < 5; i++ {
		waitTimer(t, clock)
		clock.Advance(time.Second)
	}
	select {
	case <-asked:
	case <-time.After(notifyWait):
		t.Fatal("alive was never asked")
	}
	if got := recvNotify(t, conn, 200*time.Millisecond); got != "" {
		t.Fatalf("datagram %q while alive answers false", got)
	}
	alive.Store(true)
	for i := 0; ; i++ {
		if i == 50 {
			t.Fatal("no WATCHDOG=1 after alive answers true again")
		}
		waitTimer(t, clock)
		clock.Advance(time.Second)
		if got := recvNotify(t, conn, 100*time.Millisecond); got != "" {
			if got != "WATCHDOG=1" {
				t.Fatalf("datagram %q, want WATCHDOG=1", got)
			}
			break
		}
	}
}

func TestNotifyNoWatchdogWhileCheckHangs(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	var calls atomic.Int32
	_, conn, clock := watchdogNotifier(t, func(ctx context.Context) bool {
		calls.Add(1)
		started <- struct{}{}
		select {
		case <-release:
			return true
		case <-ctx.Done():
			return false
		}
	})
	waitTimer(t, clock)
	clock.Advance(time.Second)
	<-started
	for i := 0; i < 3; i++ {
		waitTimer(t, clock)
		clock.Advance(time.Second)
	}
	waitTimer(t, clock) // the last tick has been handled
	if got := recvNotify(t, conn, 200*time.Millisecond); got != "" {
		t.Fatalf("datagram %q while the liveness check hangs", got)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("%d liveness checks ran at once, want 1", got)
	}
	close(release)
	if got := recvNotify(t, conn, notifyWait); got != "WATCHDOG=1" {
		t.Fatalf("datagram %q once the check answered, want WATCHDOG=1", got)
	}
}

func TestNotifyWatchdogInterval(t *testing.T) {
	pid := os.Getpid()
	for _, tc := range []struct {
		env     map[string]string
		want    time.Duration
		wantErr bool
	}{
		{env: nil, want: 0},
		{env: map[string]string{"WATCHDOG_USEC": "30000000"}, want: 15 * time.Second},
		{env: map[string]string{"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": strconv.Itoa(pid)}, want: 15 * time.Second},
		{env: map[string]string{"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": strconv.Itoa(pid + 1)}, want: 0},
		{env: map[string]string{"WATCHDOG_USEC": "0"}, wantErr: true},
		{env: map[string]string{"WATCHDOG_USEC": "30s"}, wantErr: true},
	} {
		got, err := watchdogInterval(envOf(tc.env), pid)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("%v: %v, %v; want %v (error %v)", tc.env, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestNotifyDialAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:7070":   "127.0.0.1:7070",
		"[::]:7070":      "127.0.0.1:7070",
		"127.0.0.1:7070": "127.0.0.1:7070",
		"[::1]:7070":     "[::1]:7070",
	} {
		if got := dialAddr(in); got != want {
			t.Errorf("dialAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
