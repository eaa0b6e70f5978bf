package agent

import (
	"berth/agent/challenge"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"berth/configs"
	"berth/statestore"
)

// APIError is the one error type of the admin API; handlers return it and
// serveAPI renders it as {"error","code"}.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return e.Message }

func apiErr(status int, code, msg string) *APIError {
	return &APIError{Status: status, Code: code, Message: msg}
}

type apiHandler func(w http.ResponseWriter, r *http.Request) error

// adminAPI serves the admin endpoints. It reads challenge status snapshots
// and the store; it never touches a challenge's state directly.
type adminAPI struct {
	dir     *challenge.Directory
	store   *statestore.Store
	token   string
	log     zerolog.Logger
	runtime challenge.Runtime
	// checkpoints serves /v1/checkpoints; nil disables those endpoints.
	checkpoints *checkpointer
	agent       *Agent // desired-state changes go through its reconciler
	metrics     http.Handler
	ready       func() (bool, map[string]string)
	health      func() healthReport
	started     time.Time
	follows     atomic.Int64 // follow streams open, at most maxFollows
	// Follow stream limits, taken from maxFollowStreams and
	// followWriteTimeout when routes builds the handler.
	maxFollows  int
	followWrite time.Duration
}

func (a *adminAPI) routes() http.Handler {
	a.maxFollows, a.followWrite = maxFollowStreams, followWriteTimeout
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	if a.metrics != nil {
		// A configured token protects metrics too; without one (loopback only) they are open.
		mux.Handle("GET /metrics", a.handle(func(w http.ResponseWriter, r *http.Request) error {
			a.metrics.ServeHTTP(w, r)
			return nil
		}))
	}
	mux.Handle("GET /v1/health", a.handle(a.getHealth))
	mux.Handle("GET /v1/challenges", a.handle(a.listChallenges))
	mux.Handle("GET /v1/challenges/{name}", a.handle(a.getChallenge))
	mux.Handle("GET /v1/events", a.handle(a.events))
	mux.Handle("POST /v1/challenges/{name}/restart", a.handle(a.restartChallenge))
	mux.Handle("GET /v1/challenges/{name}/logs", a.handle(a.containerLogs))
	mux.Handle("POST /v1/challenges/{name}/swap", a.handle(a.swapChallenge))
	if a.agent != nil {
		mux.Handle("PUT /v1/challenges/{name}", a.handle(a.putChallenge))
		mux.Handle("DELETE /v1/challenges/{name}", a.handle(a.deleteChallenge))
		mux.Handle("POST /v1/reload", a.handle(a.reload))
	}
	mux.Handle("POST /v1/challenges/{name}/rollback", a.handle(a.rollbackChallenge))
	if a.checkpoints != nil {
		mux.Handle("GET /v1/checkpoints", a.handle(a.checkpoints.handleList))
		mux.Handle("POST /v1/checkpoints", a.handle(a.checkpoints.handleCreate))
	}
	mux.Handle("/v1/", a.handle(func(w http.ResponseWriter, r *http.Request) error {
		return apiErr(http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+clip(r.URL.Path))
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+clip(r.URL.Path), 0)
	})
	return guardBrowsers(mux, a.token != "")
}

// handle applies auth and renders errors centrally.
func (a *adminAPI) handle(h apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				a.log.Error().Interface("panic", v).Str("stack", string(debug.Stack())).Str("path", r.URL.Path).Msg("admin api handler panicked")
				writeJSONError(w, http.StatusInternalServerError, "internal", "internal error; see berth's log", 0)
			}
		}()
		// A client that stops reading cannot hold a connection for ever;
		// follow streams lift this deadline themselves.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(apiWriteTimeout))
		err := a.authorize(r)
		if err == nil {
			if name := r.PathValue("name"); name != "" {
				if e := validateChallengeName(name); e != nil {
					err = e
				}
			}
		}
		if err == nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxJSONBody)
			err = h(w, r)
		}
		if err == nil {
			return
		}
		var apiError *APIError
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			apiError = apiErr(http.StatusRequestEntityTooLarge, "too_large", "request body too large")
		}
		if apiError == nil && !errors.As(err, &apiError) {
			a.log.Error().Err(err).Str("path", r.URL.Path).Msg("admin api request failed")
			apiError = apiErr(http.StatusInternalServerError, "internal", "internal error; see berth's log")
		}
		writeJSONError(w, apiError.Status, apiError.Code, apiError.Message, 0)
	})
}

