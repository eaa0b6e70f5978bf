package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
)

func TestClassify(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp",
		Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	tests := []struct {
		name      string
		err       error
		kind      error // nil: no kind
		transient bool
		alsoIs    error // the original cause must stay visible
	}{
		{"not found", fmt.Errorf("no such container: x: %w", cerrdefs.ErrNotFound), ErrNotFound, false, cerrdefs.ErrNotFound},
		{"conflict", fmt.Errorf("name in use: %w", cerrdefs.ErrConflict), ErrConflict, false, cerrdefs.ErrConflict},
		{"engine unavailable", fmt.Errorf("daemon: %w", cerrdefs.ErrUnavailable), ErrUnavailable, true, cerrdefs.ErrUnavailable},
		{"connection refused", fmt.Errorf("request: %w", refused), ErrUnavailable, true, refused.Err},
		{"canceled", fmt.Errorf("request: %w", context.Canceled), nil, false, context.Canceled},
		{"deadline", fmt.Errorf("request: %w", context.DeadlineExceeded), nil, true, context.DeadlineExceeded},
		{"other", errors.New("boom"), nil, false, nil},
	}
	kinds := []error{ErrNotFound, ErrConflict, ErrUnavailable, ErrRefused}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classify("inspect c1", tt.err)
			if err == nil {
				t.Fatal("classify returned nil for an error")
			}
			for _, k := range kinds {
				if got, want := errors.Is(err, k), k == tt.kind; got != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, k, got, want)
				}
			}
			if tt.alsoIs != nil && !errors.Is(err, tt.alsoIs) {
				t.Errorf("cause %v lost in %v", tt.alsoIs, err)
			}
			if got := IsTransient(err); got != tt.transient {
				t.Errorf("IsTransient(%v) = %v, want %v", err, got, tt.transient)
			}
			var de *Error
			if !errors.As(err, &de) || de.Op != "inspect c1" {
				t.Fatalf("errors.As(*Error) failed or wrong op: %#v", err)
			}
			if msg := err.Error(); !strings.Contains(msg, "inspect c1") || !strings.Contains(msg, tt.err.Error()) {
				t.Errorf("message %q lacks the op or the cause", msg)
			}
		})
	}
	if err := classify("ping", nil); err != nil {
		t.Fatalf("classify(nil) = %v", err)
	}
}

func TestIsTransientOfPlainErrors(t *testing.T) {
	if IsTransient(nil) || IsTransient(errors.New("x")) || IsTransient(context.Canceled) {
		t.Fatal("nil, a plain error and context.Canceled are not transient")
	}
	if !IsTransient(fmt.Errorf("x: %w", ErrUnavailable)) {
		t.Fatal("a wrapped ErrUnavailable is transient")
	}
}
