package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The status page cannot send a bearer token from a link, so a token entered
// once on its login form becomes a session cookie. The cookie holds an
// expiry and a MAC keyed by the token, never the token itself: it is checked
// with no server-side state, outlives a restart of berth, and dies when the
// token changes. State-changing requests made with the cookie must also carry
// a CSRF token bound to it, which only a page that can read /ui/session (this
// origin) learns.

const (
	sessionCookie = "berth_session"
	csrfHeader    = "X-CSRF-Token"
	// sessionTTL is how long a login lasts.
	sessionTTL = 12 * time.Hour
)

// sessionKey derives the MAC key from the token, so cookies and CSRF tokens
// never reveal it and a new token voids every session.
func sessionKey(token string) []byte {
	sum := sha256.Sum256([]byte("berth ui session key\x00" + token))
	return sum[:]
}

func mac(key []byte, parts ...string) string {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return hex.EncodeToString(m.Sum(nil))
}

// newSessionValue is a cookie value valid until expires.
func newSessionValue(token string, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	return "v1." + exp + "." + mac(sessionKey(token), "session", exp)
}

// validSession reports whether value is an unexpired session of token.
func validSession(token, value string, now time.Time) bool {
	rest, ok := strings.CutPrefix(value, "v1.")
	if !ok {
		return false
	}
	exp, sum, ok := strings.Cut(rest, ".")
	if !ok {
		return false
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || !now.Before(time.Unix(unix, 0)) {
		return false
	}
	want := mac(sessionKey(token), "session", exp)
	return subtle.ConstantTimeCompare([]byte(sum), []byte(want)) == 1
}

// csrfToken is the CSRF token of one session cookie value.
func csrfToken(token, session string) string {
	return mac(sessionKey(token), "csrf", session)
}

// safeMethod: requests that change nothing need no CSRF token.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// sessionAuth authorizes a request by its session cookie; an unsafe method
// must also carry the session's CSRF token.
func (s *server) sessionAuth(r *http.Request) error {
	c, err := r.Cookie(sessionCookie)
	if err != nil || !validSession(s.Token, c.Value, time.Now()) {
		return apiErr(http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token")
	}
	if safeMethod(r.Method) {
		return nil
	}
	got, want := r.Header.Get(csrfHeader), csrfToken(s.Token, c.Value)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return apiErr(http.StatusForbidden, "csrf", "missing or wrong "+csrfHeader+" header; reload the page")
	}
	return nil
}

// setSessionCookie logs the browser in until expires; a zero expires logs it out.
func setSessionCookie(w http.ResponseWriter, r *http.Request, value string, expires time.Time) {
	c := &http.Cookie{Name: sessionCookie, Value: value, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
	if expires.IsZero() {
		c.MaxAge = -1
	} else {
		c.Expires = expires
		c.MaxAge = int(time.Until(expires).Seconds())
	}
	http.SetCookie(w, c)
}
