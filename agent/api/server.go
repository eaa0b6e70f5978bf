package api

import (
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"berth/agent/challenge"
)

// Defaults of the follow stream limits in Options.
const (
	DefaultMaxFollowStreams   = 64
	DefaultFollowWriteTimeout = time.Minute
)

// Options are what the admin API serves from. Directory, Runtime, Events,
// Ready and Health are required; a nil Desired, Checkpoints or Metrics
// leaves its routes out (they answer 404 not_found).
type Options struct {
	// Directory lists the challenges; restart, swap and rollback go to
	// their owners through its handles.
	Directory *challenge.Directory
	// Runtime reads a challenge's container logs.
	Runtime challenge.Runtime
	// Events is the event log behind /v1/events.
	Events EventLog
	// Desired serves PUT and DELETE /v1/challenges/{name} and /v1/reload.
	Desired Desired
	// Checkpoints serves /v1/checkpoints.
	Checkpoints Checkpoints
	// Snapshots lists stored state snapshots; nil leaves their paths out.
	Snapshots Snapshots
	// Ready answers /readyz: whether berth is ready, and the state of each
	// component. A component "agent" reading "draining" reports draining.
	Ready func() (ok bool, components map[string]string)
	// Health answers /v1/health.
	Health func() HealthReport
	// Metrics serves /metrics, behind the token when one is set.
	Metrics http.Handler
	// Token is the bearer token every /v1 route (and /metrics) requires;
	// "" turns authentication off (a loopback listener only).
	Token string
	Log   zerolog.Logger

	// Follow streams (events and logs with follow=true) hold a connection
	// and a goroutine each for as long as the client stays: at most
	// MaxFollowStreams run at once, and a client must take each write
	// within FollowWriteTimeout. Zero means the defaults above.
	MaxFollowStreams   int
	FollowWriteTimeout time.Duration
}

// New returns the admin API's handler. Serve it with read, header and idle
// timeouts; each response's write deadline is set here.
func New(opts Options) http.Handler {
	return newServer(opts).routes()
}

// server is the admin API. Apart from the count of open follow streams it
// holds nothing that changes; every request reads through its Options.
type server struct {
	Options
	follows atomic.Int64 // follow streams open, at most MaxFollowStreams
}

func newServer(opts Options) *server {
	opts.MaxFollowStreams = cmp.Or(opts.MaxFollowStreams, DefaultMaxFollowStreams)
	opts.FollowWriteTimeout = cmp.Or(opts.FollowWriteTimeout, DefaultFollowWriteTimeout)
	return &server{Options: opts}
}

// apiHandler serves one route; a returned error is rendered centrally.
type apiHandler func(w http.ResponseWriter, r *http.Request) error

// writeTimeout bounds writing one admin API response; follow streams set
// their own deadline for each write.
const writeTimeout = time.Minute

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.Metrics != nil {
		// A configured token protects metrics too; without one (loopback only) they are open.
		mux.Handle("GET /metrics", s.handle(func(w http.ResponseWriter, r *http.Request) error {
			s.Metrics.ServeHTTP(w, r)
			return nil
		}))
	}
	mux.Handle("GET /v1/health", s.handle(s.getHealth))
	mux.Handle("GET /v1/challenges", s.handle(s.listChallenges))
	mux.Handle("GET /v1/challenges/{name}", s.handle(s.getChallenge))
	mux.Handle("GET /v1/events", s.handle(s.events))
	mux.Handle("GET /v1/probes", s.handle(s.listProbes))
	mux.Handle("GET /v1/challenges/{name}/probes", s.handle(s.challengeProbes))
	mux.Handle("POST /v1/challenges/{name}/restart", s.handle(s.restartChallenge))
	mux.Handle("GET /v1/challenges/{name}/logs", s.handle(s.containerLogs))
	mux.Handle("POST /v1/challenges/{name}/swap", s.handle(s.swapChallenge))
	if s.Desired != nil {
		mux.Handle("PUT /v1/challenges/{name}", s.handle(s.putChallenge))
		mux.Handle("DELETE /v1/challenges/{name}", s.handle(s.deleteChallenge))
		mux.Handle("POST /v1/reload", s.handle(s.reload))
	}
	mux.Handle("POST /v1/challenges/{name}/rollback", s.handle(s.rollbackChallenge))
	if s.Snapshots != nil {
		mux.Handle("GET /v1/challenges/{name}/snapshots", s.handle(s.listSnapshots))
		mux.Handle("POST /v1/challenges/{name}/snapshots", s.handle(s.saveSnapshot))
		mux.Handle("POST /v1/challenges/{name}/snapshots/{seq}/restore", s.handle(s.restoreSnapshot))
	}
	if s.Checkpoints != nil {
		mux.Handle("GET /v1/checkpoints", s.handle(s.listCheckpoints))
		mux.Handle("POST /v1/checkpoints", s.handle(s.createCheckpoint))
	}
	s.uiRoutes(mux)
	mux.Handle("/v1/", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		return apiErr(http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+clip(r.URL.Path))
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+clip(r.URL.Path))
	})
	return guardBrowsers(mux, s.Token != "")
}

// handle applies auth, the name check and the body limit, and renders
// errors and panics centrally.
func (s *server) handle(h apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.Log.Error().Interface("panic", v).Str("stack", string(debug.Stack())).Str("path", r.URL.Path).Msg("admin api handler panicked")
				writeJSONError(w, http.StatusInternalServerError, "internal", "internal error; see berth's log")
			}
		}()
		// A client that stops reading cannot hold a connection for ever;
		// follow streams lift this deadline themselves.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(writeTimeout))
		err := s.authorize(r)
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
			s.Log.Error().Err(err).Str("path", r.URL.Path).Msg("admin api request failed")
			apiError = apiErr(http.StatusInternalServerError, "internal", "internal error; see berth's log")
		}
		writeJSONError(w, apiError.Status, apiError.Code, apiError.Message)
	})
}

func (s *server) authorize(r *http.Request) error {
	if s.Token == "" {
		return nil
	}
	if _, bearer := r.Header["Authorization"]; !bearer {
		return s.sessionAuth(r) // the status page's cookie
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	// Comparing digests keeps the token's length out of the timing too.
	gotSum, wantSum := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(s.Token))
	if !ok || subtle.ConstantTimeCompare(gotSum[:], wantSum[:]) != 1 {
		return apiErr(http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token")
	}
	return nil
}
