package configs

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"
)

var (
	tagRE    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// IsExactVersion reports whether v names one tag ("1.4.2", "v1.4.2", "1.4",
// "latest") rather than a semver constraint ("^1.4", ">=1.2 <2", "1.x") that
// must be resolved against the registry's tags.
func IsExactVersion(v string) bool {
	if v == "" || strings.ContainsAny(v, "^~><=*,| \t") {
		return false
	}
	for _, part := range strings.Split(strings.TrimPrefix(strings.TrimPrefix(v, "v"), "V"), ".") {
		if part == "x" || part == "X" {
			return false
		}
	}
	return true
}

// maxVersionLen bounds a version or constraint; tags are at most 128 characters.
const maxVersionLen = 256

// CheckVersion returns why v is unusable as a challenge version (an exact tag
// or a semver constraint), or nil. The message does not name the key.
func CheckVersion(v string) error {
	if msg := checkVersion(v); msg != "" {
		return errors.New(msg)
	}
	return nil
}

// checkVersion returns why v is unusable as a challenge version, or "".
func checkVersion(v string) string {
	if strings.TrimSpace(v) == "" {
		return "is required (an exact tag such as \"1.4.2\" or a constraint such as \"^1.4\")"
	}
	if len(v) > maxVersionLen {
		return fmt.Sprintf("is longer than %d characters", maxVersionLen)
	}
	if IsExactVersion(v) {
		if !tagRE.MatchString(v) {
			return fmt.Sprintf("%q is not a valid image tag (letters, digits, _ . -; at most 128 characters)", v)
		}
		return ""
	}
	if _, err := semver.NewConstraint(v); err != nil {
		return fmt.Sprintf("%q is neither an image tag nor a semver constraint: %v", v, err)
	}
	return ""
}

func checkDigest(d string) string {
	if d == "" || digestRE.MatchString(d) {
		return ""
	}
	return fmt.Sprintf("%q must be sha256: followed by 64 lowercase hex digits", d)
}
