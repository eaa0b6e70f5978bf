package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"net/http"
	"time"
)

// The status page (SPEC §9): static files embedded in the binary, a login
// that turns the token into a session cookie, and a live stream. The page
// itself holds no secret; everything it shows comes through the same
// authentication as /v1.

//go:embed ui/index.html ui/app.js ui/app.css
var uiFiles embed.FS

// uiAssets are the page's files by the name under /ui/ they are served at.
var uiAssets = map[string]struct{ file, contentType string }{
	"":           {"ui/index.html", "text/html; charset=utf-8"},
	"index.html": {"ui/index.html", "text/html; charset=utf-8"},
	"app.js":     {"ui/app.js", "text/javascript; charset=utf-8"},
	"app.css":    {"ui/app.css", "text/css; charset=utf-8"},
}

// uiCSP lets the page run only its own script and style and talk only to
// this origin: data rendered from challenges can never become code.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// loginDelay slows guessing the token through the login form.
const loginDelay = 300 * time.Millisecond

func (s *server) uiRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusMovedPermanently)
	})
	mux.HandleFunc("GET /ui/{file}", s.uiAsset)
	mux.HandleFunc("GET /ui/{$}", s.uiAsset)
	mux.HandleFunc("POST /ui/login", s.login)
	mux.HandleFunc("POST /ui/logout", func(w http.ResponseWriter, r *http.Request) {
		setSessionCookie(w, r, "", time.Time{})
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("GET /ui/session", s.handle(s.session))
	mux.Handle("GET /ui/stream", s.handle(s.uiStream))
}

// uiAsset serves one embedded file with the page's security headers. It
// needs no token: the files are the same for everyone and carry no data.
func (s *server) uiAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := uiAssets[r.PathValue("file")]
	if !ok {
		writeJSONError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+clip(r.URL.Path))
		return
	}
	body, err := uiFiles.ReadFile(a.file)
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, "internal", "internal error; see berth's log")
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write(body)
}

type loginRequest struct {
	Token string `json:"token"`
}

// login checks the token once and answers with a session cookie.
func (s *server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	var req loginRequest
	if e := decodeJSONBody(r, &req, 4<<10); e != nil {
		writeJSONError(w, e.Status, e.Code, e.Message)
		return
	}
	if s.Token == "" {
		w.WriteHeader(http.StatusNoContent) // authentication is off; nothing to remember
		return
	}
	gotSum, wantSum := sha256.Sum256([]byte(req.Token)), sha256.Sum256([]byte(s.Token))
	if subtle.ConstantTimeCompare(gotSum[:], wantSum[:]) != 1 {
		select {
		case <-time.After(loginDelay):
		case <-r.Context().Done():
		}
		writeJSONError(w, http.StatusUnauthorized, "unauthorized", "wrong token")
		return
	}
	expires := time.Now().Add(sessionTTL)
	setSessionCookie(w, r, newSessionValue(s.Token, expires), expires)
	w.WriteHeader(http.StatusNoContent)
}

// sessionInfo tells the page whether it must log in and which CSRF token its
// state-changing requests carry.
type sessionInfo struct {
	Auth bool   `json:"auth"` // a token is configured
	CSRF string `json:"csrf"` // "" when none is needed
}

func (s *server) session(w http.ResponseWriter, r *http.Request) error {
	info := sessionInfo{Auth: s.Token != ""}
	if c, err := r.Cookie(sessionCookie); err == nil && info.Auth && r.Header.Get("Authorization") == "" {
		info.CSRF = csrfToken(s.Token, c.Value)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, info)
	return nil
}
