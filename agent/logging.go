package agent

import (
	"bytes"
	"fmt"
	"io"
	"os"
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

// NewLogger builds the process logger: JSON lines, or console output for
// humans. getenv (nil = os.Getenv) is read for two things:
//
//   - JOURNAL_STREAM, which systemd sets when stdout goes to the journal:
//     every line then starts with its sd-daemon priority ("<3>" error,
//     "<4>" warn, "<6>" info, "<7>" debug and trace), which journald strips
//     and keeps as the entry's priority, so journalctl -p err works.
//   - NO_COLOR: console output is coloured only when w is a terminal and
//     NO_COLOR is unset or empty (https://no-color.org).
func NewLogger(w io.Writer, level, format string, getenv func(string) string) (zerolog.Logger, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Nop(), fmt.Errorf("log level %q: use trace, debug, info, warn or error", level)
	}
	var console *zerolog.ConsoleWriter
	switch format {
	case "", "json":
	case "console":
		console = &zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339,
			NoColor: getenv("NO_COLOR") != "" || !isTerminal(w)}
	default:
		return zerolog.Nop(), fmt.Errorf("log format %q: use json or console", format)
	}
	var out io.Writer = w
	switch {
	case getenv("JOURNAL_STREAM") != "":
		out = journalWriter{out: w, console: console}
	case console != nil:
		out = *console
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger(), nil
}

// isTerminal reports whether w is a character device, which is what a
// terminal is to stat; a test replaces it.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// journalWriter starts each line with the sd-daemon priority of its level
// (see sd-daemon(3)); console, when set, formats the line first. Prefix and
// line go out in one write, so concurrent lines cannot split them.
type journalWriter struct {
	out     io.Writer
	console *zerolog.ConsoleWriter
}

var _ zerolog.LevelWriter = journalWriter{}

// journalPriority is the sd-daemon prefix of a zerolog level.
func journalPriority(l zerolog.Level) string {
	switch l {
	case zerolog.PanicLevel, zerolog.FatalLevel:
		return "<2>" // SD_CRIT
	case zerolog.ErrorLevel:
		return "<3>" // SD_ERR
	case zerolog.WarnLevel:
		return "<4>" // SD_WARNING
	case zerolog.DebugLevel, zerolog.TraceLevel:
		return "<7>" // SD_DEBUG
	default:
		return "<6>" // SD_INFO, also for lines without a level
	}
}

func (j journalWriter) Write(p []byte) (int, error) { return j.WriteLevel(zerolog.NoLevel, p) }

func (j journalWriter) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	var buf bytes.Buffer
	buf.Grow(len(p) + 3)
	buf.WriteString(journalPriority(l))
	if j.console != nil {
		cw := *j.console
		cw.Out = &buf
		if _, err := cw.Write(p); err != nil {
			return 0, err
		}
	} else {
		buf.Write(p)
	}
	if _, err := j.out.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
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
