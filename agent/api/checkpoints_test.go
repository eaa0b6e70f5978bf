package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/internal/testkit"
)

type fakeCheckpoints struct {
	mu        sync.Mutex
	list      []CheckpointEntry
	created   CheckpointInfo
	createErr error
}

func (c *fakeCheckpoints) List() ([]CheckpointEntry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.list, nil
}

func (c *fakeCheckpoints) Create() (CheckpointInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.created, c.createErr
}

func (c *fakeCheckpoints) set(edit func(*fakeCheckpoints)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	edit(c)
}

func TestAPICheckpoints(t *testing.T) {
	cp := &fakeCheckpoints{}
	f := newAPIFixture(t, "s3cret", func(o *Options) { o.Checkpoints = cp })
	auth := http.Header{"Authorization": {"Bearer s3cret"}}

	resp, body := f.get(t, "/v1/checkpoints", true)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("no checkpoints: %d %s, want 200 []", resp.StatusCode, body)
	}

	created := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	info := CheckpointInfo{Path: "/data/checkpoints/ckpt-2", Sequence: 2, Created: created, Bytes: 512, SHA256: "ab", Events: 9}
	cp.set(func(c *fakeCheckpoints) {
		c.list = []CheckpointEntry{{CheckpointInfo: info, Valid: true}, {CheckpointInfo: CheckpointInfo{Sequence: 1}, Error: "bad magic"}}
	})
	resp, body = f.get(t, "/v1/checkpoints", true)
	var list []map[string]any
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &list) != nil || len(list) != 2 {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	for _, k := range []string{"path", "sequence", "created", "bytes", "sha256", "events", "valid"} {
		if _, ok := list[0][k]; !ok {
			t.Errorf("entry lacks %q: %s", k, body)
		}
	}
	if _, ok := list[0]["error"]; ok || list[1]["error"] != "bad magic" || list[1]["valid"] != false {
		t.Errorf("valid and invalid entries: %s", body)
	}

	cp.set(func(c *fakeCheckpoints) { c.created = info })
	resp, body = testkit.Do(t, http.MethodPost, f.srv.URL+"/v1/checkpoints", nil, auth)
	var got map[string]any
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(body, &got) != nil || got["sequence"] != float64(2) {
		t.Fatalf("create: %d %s, want 201 with the checkpoint", resp.StatusCode, body)
	}
	cp.set(func(c *fakeCheckpoints) { c.createErr = errors.New("disk full") })
	resp, body = testkit.Do(t, http.MethodPost, f.srv.URL+"/v1/checkpoints", nil, auth)
	testkit.JSONError(t, resp, body, http.StatusInternalServerError, "checkpoint_failed")

	// Without Checkpoints the routes do not exist.
	bare := newAPIFixture(t, "")
	resp, body = bare.get(t, "/v1/checkpoints", false)
	testkit.JSONError(t, resp, body, http.StatusNotFound, "not_found")
}
