package challenge

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// handOffRig is an "old instance" that redirects every request to a second
// server standing for berth's admin API or another loopback service.
func handOffRig(t *testing.T, status int) (container *httptest.Server, hit *atomic.Int64) {
	t.Helper()
	hit = new(atomic.Int64)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hit.Add(1)
		_, _ = io.WriteString(w, `{"secret":"admin api answer"}`)
	}))
	t.Cleanup(target.Close)
	container = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/v1/challenges", status)
	}))
	t.Cleanup(container.Close)
	return container, hit
}

func TestStateExportDoesNotFollowRedirects(t *testing.T) {
	for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		container, hit := handOffRig(t, status)
		data, err := exportState(context.Background(), container.URL, "/state", MaxSnapshotBytes, maxStateTransfer)
		if hit.Load() != 0 {
			t.Fatalf("status %d: export followed the redirect and fetched the other server (%d hits)", status, hit.Load())
		}
		if err == nil || !strings.Contains(err.Error(), "redirect") {
			t.Fatalf("status %d: export returned %q, %v; want an error about the redirect", status, data, err)
		}
	}
}

func TestStateImportDoesNotFollowRedirects(t *testing.T) {
	for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		container, hit := handOffRig(t, status)
		err := importState(context.Background(), container.URL, "/state", []byte("state"))
		if hit.Load() != 0 {
			t.Fatalf("status %d: import followed the redirect and sent the state elsewhere (%d hits)", status, hit.Load())
		}
		if err == nil || !strings.Contains(err.Error(), "redirect") {
			t.Fatalf("status %d: import returned %v; want an error about the redirect", status, err)
		}
	}
}

// The hand-off client dials only the instance's own address, whatever the
// request names and whatever proxy the environment sets.
func TestHandOffDialsOnlyTheContainer(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	other, hit := handOffRig(t, http.StatusFound)
	container := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "state") }))
	t.Cleanup(container.Close)
	data, err := exportState(context.Background(), container.URL, "/state", MaxSnapshotBytes, maxStateTransfer)
	if err != nil || string(data) != "state" {
		t.Fatalf("export from the instance: %q, %v", data, err)
	}
	req, _ := http.NewRequestWithContext(handOffTo(context.Background(), container.URL), http.MethodGet, other.URL, nil)
	resp, err := handOffClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("the hand-off client dialled an address other than the instance's")
	}
	if hit.Load() != 0 {
		t.Fatal("other server was hit")
	}
	// A path that turns the URL's host into another one is refused too.
	if _, err := exportState(context.Background(), container.URL, "@"+strings.TrimPrefix(other.URL, "http://")+"/x", MaxSnapshotBytes, maxStateTransfer); err == nil || hit.Load() != 0 {
		t.Fatalf("export through a path that names another host: err %v, other server hits %d", err, hit.Load())
	}
}

func TestStateImportResponseIsCapped(t *testing.T) {
	container := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		chunk := []byte(strings.Repeat("x", 64<<10))
		for i := 0; i < 1024; i++ { // 64 MiB, unless the reader stops
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(container.Close)
	if err := importState(context.Background(), container.URL, "/state", []byte("s")); err != nil {
		t.Fatalf("import: %v", err)
	}
}
