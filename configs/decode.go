package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// decoder walks a yaml.Node tree onto pre-filled structs, so keys absent from
// the file keep their inherited values. Walking nodes ourselves (rather than
// yaml's reflection decoder) gives strict keys and a line for every error.
type decoder struct {
	file  string
	errs  Errors
	lines map[string]int  // dotted key → line where it was set
	bad   map[string]bool // keys whose value failed to decode
	// merges counts merge-key expansions; anchors let a small file expand
	// exponentially, so the count is capped.
	merges int
}

const (
	maxMerges     = 1000
	maxMergeDepth = 16
)

var (
	durationType    = reflect.TypeFor[time.Duration]()
	byteSizeType    = reflect.TypeFor[ByteSize]()
	autoUpdateType  = reflect.TypeFor[AutoUpdate]()
	yamlLineRE      = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	unknownAnchorRE = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)
)

// Keys that Docker has but berth refuses; naming the reason beats "unknown key".
var refusedKeys = map[string]string{
	"privileged":          "privileged containers are refused",
	"cap_add":             "adding capabilities is refused; berth only drops them",
	"network_mode":        "host networking is refused; challenges join agent.network",
	"host_network":        "host networking is refused; challenges join agent.network",
	"pid":                 "sharing host namespaces is refused",
	"pid_mode":            "sharing host namespaces is refused",
	"ipc":                 "sharing host namespaces is refused",
	"ipc_mode":            "sharing host namespaces is refused",
	"binds":               "host bind mounts are refused; use named volumes",
	"bind":                "host bind mounts are refused; use named volumes",
	"mounts":              "host bind mounts are refused; use named volumes",
	"devices":             "host devices are refused",
	"device_cgroup_rules": "host devices are refused",
	"userns_mode":         "sharing host namespaces is refused",
	"uts":                 "sharing host namespaces is refused",
	"uts_mode":            "sharing host namespaces is refused",
	"volumes_from":        "mounting another container's volumes is refused; use named volumes",
	"security_opt":        "custom seccomp, AppArmor and label options are refused; see security.no_new_privileges",
	"cgroup_parent":       "choosing the cgroup parent is refused; resources sets the limits",
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, lines: map[string]int{}, bad: map[string]bool{}}
}

func (d *decoder) fail(n *yaml.Node, key, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{File: d.file, Line: n.Line, Key: key, Msg: fmt.Sprintf(format, args...)})
	d.bad[key] = true
}

// parse returns the document's root node, nil for an empty document, and
// false when the YAML itself is broken.
func (d *decoder) parse(data []byte) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true
		}
		d.syntax(err, data)
		return nil, false
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.syntax(err, data)
		return nil, false
	case !isNull(docRoot(&extra)):
		d.fail(&extra, "", "a second YAML document starts here; the file must hold one document")
		return nil, false
	}
	return docRoot(&doc), true
}

func docRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil
		}
		return doc.Content[0]
	}
	return doc
}

func (d *decoder) syntax(err error, data []byte) {
	msg := err.Error()
	fe := &FieldError{File: d.file, Msg: strings.TrimPrefix(msg, "yaml: ")}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		fe.Line, _ = strconv.Atoi(m[1])
		fe.Msg = m[2]
	} else {
		fe.Line = syntaxLine(data, fe.Msg)
	}
	fe.Msg = "invalid YAML: " + fe.Msg
	d.errs = append(d.errs, fe)
}

// syntaxLine locates a YAML error whose message has no line: yaml leaves it
// out for bad characters, unknown anchors and anything on the first line.
func syntaxLine(data []byte, msg string) int {
	at := -1
	if m := unknownAnchorRE.FindStringSubmatch(msg); m != nil {
		at = bytes.Index(data, []byte("*"+m[1]))
	} else if strings.Contains(msg, "UTF-8") || strings.Contains(msg, "control characters") || strings.Contains(msg, "Unicode character") {
		at = firstUnprintable(data)
	}
	if at < 0 {
		return 1
	}
	return bytes.Count(data[:at], []byte("\n")) + 1
}

// firstUnprintable returns the offset of the first byte YAML refuses to
// read (invalid UTF-8 or a control character), or -1.
func firstUnprintable(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1,
			r < 0x20 && r != '\t' && r != '\n' && r != '\r',
			r >= 0x7f && r <= 0x9f && r != 0x85,
			r == 0xfffe || r == 0xffff,
			r == 0xfeff && i > 0:
			return i
		}
		i += size
	}
	return -1
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolveAlias(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return "a scalar"
	}
}

