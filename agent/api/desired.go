package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"berth/configs"
)

// Desired is the desired set of challenges as the API changes it. berth's
// reconciler serves one change at a time; each call returns once it has
// answered (or, for Put and Delete, once it refused to take the change).
type Desired interface {
	// Config is the config in force: PUT bodies are parsed with its
	// defaults and checked against its policy and maxima.
	Config() *configs.Config
	// Put registers or replaces a challenge spec from the API.
	Put(ctx context.Context, spec configs.Challenge) error
	// Delete stops and removes a challenge registered over the API.
	Delete(ctx context.Context, name string) error
	// Reload re-reads the config file and challenge_dirs. An invalid config
	// is refused whole with an error holding configs.Errors.
	Reload(ctx context.Context) (ReloadResult, error)
}

// Why a Desired refuses a change. Its error matches one of these with
// errors.Is; the answer carries the error's own message.
var (
	// ErrNotReady: berth cannot take changes yet (it is still starting).
	ErrNotReady = errors.New("berth is not ready for changes")
	// ErrConfigManaged: the config file declares the challenge.
	ErrConfigManaged = errors.New("declared in the config file")
	// ErrUnknownChallenge: no challenge of that name was registered over the API.
	ErrUnknownChallenge = errors.New("no such challenge")
	// ErrSpecRefused: the config in force refuses the spec.
	ErrSpecRefused = errors.New("spec refused")
)

// ReloadResult says what a reload changed: the body of POST /v1/reload.
type ReloadResult struct {
	Added   []string `json:"added"`
	Updated []string `json:"updated"`
	Removed []string `json:"removed"`
}

// putChallenge registers or updates a challenge spec (JSON, the keys of a
// config challenges entry; unset keys take the config's defaults).
func (s *server) putChallenge(w http.ResponseWriter, r *http.Request) error {
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
	cfg := s.Desired.Config()
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
	existed := s.Directory.Get(name) != nil
	switch err := s.Desired.Put(r.Context(), spec); {
	case errors.Is(err, ErrNotReady):
		return apiErr(http.StatusServiceUnavailable, "not_ready", err.Error())
	case errors.Is(err, ErrConfigManaged):
		return apiErr(http.StatusConflict, "config_managed", name+" is "+err.Error())
	case errors.Is(err, ErrSpecRefused):
		return apiErr(http.StatusBadRequest, "invalid_spec", err.Error())
	case err != nil:
		return err
	}
	status := http.StatusCreated
	if existed {
		status = http.StatusOK
	}
	h := s.Directory.Get(name)
	if h == nil {
		return apiErr(http.StatusInternalServerError, "internal", "challenge registered but not listed; see berth's log")
	}
	writeJSON(w, status, h.Status())
	return nil
}

// deleteChallenge stops and removes a challenge registered over the API.
func (s *server) deleteChallenge(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	switch err := s.Desired.Delete(r.Context(), name); {
	case errors.Is(err, ErrNotReady):
		return apiErr(http.StatusServiceUnavailable, "not_ready", err.Error())
	case errors.Is(err, ErrConfigManaged):
		return apiErr(http.StatusConflict, "config_managed", name+" is "+err.Error())
	case errors.Is(err, ErrUnknownChallenge):
		return apiErr(http.StatusNotFound, "unknown_challenge", "no challenge named "+quote(name)+" registered over the API")
	case err != nil:
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// reload re-reads the config; an invalid one is refused whole with its errors.
func (s *server) reload(w http.ResponseWriter, r *http.Request) error {
	res, err := s.Desired.Reload(r.Context())
	if err != nil {
		var cfgErr configs.Errors
		if errors.As(err, &cfgErr) {
			return apiErr(http.StatusBadRequest, "invalid_config", "config refused; the running one stays:\n"+err.Error())
		}
		if errors.Is(err, ErrNotReady) {
			return apiErr(http.StatusServiceUnavailable, "not_ready", err.Error())
		}
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
