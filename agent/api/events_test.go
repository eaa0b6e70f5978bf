package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"berth/agent/challenge"
	"berth/internal/testkit"
)

// readEvents decodes an NDJSON body.
func readEvents(tb testing.TB, body []byte) []challenge.Event {
	tb.Helper()
	var out []challenge.Event
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		if line == "" {
			continue
		}
		var e challenge.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			tb.Fatalf("line %q is not JSON: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

func eventSeqs(evs []challenge.Event) string {
	s := make([]string, len(evs))
	for i, e := range evs {
		s[i] = fmt.Sprintf("%d:%s", e.Seq, e.Challenge)
	}
	return strings.Join(s, ",")
}

func TestAPIEvents(t *testing.T) {
	f := newAPIFixture(t, "s3cret")
	for i, ch := range []string{"a", "b", "a", "c", "a"} {
		f.appendEvent(t, challenge.Event{Type: "started", Challenge: ch, ContainerID: fmt.Sprintf("cid-%d", i),
			Version: "1.0.0", Message: "started"})
	}

	tests := []struct {
		query string
		want  string
	}{
		{"", "1:a,2:b,3:a,4:c,5:a"},
		{"?since=0", "1:a,2:b,3:a,4:c,5:a"},
		{"?since=2", "3:a,4:c,5:a"},
		{"?since=5", ""},
		{"?since=99", ""},
		{"?challenge=a", "1:a,3:a,5:a"},
		{"?challenge=b", "2:b"},
		{"?challenge=nope", ""},
		{"?challenge=a&since=3", "5:a"},
		{"?follow=false&since=4", "5:a"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			resp, body := f.get(t, "/v1/events"+tt.query, true)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
				t.Fatalf("Content-Type %q, want application/x-ndjson", ct)
			}
			if got := eventSeqs(readEvents(t, body)); got != tt.want {
				t.Fatalf("events %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("fields", func(t *testing.T) {
		_, body := f.get(t, "/v1/events?since=3&challenge=c", true)
		var line map[string]any
		if err := json.Unmarshal([]byte(strings.TrimSpace(string(body))), &line); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		for _, k := range []string{"seq", "time", "type", "challenge", "container_id", "version", "message"} {
			if _, ok := line[k]; !ok {
				t.Errorf("event lacks %q: %s", k, body)
			}
		}
		if line["type"] != "started" || line["container_id"] != "cid-3" {
			t.Errorf("event %s", body)
		}
	})

	for _, q := range []string{"?since=abc", "?since=-1", "?since=1.5", "?follow=maybe"} {
		t.Run("bad "+q, func(t *testing.T) {
			resp, body := f.get(t, "/v1/events"+q, true)
			testkit.JSONError(t, resp, body, http.StatusBadRequest, "bad_request")
		})
	}
}

// followStream opens a follow request; lines are read until ctx ends.
func followStream(tb testing.TB, f *apiFixture, ctx context.Context, query string) (*bufio.Reader, func()) {
	tb.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.URL+"/v1/events?follow=true"+query, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tb.Fatalf("follow: status %d: %s", resp.StatusCode, b)
	}
	return bufio.NewReader(resp.Body), func() { resp.Body.Close() }
}

func nextEvent(tb testing.TB, br *bufio.Reader) challenge.Event {
	tb.Helper()
	line, err := br.ReadBytes('\n')
	if err != nil {
		tb.Fatalf("reading the follow stream: %v (got %q)", err, line)
	}
	var e challenge.Event
	if err := json.Unmarshal(line, &e); err != nil {
		tb.Fatalf("line %q: %v", line, err)
	}
	return e
}

func waitFollowDone(tb testing.TB, f *apiFixture) {
	tb.Helper()
	select {
	case <-f.followDone:
	case <-time.After(10 * time.Second):
		tb.Fatal("follow handler kept running after the client left")
	}
}

func TestAPIEventsFollow(t *testing.T) {
	f := newAPIFixture(t, "s3cret")
	f.appendEvent(t, challenge.Event{Type: "registered", Challenge: "a"})
	f.appendEvent(t, challenge.Event{Type: "registered", Challenge: "b"})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	br, closeBody := followStream(t, f, ctx, "")
	defer closeBody()

	for _, want := range []uint64{1, 2} {
		if e := nextEvent(t, br); e.Seq != want {
			t.Fatalf("history: seq %d, want %d", e.Seq, want)
		}
	}
	// Headers arrived, so the handler has subscribed: these come live.
	for i, ch := range []string{"a", "c", "b"} {
		appended := f.appendEvent(t, challenge.Event{Type: "started", Challenge: ch, Message: fmt.Sprint("live ", i)})
		e := nextEvent(t, br)
		if e.Seq != appended.Seq || e.Challenge != ch || e.Type != "started" {
			t.Fatalf("live event %+v, want seq %d for %s", e, appended.Seq, ch)
		}
	}

	cancel()
	waitFollowDone(t, f)
}

func TestAPIEventsFollowFilters(t *testing.T) {
	f := newAPIFixture(t, "s3cret")
	f.appendEvent(t, challenge.Event{Type: "registered", Challenge: "a"}) // 1
	f.appendEvent(t, challenge.Event{Type: "registered", Challenge: "b"}) // 2
	f.appendEvent(t, challenge.Event{Type: "pulling", Challenge: "a"})    // 3

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	br, closeBody := followStream(t, f, ctx, "&challenge=a&since=1")
	defer closeBody()

	if e := nextEvent(t, br); e.Seq != 3 || e.Challenge != "a" {
		t.Fatalf("history after since=1 for a: %+v, want seq 3", e)
	}
	f.appendEvent(t, challenge.Event{Type: "started", Challenge: "b"}) // 4, filtered
	f.appendEvent(t, challenge.Event{Type: "started", Challenge: "c"}) // 5, filtered
	f.appendEvent(t, challenge.Event{Type: "started", Challenge: "a"}) // 6
	if e := nextEvent(t, br); e.Seq != 6 || e.Challenge != "a" {
		t.Fatalf("live event for a: %+v, want seq 6", e)
	}

	cancel()
	waitFollowDone(t, f)
}

// A follow request whose filter matches nothing still ends with the client.
func TestAPIEventsFollowEndsOnCancel(t *testing.T) {
	f := newAPIFixture(t, "s3cret")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	br, closeBody := followStream(t, f, ctx, "&challenge=none")
	defer closeBody()

	done := make(chan error, 1)
	go func() {
		_, err := br.ReadBytes('\n')
		done <- err
	}()
	f.appendEvent(t, challenge.Event{Type: "registered", Challenge: "other"})
	cancel()
	waitFollowDone(t, f)
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a filtered-out event reached the client")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("client read did not end after cancel")
	}
}
