package docker

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// A tail of 0 asks for no history; only TailAll asks the engine for everything.
func TestLogsTailZeroIsNotAll(t *testing.T) {
	f := newFakeEngine(t)
	f.on("GET /containers/{id}/logs", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
	})
	c, _ := f.client(t, Options{})
	for i, tc := range []struct {
		tail int
		want string
	}{{0, "0"}, {1, "1"}, {10000, "10000"}, {TailAll, "all"}} {
		rc, err := c.Logs(testCtx(t, 10*time.Second), "c1", LogOptions{Tail: tc.tail})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(rc)
		_ = rc.Close()
		if got := f.requests("/containers/c1/logs")[i].Query.Get("tail"); got != tc.want {
			t.Errorf("Tail %d sent tail=%q, want %q", tc.tail, got, tc.want)
		}
	}
}