func (a *adminAPI) authorize(r *http.Request) error {
	if a.token == "" {
		return nil
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	// Comparing digests keeps the token's length out of the timing too.
	gotSum, wantSum := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(a.token))
	if !ok || subtle.ConstantTimeCompare(gotSum[:], wantSum[:]) != 1 {
		return apiErr(http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token")
	}
	return nil
}

func (a *adminAPI) readyz(w http.ResponseWriter, r *http.Request) {
	ok, components := a.ready()
	status := http.StatusOK
	body := map[string]any{"status": "ready", "components": components}
	if !ok {
		status = http.StatusServiceUnavailable
		body["status"] = "not_ready"
		if components["agent"] == "draining" {
			body["status"] = "draining"
		}
	}
	writeJSON(w, status, body)
}

func (a *adminAPI) getHealth(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, a.health())
	return nil
}

func (a *adminAPI) listChallenges(w http.ResponseWriter, r *http.Request) error {
	out := []*challenge.Status{}
	for _, h := range a.dir.List() {
		out = append(out, h.Status())
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *adminAPI) getChallenge(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	h := a.dir.Get(name)
	if h == nil {
		return apiErr(http.StatusNotFound, "unknown_challenge", "no challenge named "+quote(name))
	}
	writeJSON(w, http.StatusOK, h.Status())
	return nil
}

// events streams the event log as NDJSON; with follow=true it keeps the
// response open and streams new events until the client leaves.
func (a *adminAPI) events(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var since uint64
	if s := q.Get("since"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return apiErr(http.StatusBadRequest, "bad_request", "since must be an event sequence number, got "+quote(s))
		}
		since = n
	}
	follow := false
	if f := q.Get("follow"); f != "" {
		b, err := strconv.ParseBool(f)
		if err != nil {
			return apiErr(http.StatusBadRequest, "bad_request", "follow must be true or false, got "+quote(f))
		}
		follow = b
	}
	challenge := q.Get("challenge")
	var sub *statestore.Subscription
	if follow {
		release, err := a.startFollow(w)
		if err != nil {
			return err
		}
		defer release()
		// Subscribe before reading history so nothing falls in between.
		sub = a.store.Subscribe(256)
		defer sub.Close()
	}
	history, err := a.store.Events(statestore.EventQuery{Since: since, Challenge: challenge})
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	last := since
	for _, ev := range history {
		_ = enc.Encode(ev)
		last = ev.Seq
	}
	if !follow {
		return nil
	}
	rc := http.NewResponseController(w)
	if a.flushFollow(rc) != nil {
		return nil
	}
	for {
		select {
		case <-r.Context().Done():
			return nil
		case ev, ok := <-sub.C:
			if !ok {
				return nil
			}
			if ev.Seq <= last {
				continue
			}
			batch := []statestore.Event{ev}
			if ev.Seq > last+1 {
				// The subscription dropped events; fill the gap from the log.
				batch, err = a.store.Events(statestore.EventQuery{Since: last})
				if err != nil {
					return nil
				}
			}
			_ = rc.SetWriteDeadline(time.Now().Add(a.followWrite))
			for _, e := range batch {
				last = e.Seq
				if challenge != "" && e.Challenge != challenge {
					continue
				}
				if enc.Encode(e) != nil {
					return nil // the client is gone or stopped reading
				}
			}
			if a.flushFollow(rc) != nil {
				return nil
			}
		}
	}
}

// restartChallenge asks the challenge's goroutine to restart now.
func (a *adminAPI) restartChallenge(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	h := a.dir.Get(name)
	if h == nil {
		return apiErr(http.StatusNotFound, "unknown_challenge", "no challenge named "+quote(name))
	}
	err := h.Restart(r.Context())
	if errors.Is(err, challenge.ErrOwnerBusy) {
		return ownerBusy(name)
	}
	if err != nil {
		return apiErr(http.StatusConflict, "conflict", err.Error())
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"name": name, "status": "restarting"})
	return nil
}

// ownerBusy answers a request its challenge's owner did not take in time;
// the request was withdrawn and will not run.
func ownerBusy(name string) *APIError {
	return apiErr(http.StatusServiceUnavailable, "busy", "challenge "+name+" is busy; nothing was done; try again")
}

