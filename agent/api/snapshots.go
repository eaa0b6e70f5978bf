package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"berth/agent/challenge"
)

// Snapshots lists a challenge's stored state snapshots, newest first.
type Snapshots interface {
	Snapshots(name string) ([]challenge.Snapshot, error)
}

// SnapshotView is one stored snapshot as the API shows it; never its bytes.
type SnapshotView struct {
	Seq     uint64    `json:"seq"`
	Version string    `json:"version"`
	Bytes   int       `json:"bytes"`
	SHA256  string    `json:"sha256"`
	At      time.Time `json:"at"`
}

func snapshotView(s challenge.Snapshot) SnapshotView {
	return SnapshotView{Seq: s.Seq, Version: s.Version, Bytes: s.Bytes, SHA256: s.SHA256, At: s.At}
}

// listSnapshots answers GET /v1/challenges/{name}/snapshots.
func (s *server) listSnapshots(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if s.Directory.Get(name) == nil {
		return unknownChallenge(name)
	}
	list, err := s.Snapshots.Snapshots(name)
	if err != nil {
		return err
	}
	out := make([]SnapshotView, 0, len(list))
	for _, snap := range list {
		out = append(out, snapshotView(snap))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// saveSnapshot answers POST /v1/challenges/{name}/snapshots: export now,
// 201 with the stored record.
func (s *server) saveSnapshot(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	h := s.Directory.Get(name)
	if h == nil {
		return unknownChallenge(name)
	}
	snap, err := h.SaveState(r.Context())
	if err != nil {
		return stateError(name, err)
	}
	writeJSON(w, http.StatusCreated, snapshotView(snap))
	return nil
}

// restoreSnapshot answers POST /v1/challenges/{name}/snapshots/{seq}/restore.
func (s *server) restoreSnapshot(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	h := s.Directory.Get(name)
	if h == nil {
		return unknownChallenge(name)
	}
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		return apiErr(http.StatusBadRequest, "bad_request", "snapshot number "+quote(clip(r.PathValue("seq")))+" must be a whole number from 1")
	}
	if err := h.RestoreState(r.Context(), seq); err != nil {
		return stateError(name, err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "restored": seq})
	return nil
}

// stateError maps a refused or failed state request to an answer; the
// messages name rules and statuses, never the state itself.
func stateError(name string, err error) error {
	switch {
	case errors.Is(err, challenge.ErrOwnerBusy):
		return ownerBusy(name)
	case errors.Is(err, challenge.ErrNoState):
		return apiErr(http.StatusConflict, "no_state", name+": "+err.Error()+"; set state.export and state.import")
	case errors.Is(err, challenge.ErrNotServing), errors.Is(err, challenge.ErrStateBusy):
		return apiErr(http.StatusConflict, "conflict", name+": "+err.Error())
	case errors.Is(err, challenge.ErrNotFound):
		return apiErr(http.StatusNotFound, "no_snapshot", name+": no such snapshot")
	case errors.Is(err, challenge.ErrSnapshotCorrupt):
		return apiErr(http.StatusConflict, "corrupt", name+": "+challenge.ErrSnapshotCorrupt.Error())
	}
	return apiErr(http.StatusBadGateway, "state_failed", name+": "+err.Error())
}