// mergeSources returns the mappings a "<<" key pulls in, lowest precedence first.
func (d *decoder) mergeSources(v *yaml.Node, key string, depth int) []*yaml.Node {
	d.merges++
	if d.merges > maxMerges || depth > maxMergeDepth {
		d.fail(v, key, "too many or too deeply nested merge keys (<<)")
		return nil
	}
	r := resolveAlias(v)
	switch r.Kind {
	case yaml.MappingNode:
		return []*yaml.Node{r}
	case yaml.SequenceNode:
		// Earlier mappings in a merge list win, so apply them last.
		out := make([]*yaml.Node, 0, len(r.Content))
		for i := len(r.Content) - 1; i >= 0; i-- {
			m := resolveAlias(r.Content[i])
			if m.Kind != yaml.MappingNode {
				d.fail(r.Content[i], key, "merge key (<<) must refer to mappings")
				return nil
			}
			out = append(out, m)
		}
		return out
	}
	d.fail(v, key, "merge key (<<) must refer to a mapping")
	return nil
}

// pairs visits explicit key/value pairs after applying merge keys through
// merge, reporting duplicate and non-string keys.
func (d *decoder) pairs(n *yaml.Node, key string, depth int, merge func(*yaml.Node), each func(k, v *yaml.Node)) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; isMerge(k) {
			for _, m := range d.mergeSources(n.Content[i+1], key, depth+1) {
				merge(m)
			}
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if isMerge(k) {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(k, key, "keys must be plain strings, not %s", describe(resolveAlias(k)))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.fail(k, join(key, k.Value), "set twice (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		each(k, v)
	}
}

type field struct {
	name  string
	index int
}

func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		out = append(out, field{name, i})
	}
	return out
}

func fieldNames(fs []field) []string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
	}
	return names
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, key string, depth int) {
	orig := n
	n = resolveAlias(n)
	if isNull(n) {
		return // an empty section keeps what it inherited
	}
	fs := fieldsOf(v.Type())
	if n.Kind != yaml.MappingNode {
		d.fail(orig, key, "must be a mapping with keys %s, not %s", strings.Join(fieldNames(fs), ", "), describe(n))
		return
	}
	d.pairs(n, key, depth,
		func(m *yaml.Node) { d.decodeStruct(m, v, key, depth+1) },
		func(k, val *yaml.Node) {
			i := fieldIndex(fs, k.Value)
			if i < 0 {
				d.unknown(k, key, fieldNames(fs))
				return
			}
			child := join(key, k.Value)
			d.lines[child] = k.Line
			d.decodeValue(val, v.Field(i), child, depth)
		})
}

func fieldIndex(fs []field, name string) int {
	for _, f := range fs {
		if f.name == name {
			return f.index
		}
	}
	return -1
}

func (d *decoder) unknown(k *yaml.Node, parent string, valid []string) {
	msg := fmt.Sprintf("unknown key %q", k.Value)
	if why, ok := refusedKeys[k.Value]; ok {
		msg += ": " + why
	} else if s := closest(k.Value, valid); s != "" {
		msg += fmt.Sprintf(", did you mean %q?", s)
	}
	msg += fmt.Sprintf(" (valid keys: %s)", strings.Join(valid, ", "))
	d.errs = append(d.errs, &FieldError{File: d.file, Line: k.Line, Key: parent, Msg: msg})
}

// scalar returns n's text; null reports a YAML null (empty value or ~).
func (d *decoder) scalar(orig, n *yaml.Node, key, want string) (s string, null, ok bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(orig, key, "must be %s, not %s", want, describe(n))
		return "", false, false
	}
	return n.Value, isNull(n), true
}

