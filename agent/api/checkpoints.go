package api

import (
	"net/http"
	"time"
)

// Checkpoints lists and takes the state store's checkpoints.
type Checkpoints interface {
	// List returns the checkpoint files found, newest first, the unreadable
	// ones too.
	List() ([]CheckpointEntry, error)
	// Create writes a checkpoint now and returns it once it is on disk.
	Create() (CheckpointInfo, error)
}

// CheckpointInfo describes one checkpoint file.
type CheckpointInfo struct {
	Path     string    `json:"path"`
	Sequence uint64    `json:"sequence"`
	Created  time.Time `json:"created"`
	Bytes    int64     `json:"bytes"`  // whole file size
	SHA256   string    `json:"sha256"` // hex of the payload hash
	Events   uint64    `json:"events"` // the store's last event seq at write time
}

// CheckpointEntry is one file in GET /v1/checkpoints. When Valid is false,
// Error says why and only Path, Sequence and Bytes are meaningful.
type CheckpointEntry struct {
	CheckpointInfo
	Valid bool   `json:"valid"`
	Error string `json:"error,omitempty"`
}

func (s *server) listCheckpoints(w http.ResponseWriter, r *http.Request) error {
	list, err := s.Checkpoints.List()
	if err != nil {
		return err
	}
	if list == nil {
		list = []CheckpointEntry{}
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (s *server) createCheckpoint(w http.ResponseWriter, r *http.Request) error {
	info, err := s.Checkpoints.Create()
	if err != nil {
		return apiErr(http.StatusInternalServerError, "checkpoint_failed", err.Error())
	}
	writeJSON(w, http.StatusCreated, info)
	return nil
}
