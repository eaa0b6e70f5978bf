package agent

import (
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"berth/agent/challenge"
)

// Log field names, as the lifecycle names them.
const (
	fieldChallenge   = challenge.FieldChallenge
	fieldContainerID = challenge.FieldContainerID
	fieldComponent   = challenge.FieldComponent
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
func logEvent(log zerolog.Logger, ev challenge.Event) {
	level := zerolog.InfoLevel
	switch ev.Type {
	case challenge.EventExited, challenge.EventOOMKilled, challenge.EventRestarting, challenge.EventStartFailed,
		challenge.EventPullFailed, challenge.EventDockerDisconnected:
		level = zerolog.WarnLevel
	case challenge.EventGaveUp, challenge.EventDigestMismatch:
		level = zerolog.ErrorLevel
	}
	e := log.WithLevel(level).Str(challenge.FieldEvent, ev.Type)
	if ev.Seq != 0 {
		e = e.Uint64(challenge.FieldSeq, ev.Seq)
	}
	if ev.ContainerID != "" {
		e = e.Str(fieldContainerID, challenge.ShortID(ev.ContainerID))
	}
	if ev.Version != "" {
		e = e.Str(challenge.FieldVersion, ev.Version)
	}
	if ev.ExitCode != nil {
		e = e.Int(challenge.FieldExitCode, *ev.ExitCode)
	}
	if ev.OOM {
		e = e.Bool(challenge.FieldOOM, true)
	}
	if ev.From != "" {
		e = e.Str(challenge.FieldFrom, ev.From)
	}
	if ev.To != "" {
		e = e.Str(challenge.FieldTo, ev.To)
	}
	if ev.Attempt != 0 {
		e = e.Int(challenge.FieldAttempt, ev.Attempt).Int64(challenge.FieldDelayMS, ev.DelayMS)
	}
	if ev.Error != "" {
		e = e.Str(challenge.FieldError, ev.Error)
	}
	e.Msg(ev.Message)
}
