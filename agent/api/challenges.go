package api

import (
	"errors"
	"net/http"

	"berth/agent/challenge"
)

// The challenge routes read published statuses from the directory and put
// requests into an owner's inbox through its handle; they never touch a
// challenge's state directly.

func (s *server) listChallenges(w http.ResponseWriter, r *http.Request) error {
	out := []*challenge.Status{}
	for _, h := range s.Directory.List() {
		out = append(out, h.Status())
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) getChallenge(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	h := s.Directory.Get(name)
	if h == nil {
		return unknownChallenge(name)
	}
	writeJSON(w, http.StatusOK, h.Status())
	return nil
}

// restartChallenge asks the challenge's owner to restart now.
func (s *server) restartChallenge(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	h := s.Directory.Get(name)
	if h == nil {
		return unknownChallenge(name)
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

type swapRequest struct {
	Version string `json:"version"`
}

// swapChallenge starts a blue-green swap: 202 {swap_id, from, to}.
func (s *server) swapChallenge(w http.ResponseWriter, r *http.Request) error {
	var req swapRequest
	if e := decodeJSONBody(r, &req, maxJSONBody); e != nil {
		return e
	}
	if e := validateVersion(req.Version); e != nil {
		return e
	}
	return s.requestSwap(w, r, func(h *challenge.Handle) (challenge.SwapResult, error) { return h.Swap(r.Context(), req.Version) })
}

// rollbackChallenge swaps back to the previous version.
func (s *server) rollbackChallenge(w http.ResponseWriter, r *http.Request) error {
	return s.requestSwap(w, r, func(h *challenge.Handle) (challenge.SwapResult, error) { return h.Rollback(r.Context()) })
}

func (s *server) requestSwap(w http.ResponseWriter, r *http.Request, ask func(*challenge.Handle) (challenge.SwapResult, error)) error {
	name := r.PathValue("name")
	h := s.Directory.Get(name)
	if h == nil {
		return unknownChallenge(name)
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
