package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestWebSocketEchoesWithVersion(t *testing.T) {
	f := newFixture(t, false)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.srv.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	if got := resp.Header.Get("X-Challenge-Version"); got != "1.2.3" {
		t.Errorf("upgrade answer X-Challenge-Version = %q", got)
	}
	for i, typ := range []websocket.MessageType{websocket.MessageText, websocket.MessageBinary, websocket.MessageText} {
		msg := fmt.Sprintf("hello %d", i)
		if err := c.Write(ctx, typ, []byte(msg)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		gotTyp, got, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if gotTyp != typ || string(got) != "1.2.3 "+msg {
			t.Errorf("echo %d = %v %q, want %v %q", i, gotTyp, got, typ, "1.2.3 "+msg)
		}
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Errorf("close: %v", err)
	}
}

func TestWebSocketRefusesPlainGET(t *testing.T) {
	f := newFixture(t, false)
	if code, _, _ := f.do(t, "GET", "/ws", ""); code != http.StatusUpgradeRequired {
		t.Errorf("plain GET /ws: %d, want 426", code)
	}
}

func TestStreamSendsEventsAsTheyComeThenEnds(t *testing.T) {
	f := newFixture(t, false)
	start := time.Now()
	resp, err := f.srv.Client().Get(f.srv.URL + "/stream?n=4&ms=100")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("status %d content type %q", resp.StatusCode, ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var events []string
	var firstAt time.Duration
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			if len(events) == 0 {
				firstAt = time.Since(start)
			}
			events = append(events, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	want := []string{"1.2.3 0", "1.2.3 1", "1.2.3 2", "1.2.3 3"}
	if strings.Join(events, "|") != strings.Join(want, "|") {
		t.Errorf("events %q, want %q", events, want)
	}
	// The first event is flushed at once, not held until the stream ends.
	if total := time.Since(start); total < 300*time.Millisecond || firstAt > total-200*time.Millisecond {
		t.Errorf("first event after %s of %s: not streamed", firstAt, total)
	}
}

func TestStreamRejectsBadParameters(t *testing.T) {
	f := newFixture(t, false)
	for _, q := range []string{"n=x", "ms=-1", "n=-2", "n=1000000"} {
		if code, _, _ := f.do(t, "GET", "/stream?"+q, ""); code != http.StatusBadRequest {
			t.Errorf("/stream?%s: %d, want 400", q, code)
		}
	}
}
