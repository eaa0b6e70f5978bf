package challenge

import (
	"strings"
	"unicode/utf8"
)

// Printable returns s without anything a terminal or chat client would act
// on: ANSI/VT escape sequences (CSI, OSC such as window titles and
// hyperlinks, DCS and the like), C0 and C1 control characters, DEL, bidi
// override and isolate characters, and invalid UTF-8. Tabs and newlines are
// kept when multiline is set and become spaces otherwise; a carriage return
// is dropped, so "\r\n" becomes "\n" and nothing can overwrite a line.
//
// Container output and probe bodies are written by the challenge, not by
// berth: they pass through Printable before reaching a terminal, an event
// message or a webhook.
func Printable(s string, multiline bool) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			// invalid UTF-8: dropped
		case r == 0x1b:
			size = escapeLen(s[i:])
		case r == '\n' || r == '\t':
			if multiline {
				b.WriteByte(byte(r))
			} else {
				b.WriteByte(' ')
			}
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f):
			// control character: dropped
		case (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
			// bidi override or isolate: dropped
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// OneLine is Printable text that stays on one line: a newline becomes the
// two characters \n and a tab the two characters \t, so quoted container
// output keeps its line breaks visibly while an event stays one log line
// and one row of berth events. It is for reading, not for parsing back: a
// backslash in the text is left as it is.
func OneLine(s string) string {
	return lineEscaper.Replace(Printable(s, true))
}

var lineEscaper = strings.NewReplacer("\n", `\n`, "\t", `\t`)

// escapeLen is the length of the escape sequence at the start of s, which
// begins with ESC. An unterminated string sequence runs to the end of the
// line; a newline is never part of a sequence.
func escapeLen(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	switch s[1] {
	case '[': // CSI: parameters, intermediates, one final byte
		j := 2
		for j < len(s) && s[j] >= 0x20 && s[j] <= 0x3f {
			j++
		}
		for j < len(s) && s[j] >= 0x20 && s[j] <= 0x2f {
			j++
		}
		if j < len(s) && s[j] >= 0x40 && s[j] <= 0x7e {
			j++
		}
		return j
	case ']', 'P', 'X', '^', '_': // OSC, DCS, SOS, PM, APC: up to BEL or ST
		for j := 2; j < len(s); j++ {
			switch {
			case s[j] == 0x07:
				return j + 1
			case s[j] == 0x1b && j+1 < len(s) && s[j+1] == '\\':
				return j + 2
			case s[j] == '\n':
				return j
			}
		}
		return len(s)
	}
	// Other escapes: intermediates, then one final byte (ESC c, ESC ( B).
	j := 1
	for j < len(s) && s[j] >= 0x20 && s[j] <= 0x2f {
		j++
	}
	if j < len(s) && s[j] >= 0x30 && s[j] <= 0x7e {
		j++
	}
	return j
}
