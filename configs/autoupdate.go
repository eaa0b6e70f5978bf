package configs

import (
	"encoding/json"
	"fmt"
	"strings"
)

// AutoUpdate says what berth does when the registry has a newer version
// matching a challenge's constraint: nothing, swap to it, or say so.
type AutoUpdate string

// update.auto values. YAML's true and false mean swap and off.
const (
	AutoOff    AutoUpdate = "off"
	AutoSwap   AutoUpdate = "swap"
	AutoNotify AutoUpdate = "notify"
)

// Checks says whether the registry is checked at all.
func (a AutoUpdate) Checks() bool { return a == AutoSwap || a == AutoNotify }

// ParseAutoUpdate reads an update.auto value.
func ParseAutoUpdate(s string) (AutoUpdate, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "false", "no", "off":
		return AutoOff, nil
	case "true", "yes", "on", "swap":
		return AutoSwap, nil
	case "notify":
		return AutoNotify, nil
	}
	return "", fmt.Errorf("%q is not an update mode (use false, true or notify)", s)
}

// MarshalJSON writes off and swap as the booleans they were before notify
// existed, so a spec's JSON, and with it SpecHash, stays what it was.
func (a AutoUpdate) MarshalJSON() ([]byte, error) {
	switch a {
	case AutoNotify:
		return []byte(`"notify"`), nil
	case AutoSwap:
		return []byte("true"), nil
	}
	return []byte("false"), nil
}

// UnmarshalJSON reads a boolean or a mode name.
func (a *AutoUpdate) UnmarshalJSON(b []byte) error {
	var on bool
	if err := json.Unmarshal(b, &on); err == nil {
		*a = AutoOff
		if on {
			*a = AutoSwap
		}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("update.auto must be true, false or \"notify\"")
	}
	mode, err := ParseAutoUpdate(s)
	if err != nil {
		return err
	}
	*a = mode
	return nil
}
