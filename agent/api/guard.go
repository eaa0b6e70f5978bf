package api

import (
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// guardBrowsers keeps web pages away from the admin API. A page the operator
// visits can reach a loopback listener: through DNS rebinding (a name of the
// page's that resolves to 127.0.0.1, seen here as a foreign Host), or as a
// cross-site "simple" request (an Origin header, a text/plain or form body
// that needs no CORS preflight). berth's own clients send none of these.
// With a token the API may sit behind a port mapping (compose), so the port
// is not checked then; a page cannot send the token anyway.
func guardBrowsers(next http.Handler, tokenSet bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(r, r.Host, tokenSet) {
			writeJSONError(w, http.StatusForbidden, "forbidden_host",
				"Host "+quote(clip(r.Host))+" is not this API's address; use the listen address, localhost, 127.0.0.1 or [::1] with its port")
			return
		}
		if origin, ok := r.Header["Origin"]; ok && !originAllowed(r, origin, tokenSet) {
			writeJSONError(w, http.StatusForbidden, "forbidden_origin", "cross-site requests are refused (Origin "+quote(clip(strings.Join(origin, ", ")))+")")
			return
		}
		if r.ContentLength != 0 && !isJSONMediaType(r.Header.Get("Content-Type")) {
			writeJSONError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "request bodies must be sent as Content-Type: application/json")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hostAllowed accepts host (a Host header or an Origin's host) when it names
// the address the connection came in on, or a loopback name, with the port
// the listener is bound to. Names other than localhost are never accepted:
// those are what DNS rebinding uses. With mapped (a token is configured), any
// port and any IP address are accepted, as a NAT or port mapping rewrites them.
func hostAllowed(r *http.Request, host string, mapped bool) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	localHost, localPort, err := net.SplitHostPort(local.String())
	if err != nil {
		return false
	}
	name, port, err := net.SplitHostPort(host)
	if err != nil && localPort == "80" {
		name, port, err = strings.Trim(host, "[]"), "80", nil // the default port may be left out
	}
	if err != nil || (port != localPort && !mapped) {
		return false
	}
	if strings.EqualFold(name, "localhost") {
		return true
	}
	ip := net.ParseIP(name)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	lip := net.ParseIP(localHost)
	return mapped || (lip != nil && ip.Equal(lip))
}

// originAllowed accepts an Origin that is this API itself, over plain HTTP.
func originAllowed(r *http.Request, origin []string, mapped bool) bool {
	if len(origin) != 1 {
		return false
	}
	u, err := url.Parse(origin[0])
	if err != nil || u.Scheme != "http" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") {
		return false
	}
	return hostAllowed(r, u.Host, mapped)
}

// isJSONMediaType accepts application/json with any parameters (charset).
func isJSONMediaType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}