// Follow streams (events and logs with follow=true) hold a connection and a
// goroutine each for as long as the client stays. At most maxFollowStreams
// run at once; a client must accept each write within followWriteTimeout.
var (
	maxFollowStreams   = 64
	followWriteTimeout = time.Minute
)

// startFollow takes one of the maxFollowStreams slots for a follow stream,
// or answers 429. The caller must call release when the stream ends.
func (a *adminAPI) startFollow(w http.ResponseWriter) (release func(), err error) {
	if n := a.follows.Add(1); n > int64(a.maxFollows) {
		a.follows.Add(-1)
		w.Header().Set("Retry-After", "5")
		return nil, apiErr(http.StatusTooManyRequests, "too_many_streams",
			fmt.Sprintf("%d follow streams are open, the most berth serves at once; close one or try again later", a.maxFollows))
	}
	return func() { a.follows.Add(-1) }, nil
}

// flushFollow flushes a follow stream, giving the client a.followWrite to
// take it.
func (a *adminAPI) flushFollow(rc *http.ResponseController) error {
	_ = rc.SetWriteDeadline(time.Now().Add(a.followWrite))
	return rc.Flush()
}

// apiWriteTimeout bounds writing one admin API response.
const apiWriteTimeout = time.Minute

// maxLogTail bounds how many lines one logs request may ask for.
const maxLogTail = 10000

// containerLogs streams the active container's output.
func (a *adminAPI) containerLogs(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	h := a.dir.Get(name)
	if h == nil {
		return apiErr(http.StatusNotFound, "unknown_challenge", "no challenge named "+quote(name))
	}
	q := r.URL.Query()
	opts := challenge.LogOptions{Tail: 200}
	if t := q.Get("tail"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || n > maxLogTail {
			return apiErr(http.StatusBadRequest, "bad_request", fmt.Sprintf("tail must be 0..%d, got %s", maxLogTail, quote(clip(t))))
		}
		opts.Tail = n
	}
	if f := q.Get("follow"); f != "" {
		b, err := strconv.ParseBool(f)
		if err != nil {
			return apiErr(http.StatusBadRequest, "bad_request", "follow must be true or false, got "+quote(f))
		}
		opts.Follow = b
	}
	id := h.Status().ContainerID
	if id == "" {
		return apiErr(http.StatusConflict, "no_container", "challenge "+name+" has no container")
	}
	if opts.Follow {
		release, err := a.startFollow(w)
		if err != nil {
			return err
		}
		defer release()
	}
	rc, err := a.runtime.Logs(r.Context(), id, opts)
	if err != nil {
		if errors.Is(err, challenge.ErrNotFound) {
			return apiErr(http.StatusConflict, "no_container", "container of "+name+" is gone")
		}
		return err
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	wc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if opts.Follow {
				// Each write gets its own deadline; waiting for output does not count.
				_ = wc.SetWriteDeadline(time.Now().Add(a.followWrite))
			}
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
			if wc.Flush() != nil {
				return nil
			}
		}
		if err != nil {
			return nil
		}
	}
}

type swapRequest struct {
	Version string `json:"version"`
}

// swapChallenge starts a blue-green swap: 202 {swap_id, from, to}.
func (a *adminAPI) swapChallenge(w http.ResponseWriter, r *http.Request) error {
	var req swapRequest
	if e := decodeJSONBody(r, &req, maxJSONBody); e != nil {
		return e
	}
	if e := validateVersion(req.Version); e != nil {
		return e
	}
	return a.requestSwap(w, r, func(h *challenge.Handle) (challenge.SwapResult, error) { return h.Swap(r.Context(), req.Version) })
}

// rollbackChallenge swaps back to the previous version.
func (a *adminAPI) rollbackChallenge(w http.ResponseWriter, r *http.Request) error {
	return a.requestSwap(w, r, func(h *challenge.Handle) (challenge.SwapResult, error) { return h.Rollback(r.Context()) })
}

