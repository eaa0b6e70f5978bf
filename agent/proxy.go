package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// proxy is the stable endpoint: /<challenge>/<rest> goes to the challenge's
// active container as /<rest>, so callers never track containers.
type proxy struct {
	dir     *directory
	log     zerolog.Logger
	reverse *httputil.ReverseProxy
}

type upstreamKey struct{}

func newProxy(dir *directory, log zerolog.Logger) *proxy {
	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// No response timeout: challenge evaluations may legitimately run for an hour.
	}
	p := &proxy{dir: dir, log: log}
	p.reverse = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			target := r.In.Context().Value(upstreamKey{}).(*url.URL)
			r.SetURL(target)
			r.Out.URL.Path, r.Out.URL.RawPath = r.In.URL.Path, r.In.URL.RawPath
			r.Out.Host = target.Host
			r.SetXForwarded()
		},
		Transport:     transport,
		FlushInterval: -1, // stream responses as they come
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return // the client left
			}
			p.log.Warn().Err(err).Str(fieldChallenge, r.Header.Get("X-Berth-Challenge")).Msg("proxy upstream error")
			writeJSONError(w, http.StatusBadGateway, "upstream_error", "challenge container did not answer: "+err.Error(), 0)
		},
	}
	return p
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, rest := splitChallengePath(r.URL.Path)
	h := p.dir.get(name)
	if name == "" || h == nil {
		writeJSONError(w, http.StatusNotFound, "unknown_challenge", "no challenge named "+quote(name), 0)
		return
	}
	st := h.status.Load()
	if st.Upstream == "" || !st.Health.Serving() {
		writeJSONError(w, http.StatusServiceUnavailable, "unavailable",
			"challenge "+name+" has no healthy container (state "+string(st.State)+", health "+string(st.Health)+")", 2)
		return
	}
	target, err := url.Parse(st.Upstream)
	if err != nil {
		writeJSONError(w, http.StatusBadGateway, "upstream_error", "bad upstream address", 0)
		return
	}
	out := r.Clone(context.WithValue(r.Context(), upstreamKey{}, target))
	out.URL.Path = rest
	out.URL.RawPath = ""
	p.reverse.ServeHTTP(w, out)
}

// splitChallengePath turns "/name/a/b" into ("name", "/a/b").
func splitChallengePath(path string) (string, string) {
	trimmed := strings.TrimPrefix(path, "/")
	name, rest, found := strings.Cut(trimmed, "/")
	if !found {
		return name, "/"
	}
	return name, "/" + rest
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }
