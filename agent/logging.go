package agent

import (
	"fmt"
	"io"
	"time"

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
