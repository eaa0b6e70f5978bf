package configs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// ByteSize is a size in bytes. In YAML it is written like Docker's --memory:
// "512m", "1g", "1.5g", "64k", "1GiB" or a plain number of bytes. Every unit is
// binary (k = 1024), as in Docker, so "1g" and "1GiB" are the same.
type ByteSize int64

// Common sizes.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
	TiB ByteSize = 1 << 40
)

var sizeRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)$`)

var sizeUnits = map[string]ByteSize{
	"": 1, "b": 1,
	"k": KiB, "kb": KiB, "ki": KiB, "kib": KiB,
	"m": MiB, "mb": MiB, "mi": MiB, "mib": MiB,
	"g": GiB, "gb": GiB, "gi": GiB, "gib": GiB,
	"t": TiB, "tb": TiB, "ti": TiB, "tib": TiB,
}

// ParseByteSize parses a size such as "512m", "1.5g", "1GiB" or "1048576".
func ParseByteSize(s string) (ByteSize, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%q is not a size (use e.g. 512m, 1g, 64k or a number of bytes)", s)
	}
	unit, ok := sizeUnits[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Errorf("%q has an unknown unit %q (use b, k, m, g or t)", s, m[2])
	}
	// Integers take the exact path; floats would lose precision near 2^53.
	if n, err := strconv.ParseInt(m[1], 10, 64); err == nil {
		if n > math.MaxInt64/int64(unit) {
			return 0, fmt.Errorf("%q is too large", s)
		}
		return ByteSize(n) * unit, nil
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	v := math.Round(f * float64(unit))
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return ByteSize(v), nil
}

// String renders the size in the largest unit that divides it exactly.
func (b ByteSize) String() string {
	if b <= 0 {
		return strconv.FormatInt(int64(b), 10)
	}
	for _, u := range []struct {
		size ByteSize
		name string
	}{{TiB, "t"}, {GiB, "g"}, {MiB, "m"}, {KiB, "k"}} {
		if b%u.size == 0 {
			return strconv.FormatInt(int64(b/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// UnmarshalJSON accepts a number of bytes or a size string, so API clients can
// send "512m" while stored specs keep plain numbers.
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		v, err := ParseByteSize(s)
		if err != nil {
			return err
		}
		*b = v
		return nil
	}
	if string(data) == "null" {
		return nil
	}
	var n int64
	if err := json.Unmarshal(data, &n); err != nil {
		return fmt.Errorf("size %s is not a whole number of bytes or a size string", data)
	}
	*b = ByteSize(n)
	return nil
}
