package api

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"berth/agent/challenge"
	"berth/internal/testkit"
)

// followLimits shortens the follow stream limits of a fixture.
func followLimits(streams int, write time.Duration) func(*Options) {
	return func(o *Options) { o.MaxFollowStreams, o.FollowWriteTimeout = streams, write }
}

func TestAPIFollowStreamsAreCapped(t *testing.T) {
	f := newAPIFixture(t, "s3cret", followLimits(2, time.Minute))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, close1 := followStream(t, f, ctx, "")
	defer close1()
	_, close2 := followStream(t, f, ctx, "")
	defer close2()

	resp, body := f.get(t, "/v1/events?follow=true", true)
	testkit.JSONError(t, resp, body, http.StatusTooManyRequests, "too_many_streams")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	waitFollowDone(t, f) // the refused request
	// Plain reads are not streams and are not limited.
	if resp, body := f.get(t, "/v1/events", true); resp.StatusCode != http.StatusOK {
		t.Fatalf("events without follow while streams are full = %d %s", resp.StatusCode, body)
	}

	close1()
	waitFollowDone(t, f)
	_, close3 := followStream(t, f, ctx, "")
	defer close3()
}

// A follower that stops reading must not hold its stream (and slot) for ever.
func TestAPIFollowDropsClientThatStopsReading(t *testing.T) {
	f := newAPIFixture(t, "s3cret", followLimits(1, 300*time.Millisecond))
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10)
	}
	fmt.Fprintf(conn, "GET /v1/events?follow=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\r\n")
	// Enough output to fill every socket buffer between us; never read.
	big := strings.Repeat("x", 32<<10)
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		f.appendEvent(t, challenge.Event{Type: "started", Challenge: "a", Message: big})
		select {
		case <-f.followDone:
			// The stream was dropped; its slot is free again.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, closeBody := followStream(t, f, ctx, "")
			closeBody()
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("follow stream to a client that stopped reading still open after %d events of 32 KiB", i+1)
		}
		if i > 2000 {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// blockingLogs answers Logs with output that never ends until ctx does.
type blockingLogs struct{ challenge.Runtime }

func (blockingLogs) Logs(ctx context.Context, _ string, opts challenge.LogOptions) (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte("hello\n"))
		if !opts.Follow {
			pw.Close()
			return
		}
		<-ctx.Done()
		pw.CloseWithError(ctx.Err())
	}()
	return pr, nil
}

func TestAPILogFollowsShareTheStreamCap(t *testing.T) {
	f := newAPIFixture(t, "", followLimits(1, time.Minute), func(o *Options) { o.Runtime = blockingLogs{} })
	h := challenge.NewHandle("web")
	h.SetStatus(&challenge.Status{Name: "web", State: challenge.Running, ContainerID: "abc"})
	f.dir.Put(h)
	srv := f.srv

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/challenges/web/logs?follow=true", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("first log follow: %v %v", resp, err)
	}
	defer resp.Body.Close()

	r2, body := testkit.Do(t, http.MethodGet, srv.URL+"/v1/events?follow=true", nil, nil)
	testkit.JSONError(t, r2, body, http.StatusTooManyRequests, "too_many_streams")
	r3, body := testkit.Do(t, http.MethodGet, srv.URL+"/v1/challenges/web/logs?follow=true", nil, nil)
	testkit.JSONError(t, r3, body, http.StatusTooManyRequests, "too_many_streams")
	if r4, body := testkit.Do(t, http.MethodGet, srv.URL+"/v1/challenges/web/logs", nil, nil); r4.StatusCode != http.StatusOK || string(body) != "hello\n" {
		t.Fatalf("logs without follow while streams are full = %d %q", r4.StatusCode, body)
	}
}
