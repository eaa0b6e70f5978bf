//go:build unix

package challenge

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadSecretRefusesNonRegularFiles: a FIFO would block the challenge's
// goroutine for ever; devices and directories are no secrets either.
func TestReadSecretRefusesNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	link := filepath.Join(dir, "link-to-fifo")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fifo, link, dir, "/dev/zero"} {
		done := make(chan error, 1)
		go func() {
			_, err := readSecret(path)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("readSecret(%s) = %v, want a not-a-regular-file error", path, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("readSecret(%s) blocked", path)
		}
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "s")
	if err := os.WriteFile(file, []byte("hunter2\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "l")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, link} {
		if v, err := readSecret(p); err != nil || v != "hunter2" {
			t.Errorf("readSecret(%s) = %q, %v", p, v, err)
		}
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, maxSecretSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readSecret(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("readSecret(big) = %v, want a size error", err)
	}
	// A short read from the first Read call must not truncate the value.
	exact := filepath.Join(dir, "exact")
	want := strings.Repeat("k", maxSecretSize)
	if err := os.WriteFile(exact, []byte(want), 0o600); err != nil {
		t.Fatal(err)
	}
	if v, err := readSecret(exact); err != nil || v != want {
		t.Errorf("readSecret(exact) = %d bytes, %v", len(v), err)
	}
}
