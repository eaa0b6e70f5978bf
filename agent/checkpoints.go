package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"berth/agent/api"
	"berth/agent/challenge"
	"berth/statestore"
	"berth/supervisor"
)

// checkpointer writes store checkpoints on a timer, on request and at shutdown.
type checkpointer struct {
	store    *statestore.Store
	dir      string
	keep     int
	interval time.Duration
	clock    supervisor.Clock
	log      zerolog.Logger
	lastSeq  atomic.Uint64 // sequence of the newest checkpoint written or found
	duration prometheus.Histogram
	// newest is when the newest valid checkpoint found at start was written
	// (zero if none); lastSuccess, if set, holds when the last one was.
	newest      time.Time
	lastSuccess prometheus.Gauge
}

func newCheckpointer(store *statestore.Store, dataDir string, keep int, interval time.Duration, clock supervisor.Clock, log zerolog.Logger) *checkpointer {
	cp := &checkpointer{store: store, dir: filepath.Join(dataDir, "checkpoints"), keep: keep, interval: interval, clock: clock, log: log}
	if entries, err := statestore.ListCheckpoints(cp.dir); err == nil && len(entries) > 0 {
		cp.lastSeq.Store(entries[0].Sequence)
		for _, e := range entries {
			if e.Err == nil {
				cp.newest = e.Created
				break
			}
		}
	}
	return cp
}

// reportLastSuccess makes g hold the time of the last checkpoint written,
// starting from the newest one found, if any. Call it before Serve.
func (cp *checkpointer) reportLastSuccess(g prometheus.Gauge) {
	cp.lastSuccess = g
	if !cp.newest.IsZero() {
		g.Set(float64(cp.newest.UnixNano()) / 1e9)
	}
}

// Serve writes a checkpoint every interval until ctx ends.
func (cp *checkpointer) Serve(ctx context.Context) error {
	for supervisor.Sleep(ctx, cp.clock, cp.interval) {
		if _, err := cp.write("interval"); err != nil {
			cp.log.Error().Err(err).Msg("periodic checkpoint failed")
		}
	}
	return nil
}

// write takes one checkpoint and records it in the event log.
func (cp *checkpointer) write(reason string) (statestore.CheckpointInfo, error) {
	start := time.Now()
	info, err := cp.store.WriteCheckpoint(cp.dir, cp.keep)
	if err != nil {
		return info, fmt.Errorf("checkpoint to %s: %w", cp.dir, err)
	}
	cp.lastSeq.Store(info.Sequence)
	took := time.Since(start)
	if cp.duration != nil {
		cp.duration.Observe(took.Seconds())
	}
	if cp.lastSuccess != nil {
		created := info.Created
		if created.IsZero() {
			created = time.Now()
		}
		cp.lastSuccess.Set(float64(created.UnixNano()) / 1e9)
	}
	ev := statestore.Event{Type: challenge.EventCheckpointCreated, Message: fmt.Sprintf("checkpoint %d (%s, %d bytes) written in %s",
		info.Sequence, reason, info.Bytes, took.Round(time.Millisecond))}
	if saved, err := cp.store.AppendEvent(ev); err == nil {
		ev = saved
	}
	logEvent(cp.log, challenge.Event(ev))
	return info, nil
}

// List is GET /v1/checkpoints: the files found, newest first, the
// unreadable ones too.
func (cp *checkpointer) List() ([]api.CheckpointEntry, error) {
	entries, err := statestore.ListCheckpoints(cp.dir)
	if err != nil {
		return nil, err
	}
	out := make([]api.CheckpointEntry, 0, len(entries))
	for _, e := range entries {
		item := api.CheckpointEntry{CheckpointInfo: apiCheckpointInfo(e.CheckpointInfo), Valid: e.Err == nil}
		if e.Err != nil {
			item.Error = e.Err.Error()
		}
		out = append(out, item)
	}
	return out, nil
}

// Create is POST /v1/checkpoints: one checkpoint now.
func (cp *checkpointer) Create() (api.CheckpointInfo, error) {
	info, err := cp.write("request")
	return apiCheckpointInfo(info), err
}

func apiCheckpointInfo(i statestore.CheckpointInfo) api.CheckpointInfo {
	return api.CheckpointInfo{Path: i.Path, Sequence: i.Sequence, Created: i.Created, Bytes: i.Bytes, SHA256: i.SHA256, Events: i.Events}
}

// openStore opens the Badger store under dataDir/state. When that directory
// is missing but checkpoints exist, or it cannot be opened, the newest valid
// checkpoint is restored first; the broken directory is kept aside.
func openStore(dataDir string, log zerolog.Logger) (*statestore.Store, error) {
	stateDir := filepath.Join(dataDir, "state")
	ckptDir := filepath.Join(dataDir, "checkpoints")
	_, statErr := os.Stat(stateDir)
	missing := errors.Is(statErr, os.ErrNotExist)
	if missing {
		entries, _ := statestore.ListCheckpoints(ckptDir)
		if len(entries) == 0 {
			return statestore.Open(stateDir, statestore.Options{}) // a fresh install
		}
		log.Warn().Str("dir", stateDir).Msg("state store is missing; restoring the newest valid checkpoint")
		if err := restoreNewest(ckptDir, stateDir, log); err != nil {
			return nil, fmt.Errorf("state store %s is missing and cannot be restored: %w", stateDir, err)
		}
		return statestore.Open(stateDir, statestore.Options{})
	}
	store, err := statestore.Open(stateDir, statestore.Options{})
	if err == nil || errors.Is(err, statestore.ErrLocked) {
		return store, err
	}
	log.Error().Err(err).Str("dir", stateDir).Msg("state store is unreadable; restoring the newest valid checkpoint")
	aside := fmt.Sprintf("%s.unreadable-%d", stateDir, time.Now().Unix())
	if _, cerr := statestore.NewestValidCheckpoint(ckptDir); cerr != nil {
		return nil, fmt.Errorf("%w; no checkpoint to restore from (%v): move %s aside to start empty and re-adopt containers by their labels", err, cerr, stateDir)
	}
	if rerr := os.Rename(stateDir, aside); rerr != nil {
		return nil, fmt.Errorf("%w; moving it aside: %v", err, rerr)
	}
	if rerr := restoreNewest(ckptDir, stateDir, log); rerr != nil {
		return nil, fmt.Errorf("%w; restoring: %v", err, rerr)
	}
	log.Warn().Str("kept", aside).Msg("unreadable state store kept aside")
	return statestore.Open(stateDir, statestore.Options{})
}

func restoreNewest(ckptDir, stateDir string, log zerolog.Logger) error {
	info, err := statestore.NewestValidCheckpoint(ckptDir)
	if err != nil {
		return err
	}
	if _, err := statestore.RestoreCheckpoint(info.Path, stateDir); err != nil {
		return err
	}
	log.Warn().Str("checkpoint", info.Path).Uint64("sequence", info.Sequence).Time("created", info.Created).Msg("state restored from checkpoint")
	return nil
}