func (d *decoder) decodeValue(n *yaml.Node, v reflect.Value, key string, depth int) {
	orig := n
	n = resolveAlias(n)
	switch v.Type() {
	case durationType:
		s, null, ok := d.scalar(orig, n, key, "a duration")
		switch {
		case !ok:
		case null:
			v.SetInt(0)
		default:
			dur, err := time.ParseDuration(strings.TrimSpace(s))
			if err != nil {
				d.fail(orig, key, "%q is not a duration (use Go syntax like 5s, 250ms)", s)
				return
			}
			v.SetInt(int64(dur))
		}
		return
	case byteSizeType:
		s, null, ok := d.scalar(orig, n, key, "a size")
		switch {
		case !ok:
		case null:
			v.SetInt(0)
		default:
			b, err := ParseByteSize(s)
			if err != nil {
				d.fail(orig, key, "%v", err)
				return
			}
			v.SetInt(int64(b))
		}
		return
	case autoUpdateType:
		if s, null, ok := d.scalar(orig, n, key, "true, false or notify"); ok {
			if null {
				s = ""
			}
			mode, err := ParseAutoUpdate(s)
			if err != nil {
				d.fail(orig, key, "%v", err)
				return
			}
			v.Set(reflect.ValueOf(mode))
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		// An optional value: null leaves it unset, so its default applies.
		if isNull(n) {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		p := reflect.New(v.Type().Elem())
		d.decodeValue(orig, p.Elem(), key, depth)
		if !d.bad[key] {
			v.Set(p)
		}
	case reflect.Struct:
		d.decodeStruct(orig, v, key, depth)
	case reflect.String:
		if s, null, ok := d.scalar(orig, n, key, "a string"); ok {
			if null {
				s = ""
			}
			v.SetString(s)
		}
	case reflect.Bool:
		s, null, ok := d.scalar(orig, n, key, "true or false")
		if !ok {
			return
		}
		switch strings.ToLower(s) {
		case "true", "yes", "on":
			v.SetBool(true)
		case "false", "no", "off":
			v.SetBool(false)
		default:
			if null {
				v.SetBool(false)
				return
			}
			d.fail(orig, key, "%q is not a boolean (use true or false)", s)
		}
	case reflect.Int, reflect.Int64:
		s, null, ok := d.scalar(orig, n, key, "a whole number")
		if !ok {
			return
		}
		if null {
			v.SetInt(0)
			return
		}
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || v.OverflowInt(i) {
			d.fail(orig, key, "%q is not a whole number", s)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		s, null, ok := d.scalar(orig, n, key, "a number")
		if !ok {
			return
		}
		if null {
			v.SetFloat(0)
			return
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.fail(orig, key, "%q is not a number", s)
			return
		}
		v.SetFloat(f)
	case reflect.Slice:
		d.decodeSlice(orig, n, v, key, depth)
	case reflect.Map:
		d.decodeMap(orig, n, v, key, depth)
	default:
		panic("configs: no decoder for " + v.Type().String())
	}
}

// decodeSlice replaces the inherited list whole, never appending to or sharing it.
func (d *decoder) decodeSlice(orig, n *yaml.Node, v reflect.Value, key string, depth int) {
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(orig, key, "must be a list, not %s", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		ik := index(key, i)
		d.lines[ik] = item.Line
		d.decodeValue(item, s.Index(i), ik, depth)
	}
	v.Set(s)
}

// decodeMap builds a fresh map so no two challenges ever share one.
func (d *decoder) decodeMap(orig, n *yaml.Node, v reflect.Value, key string, depth int) {
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(orig, key, "must be a mapping of NAME: value, not %s", describe(n))
		return
	}
	m := reflect.MakeMap(v.Type())
	d.fillMap(n, m, key, depth)
	v.Set(m)
}

func (d *decoder) fillMap(n *yaml.Node, m reflect.Value, key string, depth int) {
	d.pairs(n, key, depth,
		func(src *yaml.Node) { d.fillMap(src, m, key, depth+1) },
		func(k, val *yaml.Node) {
			child := join(key, k.Value)
			d.lines[child] = k.Line
			elem := reflect.New(m.Type().Elem()).Elem()
			d.decodeValue(val, elem, child, depth)
			m.SetMapIndex(reflect.ValueOf(k.Value), elem)
		})
}

// adopt takes validation errors, drops those about values that already failed
// to decode, and locates the rest at the nearest line known for their key.
func (d *decoder) adopt(errs Errors) {
	for _, e := range errs {
		if d.decodeFailed(e.Key) {
			continue
		}
		e.File = d.file
		e.Line = d.lineFor(e.Key)
		d.errs = append(d.errs, e)
	}
}

func (d *decoder) decodeFailed(key string) bool {
	for k := range d.bad {
		if within(key, k) {
			return true
		}
	}
	return false
}

func (d *decoder) lineFor(key string) int {
	for {
		if l, ok := d.lines[key]; ok {
			return l
		}
		if key == "" {
			return 0
		}
		key = parentKey(key)
	}
}

// result returns the sorted errors as an error, or nil.
func (d *decoder) result() error {
	d.errs.sortByPosition()
	return d.errs.err()
}

// closest suggests the valid key nearest to a misspelt one, if it is near
// enough to be a typo rather than a different word.
func closest(name string, valid []string) string {
	best, bestDist := "", 3
	for _, v := range valid {
		if dist := editDistance(name, v); dist < bestDist && 2*dist < len(name) {
			best, bestDist = v, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
