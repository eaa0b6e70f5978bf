package agent

import (
	"fmt"
	"io"
	"time"

	"berth/statestore"

	"github.com/rs/zerolog"
)

// Log field names, shared by every line about a challenge.
const (
	fieldChallenge   = "challenge"
	fieldContainerID = "container_id"
	fieldVersion     = "version"
	fieldSlot        = "slot"
	fieldEvent       = "event"
	fieldComponent   = "component"
)

// NewLogger builds the process logger: JSON lines, or console output for humans.
func NewLogger(w io.Writer, level, format string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Nop(), fmt.Errorf("log level %q: use trace, debug, info, warn or error", level)
	}
	switch format {
	case "", "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	default:
		return zerolog.Nop(), fmt.Errorf("log format %q: use json or console", format)
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// logEvent writes one JSON line per event with its cause fields.
func logEvent(log zerolog.Logger, ev statestore.Event) {
	level := zerolog.InfoLevel
	switch ev.Type {
	case "exited", "oom_killed", "restarting", "start_failed", "pull_failed", "docker_disconnected":
		level = zerolog.WarnLevel
	case "gave_up", "digest_mismatch":
		level = zerolog.ErrorLevel
	}
	e := log.WithLevel(level).Str(fieldEvent, ev.Type)
	if ev.Seq != 0 {
		e = e.Uint64("seq", ev.Seq)
	}
	if ev.ContainerID != "" {
		e = e.Str(fieldContainerID, shortID(ev.ContainerID))
	}
	if ev.Version != "" {
		e = e.Str(fieldVersion, ev.Version)
	}
	if ev.ExitCode != nil {
		e = e.Int("exit_code", *ev.ExitCode)
	}
	if ev.OOM {
		e = e.Bool("oom", true)
	}
	if ev.From != "" {
		e = e.Str("from", ev.From)
	}
	if ev.To != "" {
		e = e.Str("to", ev.To)
	}
	if ev.Attempt != 0 {
		e = e.Int("attempt", ev.Attempt).Int64("delay_ms", ev.DelayMS)
	}
	if ev.Error != "" {
		e = e.Str("error", ev.Error)
	}
	e.Msg(ev.Message)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
