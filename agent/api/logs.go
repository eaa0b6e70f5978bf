package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"berth/agent/challenge"
)

// maxLogTail bounds how many lines one logs request may ask for.
const maxLogTail = 10000

// containerLogs streams the active container's output as plain text.
func (s *server) containerLogs(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	h := s.Directory.Get(name)
	if h == nil {
		return unknownChallenge(name)
	}
	q := r.URL.Query()
	opts := challenge.LogOptions{Tail: 200}
	if t := q.Get("tail"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || n > maxLogTail {
			return apiErr(http.StatusBadRequest, "bad_request", fmt.Sprintf("tail must be 0..%d, got %s", maxLogTail, quote(clip(t))))
		}
		opts.Tail = n
	}
	if f := q.Get("follow"); f != "" {
		b, err := strconv.ParseBool(f)
		if err != nil {
			return apiErr(http.StatusBadRequest, "bad_request", "follow must be true or false, got "+quote(f))
		}
		opts.Follow = b
	}
	id := h.Status().ContainerID
	if id == "" {
		return apiErr(http.StatusConflict, "no_container", "challenge "+name+" has no container")
	}
	if opts.Follow {
		release, err := s.startFollow(w)
		if err != nil {
			return err
		}
		defer release()
	}
	rc, err := s.Runtime.Logs(r.Context(), id, opts)
	if err != nil {
		if errors.Is(err, challenge.ErrNotFound) {
			return apiErr(http.StatusConflict, "no_container", "container of "+name+" is gone")
		}
		return err
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	wc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if opts.Follow {
				// Each write gets its own deadline; waiting for output does not count.
				s.followDeadline(wc)
			}
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
			if wc.Flush() != nil {
				return nil
			}
		}
		if err != nil {
			return nil
		}
	}
}
