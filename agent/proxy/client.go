package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"time"
)

// boundClient bounds every wait on the client of one proxied request: each
// pause in its request body (bodyIdle) and each write of the response
// (writeIdle). Waiting on the challenge is not bounded.
func (p *Proxy) boundClient(w http.ResponseWriter, r *http.Request) (*idleWriter, *http.Request) {
	rc := http.NewResponseController(w)
	// A keep-alive connection may carry the last request's write deadline.
	_ = rc.SetWriteDeadline(time.Time{})
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &idleBody{ReadCloser: r.Body, rc: rc, idle: p.bodyIdle}
	}
	return &idleWriter{ResponseWriter: w, rc: rc, idle: p.writeIdle}, r
}

// idleBody fails a request body read that waits longer than idle for the
// client. The deadline is lifted once the body
// is done, so nothing cuts the request while the challenge works on it.
type idleBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		// A failed read keeps its deadline: the server must not wait for
		// the rest of that body either.
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// idleWriter gives the client idle to accept each write;
// time spent waiting for the challenge between writes does not count.
type idleWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
}

func (w *idleWriter) arm() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.idle)) }

func (w *idleWriter) WriteHeader(code int) {
	w.arm()
	w.ResponseWriter.WriteHeader(code)
}

func (w *idleWriter) Write(b []byte) (int, error) {
	w.arm()
	return w.ResponseWriter.Write(b)
}

func (w *idleWriter) FlushError() error {
	w.arm()
	return w.rc.Flush()
}

// Flush serves wrappers that only know http.Flusher.
func (w *idleWriter) Flush() { _ = w.FlushError() }

func (w *idleWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// statusRecorder remembers the response code for Options.OnRequest; Unwrap
// keeps flushing and other ResponseController features working.
type statusRecorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.code, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wroteHeader = true
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

// Hijack records an upgraded connection as 101: ReverseProxy hijacks only
// to switch protocols, and writes that answer on the hijacked connection.
func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err == nil && !s.wroteHeader {
		s.code, s.wroteHeader = http.StatusSwitchingProtocols, true
	}
	return conn, brw, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
