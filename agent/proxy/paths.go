package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// setEscapedPath keeps escapes like %2F exactly as the client sent them.
func setEscapedPath(u *url.URL, escaped string) error {
	path, err := url.PathUnescape(escaped)
	if err != nil {
		return err
	}
	u.Path, u.RawPath = path, ""
	if u.EscapedPath() != escaped {
		u.RawPath = escaped
	}
	return nil
}

// splitChallengePath turns "/name/a/b" into ("name", "/a/b"); it works on
// the escaped path so the rest is forwarded byte for byte.
func splitChallengePath(path string) (string, string) {
	trimmed := strings.TrimPrefix(path, "/")
	name, rest, found := strings.Cut(trimmed, "/")
	if !found {
		return name, "/"
	}
	return name, "/" + rest
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// errorBody is the one JSON error shape of both of berth's HTTP surfaces;
// the admin API writes the same.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string, retryAfter int) {
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(errorJSON(code, msg))
}

func errorJSON(code, msg string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	_ = enc.Encode(errorBody{Error: msg, Code: code})
	return b.Bytes()
}