func (a *adminAPI) requestSwap(w http.ResponseWriter, r *http.Request, ask func(*challenge.Handle) (challenge.SwapResult, error)) error {
	name := r.PathValue("name")
	h := a.dir.Get(name)
	if h == nil {
		return apiErr(http.StatusNotFound, "unknown_challenge", "no challenge named "+quote(name))
	}
	rep, err := ask(h)
	switch {
	case errors.Is(err, challenge.ErrOwnerBusy):
		return ownerBusy(name)
	case errors.Is(err, challenge.ErrBadVersion):
		return apiErr(http.StatusBadRequest, "bad_version", err.Error())
	case errors.Is(err, challenge.ErrSwapRunning), errors.Is(err, challenge.ErrNoContainer), errors.Is(err, challenge.ErrNoPrevious):
		return apiErr(http.StatusConflict, "conflict", name+": "+err.Error())
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"swap_id": rep.ID, "from": rep.From, "to": rep.To})
	return nil
}

// putChallenge registers or updates a challenge spec (JSON, the keys of a
// config challenges entry; unset keys take the config's defaults).
func (a *adminAPI) putChallenge(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if !configs.ValidName(name) {
		return apiErr(http.StatusBadRequest, "bad_name", "challenge name "+quote(name)+" must match ^[a-z0-9][a-z0-9-]{0,62}$")
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return apiErr(http.StatusRequestEntityTooLarge, "too_large", "request body too large")
		}
		return apiErr(http.StatusBadRequest, "bad_request", "reading body: "+err.Error())
	}
	// The path names the challenge; the body may leave the name out.
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) == nil && fields["name"] == nil {
		fields["name"], _ = json.Marshal(name)
		body, _ = json.Marshal(fields)
	}
	cfg := a.agent.config()
	// No file name: nothing in the request is resolved against a directory of berth's host.
	spec, err := configs.ParseChallenge("", body, cfg.Defaults)
	if err != nil {
		return apiErr(http.StatusBadRequest, "invalid_spec", err.Error())
	}
	if spec.Name == "" {
		spec.Name = name
	}
	if spec.Name != name {
		return apiErr(http.StatusBadRequest, "invalid_spec", "name "+quote(spec.Name)+" in the body differs from the path")
	}
	if err := cfg.Agent.Policy.Check(spec.Image); err != nil {
		return apiErr(http.StatusForbidden, "policy", err.Error())
	}
	if err := cfg.CheckAPIChallenge(spec); err != nil {
		return apiErr(http.StatusBadRequest, "invalid_spec", err.Error())
	}
	existed := a.dir.Get(name) != nil
	reply := make(chan error, 1)
	if err := a.agent.ask(r.Context(), reqPut{spec: spec, reply: reply}); err != nil {
		return apiErr(http.StatusServiceUnavailable, "not_ready", err.Error())
	}
	if err := <-reply; err != nil {
		if errors.Is(err, errConfigManaged) {
			return apiErr(http.StatusConflict, "config_managed", name+" is "+err.Error())
		}
		var refused *specRefusedError
		if errors.As(err, &refused) {
			return apiErr(http.StatusBadRequest, "invalid_spec", refused.Error())
		}
		return err
	}
	status := http.StatusCreated
	if existed {
		status = http.StatusOK
	}
	h := a.dir.Get(name)
	if h == nil {
		return apiErr(http.StatusInternalServerError, "internal", "challenge registered but not listed; see berth's log")
	}
	writeJSON(w, status, h.Status())
	return nil
}

// deleteChallenge stops and removes a challenge registered over the API.
func (a *adminAPI) deleteChallenge(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	reply := make(chan error, 1)
	if err := a.agent.ask(r.Context(), reqDelete{name: name, reply: reply}); err != nil {
		return apiErr(http.StatusServiceUnavailable, "not_ready", err.Error())
	}
	switch err := <-reply; {
	case errors.Is(err, errConfigManaged):
		return apiErr(http.StatusConflict, "config_managed", name+" is "+err.Error())
	case errors.Is(err, errUnknownChallenge):
		return apiErr(http.StatusNotFound, "unknown_challenge", "no challenge named "+quote(name)+" registered over the API")
	case err != nil:
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// reload re-reads the config; an invalid one is refused whole with its errors.
func (a *adminAPI) reload(w http.ResponseWriter, r *http.Request) error {
	res, err := a.agent.Reload(r.Context())
	if err != nil {
		var cfgErr configs.Errors
		if errors.As(err, &cfgErr) {
			return apiErr(http.StatusBadRequest, "invalid_config", "config refused; the running one stays:\n"+err.Error())
		}
		if errors.Is(err, errNotReady) {
			return apiErr(http.StatusServiceUnavailable, "not_ready", err.Error())
		}
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
