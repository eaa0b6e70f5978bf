package main

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"
)

// Long-lived requests, so tests can watch which version serves a connection
// that outlives a swap:
//
//	GET /ws                     WebSocket; every message comes back as "<version> <message>"
//	GET /stream?n=N&ms=M        text/event-stream; N events "data: <version> <i>", one every M ms
const (
	maxStreamEvents = 100000
	maxWSMessage    = 1 << 20
)

func (a *app) registerLive(mux *http.ServeMux) {
	mux.HandleFunc("GET /ws", a.ws)
	mux.HandleFunc("GET /stream", a.stream)
}

// ws echoes each message with the version prepended until the client closes
// or the process ends.
func (a *app) ws(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered the client
	}
	defer c.CloseNow()
	c.SetReadLimit(maxWSMessage)
	// A close frame from the client is answered inside Read.
	ctx := r.Context()
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, append([]byte(a.version+" "), msg...)); err != nil {
			return
		}
	}
}

// stream sends n server-sent events, one every ms milliseconds, each flushed
// at once, then ends the response.
func (a *app) stream(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, err1 := strconv.Atoi(or(q.Get("n"), "10"))
	ms, err2 := strconv.Atoi(or(q.Get("ms"), "100"))
	if err1 != nil || err2 != nil || n < 0 || n > maxStreamEvents || ms < 0 {
		a.json(w, http.StatusBadRequest, map[string]any{"error": fmt.Sprintf("n must be 0..%d and ms non-negative", maxStreamEvents)})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	tick := time.NewTicker(time.Duration(max(ms, 1)) * time.Millisecond)
	defer tick.Stop()
	for i := range n {
		if i > 0 {
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			}
		}
		if _, err := fmt.Fprintf(w, "data: %s %d\n\n", a.version, i); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
