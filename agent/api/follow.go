package api

import (
	"fmt"
	"net/http"
	"time"
)

// startFollow takes one of the MaxFollowStreams slots for a follow stream,
// or answers 429. The caller must call release when the stream ends.
func (s *server) startFollow(w http.ResponseWriter) (release func(), err error) {
	if n := s.follows.Add(1); n > int64(s.MaxFollowStreams) {
		s.follows.Add(-1)
		w.Header().Set("Retry-After", "5")
		return nil, apiErr(http.StatusTooManyRequests, "too_many_streams",
			fmt.Sprintf("%d follow streams are open, the most berth serves at once; close one or try again later", s.MaxFollowStreams))
	}
	return func() { s.follows.Add(-1) }, nil
}

// followDeadline gives the client FollowWriteTimeout to take the next write
// of a follow stream; waiting for something to write does not count.
func (s *server) followDeadline(rc *http.ResponseController) {
	_ = rc.SetWriteDeadline(time.Now().Add(s.FollowWriteTimeout))
}

// flushFollow flushes a follow stream within FollowWriteTimeout.
func (s *server) flushFollow(rc *http.ResponseController) error {
	s.followDeadline(rc)
	return rc.Flush()
}
