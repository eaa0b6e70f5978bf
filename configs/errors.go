package configs

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// FieldError is one problem in a configuration, located as precisely as known.
type FieldError struct {
	File string `json:"file,omitempty"` // empty for specs that did not come from a file
	Line int    `json:"line,omitempty"` // 1-based; 0 when unknown
	Key  string `json:"key,omitempty"`  // dotted path such as challenges[1].health.interval; empty for syntax errors
	Msg  string `json:"message"`
}

// Error renders "file:line: key: msg", leaving out the parts that are unknown.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one configuration; it is never empty when
// returned as an error.
type Errors []*FieldError

// Error renders one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each FieldError to errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// err returns es as an error, or a nil interface when there is nothing to report
// (a typed nil would compare non-nil).
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// sortByPosition orders errors as they appear in their files so a reader can
// walk down the file; errors without a line keep their order at the end.
func (es Errors) sortByPosition() {
	slices.SortStableFunc(es, func(a, b *FieldError) int {
		if c := cmp.Compare(a.File, b.File); c != 0 {
			return c
		}
		la, lb := a.Line, b.Line
		if la == 0 {
			la = int(^uint(0) >> 1)
		}
		if lb == 0 {
			lb = int(^uint(0) >> 1)
		}
		return cmp.Compare(la, lb)
	})
}

// checker collects validation problems under dotted keys.
type checker struct {
	errs Errors
}

func (c *checker) add(key, format string, args ...any) {
	c.errs = append(c.errs, &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// join builds a dotted key; an empty prefix is the root.
func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func index(prefix string, i int) string {
	return fmt.Sprintf("%s[%d]", prefix, i)
}

// parentKey strips the last ".name" or "[i]" segment.
func parentKey(key string) string {
	i := strings.LastIndexAny(key, ".[")
	if i < 0 {
		return ""
	}
	return key[:i]
}

// within reports whether key is root or lies below it.
func within(key, root string) bool {
	if key == root {
		return true
	}
	return strings.HasPrefix(key, root) && len(key) > len(root) && (key[len(root)] == '.' || key[len(root)] == '[')
}
