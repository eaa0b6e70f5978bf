package api

import (
	"strings"
	"testing"
	"time"
)

func TestSessionValues(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	good := newSessionValue("s3cret", now.Add(time.Hour))
	if strings.Contains(good, "s3cret") {
		t.Fatalf("the cookie carries the token: %s", good)
	}
	exp, sum, _ := strings.Cut(strings.TrimPrefix(good, "v1."), ".")
	tests := []struct {
		name, token, value string
		at                 time.Time
		ok                 bool
	}{
		{"valid", "s3cret", good, now, true},
		{"expired", "s3cret", good, now.Add(time.Hour), false},
		{"other token", "other", good, now, false},
		{"expiry moved", "s3cret", "v1." + exp + "0." + sum, now, false},
		{"mac changed", "s3cret", "v1." + exp + "." + strings.Repeat("0", len(sum)), now, false},
		{"no version", "s3cret", strings.TrimPrefix(good, "v1."), now, false},
		{"empty", "s3cret", "", now, false},
		{"garbage", "s3cret", "v1.x.y", now, false},
	}
	for _, tt := range tests {
		if got := validSession(tt.token, tt.value, tt.at); got != tt.ok {
			t.Errorf("%s: valid = %v, want %v", tt.name, got, tt.ok)
		}
	}
	if csrfToken("s3cret", good) == csrfToken("s3cret", newSessionValue("s3cret", now.Add(2*time.Hour))) {
		t.Error("two sessions share a CSRF token")
	}
	if csrfToken("s3cret", good) == csrfToken("other", good) {
		t.Error("the CSRF token does not depend on the admin token")
	}
}
