package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"berth/agent/challenge"
)

func logEveryLevel(t *testing.T, format string, env map[string]string) []string {
	t.Helper()
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "trace", format, envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	log.Trace().Msg("t")
	log.Debug().Msg("d")
	log.Info().Msg("i")
	log.Warn().Msg("w")
	log.Error().Err(errors.New("boom")).Msg("e")
	log.Log().Msg("n")
	return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
}

// TestJournalPriorities: with JOURNAL_STREAM set, every line starts with
// the sd-daemon priority of its level, and the rest of a JSON line is
// still JSON.
func TestJournalPriorities(t *testing.T) {
	want := []string{"<7>", "<7>", "<6>", "<4>", "<3>", "<6>"}
	for _, format := range []string{"json", "console"} {
		t.Run(format, func(t *testing.T) {
			lines := logEveryLevel(t, format, map[string]string{"JOURNAL_STREAM": "8:12345"})
			if len(lines) != len(want) {
				t.Fatalf("got %d lines, want %d: %q", len(lines), len(want), lines)
			}
			for i, line := range lines {
				rest, ok := strings.CutPrefix(line, want[i])
				if !ok {
					t.Errorf("line %d %q: want prefix %s", i, line, want[i])
					continue
				}
				if strings.HasPrefix(rest, "<") {
					t.Errorf("line %d %q: prefix twice", i, line)
				}
				if format == "json" {
					var m map[string]any
					if err := json.Unmarshal([]byte(rest), &m); err != nil {
						t.Errorf("line %d %q after the prefix is not JSON: %v", i, rest, err)
					}
				}
			}
		})
	}
}

func TestNoJournalNoPriorities(t *testing.T) {
	for _, format := range []string{"json", "console"} {
		for i, line := range logEveryLevel(t, format, nil) {
			if strings.HasPrefix(line, "<") {
				t.Errorf("%s line %d %q has a priority without JOURNAL_STREAM", format, i, line)
			}
			if format == "json" && !json.Valid([]byte(line)) {
				t.Errorf("json line %d %q is not JSON", i, line)
			}
		}
	}
}

func TestJournalPriorityLevels(t *testing.T) {
	for l, want := range map[zerolog.Level]string{zerolog.PanicLevel: "<2>", zerolog.FatalLevel: "<2>",
		zerolog.ErrorLevel: "<3>", zerolog.WarnLevel: "<4>", zerolog.InfoLevel: "<6>", zerolog.NoLevel: "<6>",
		zerolog.DebugLevel: "<7>", zerolog.TraceLevel: "<7>"} {
		if got := journalPriority(l); got != want {
			t.Errorf("journalPriority(%v) = %s, want %s", l, got, want)
		}
	}
}

func setTerminal(t *testing.T, tty bool) {
	t.Helper()
	saved := isTerminal
	isTerminal = func(io.Writer) bool { return tty }
	t.Cleanup(func() { isTerminal = saved })
}

// TestConsoleColour: colours only on a terminal and without NO_COLOR, and
// never under the journal's priority prefixes either way.
func TestConsoleColour(t *testing.T) {
	tests := []struct {
		name   string
		tty    bool
		env    map[string]string
		colour bool
	}{
		{"pipe", false, nil, false},
		{"terminal", true, nil, true},
		{"terminal with NO_COLOR", true, map[string]string{"NO_COLOR": "1"}, false},
		{"terminal with empty NO_COLOR", true, map[string]string{"NO_COLOR": ""}, true},
		{"pipe to the journal", false, map[string]string{"JOURNAL_STREAM": "8:1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setTerminal(t, tt.tty)
			out := strings.Join(logEveryLevel(t, "console", tt.env), "\n")
			if got := strings.Contains(out, "\x1b["); got != tt.colour {
				t.Errorf("ANSI escapes %v, want %v in %q", got, tt.colour, out)
			}
		})
	}
}

// TestConsoleToBufferHasNoColour uses the real terminal check.
func TestConsoleToBufferHasNoColour(t *testing.T) {
	out := strings.Join(logEveryLevel(t, "console", nil), "\n")
	if strings.Contains(out, "\x1b") {
		t.Errorf("console output to a buffer has escapes: %q", out)
	}
	if !strings.Contains(out, "boom") {
		t.Errorf("console output lost the error: %q", out)
	}
}

func TestIsTerminalPipeAndFile(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for name, out := range map[string]io.Writer{"pipe": w, "file": f, "buffer": &bytes.Buffer{}} {
		if isTerminal(out) {
			t.Errorf("%s is taken for a terminal", name)
		}
	}
}

// TestExitEventIsOneLogLine: the last output an exit event quotes keeps
// the event on one line of the console log and the journal.
func TestExitEventIsOneLogLine(t *testing.T) {
	code := 1
	ev := challenge.Event{Type: challenge.EventExited, ExitCode: &code,
		Message: "container exited with code 1; last output: " + challenge.OneLine("listening\r\npanic:\tboom\n")}
	for _, format := range []string{"json", "console"} {
		var buf bytes.Buffer
		log, err := NewLogger(&buf, "info", format, envOf(map[string]string{"JOURNAL_STREAM": "8:1"}))
		if err != nil {
			t.Fatal(err)
		}
		logEvent(log, ev)
		out := buf.String()
		if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "<4>") {
			t.Errorf("%s: exit event logged as %q, want one <4> line", format, out)
		}
		if !strings.Contains(out, `listening\\npanic:\\tboom`) && !strings.Contains(out, `listening\npanic:\tboom`) {
			t.Errorf("%s: %q lost the escaped output", format, out)
		}
	}
}
