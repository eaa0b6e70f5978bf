package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server serves the stable endpoint. Each connection starts in a loop of
// its own that forwards the common request, a bodiless GET or HEAD, with
// as few system calls and thread switches as nginx makes. At its first
// request the loop does not serve (a body, an upgrade, anything unusual)
// the connection moves to the http.Server for the rest of its life, with
// the bytes already read given back first.
type Server struct {
	p       *Proxy
	srv     *http.Server
	handoff *handoffListener
	// From srv: the loop keeps the same client-side bounds.
	readHeaderTimeout, idleTimeout time.Duration
	maxHeaderBytes                 int

	closing   atomic.Bool
	serveOnce sync.Once

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*fastClient]struct{}
	connsDone sync.WaitGroup
}

// NewServer serves p on srv's terms: srv's handler is p, and its
// ReadHeaderTimeout, IdleTimeout and MaxHeaderBytes bound the fast loop too.
func (p *Proxy) NewServer(srv *http.Server) *Server {
	if srv.Handler == nil {
		srv.Handler = p
	}
	maxHeader := srv.MaxHeaderBytes
	if maxHeader <= 0 {
		maxHeader = http.DefaultMaxHeaderBytes
	}
	return &Server{p: p, srv: srv, handoff: newHandoffListener(),
		readHeaderTimeout: srv.ReadHeaderTimeout, idleTimeout: srv.IdleTimeout, maxHeaderBytes: maxHeader,
		listeners: map[net.Listener]struct{}{}, conns: map[*fastClient]struct{}{}}
}

// Serve accepts connections on l until Shutdown or Close, and then returns
// http.ErrServerClosed, as http.Server.Serve does.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	s.serveOnce.Do(func() {
		s.handoff.addr = l.Addr()
		go func() { _ = s.srv.Serve(s.handoff) }()
	})
	var pause time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of descriptors for a moment: wait as http.Server does.
				pause = min(max(2*pause, 5*time.Millisecond), time.Second)
				time.Sleep(pause)
				continue
			}
			return err
		}
		pause = 0
		s.serveConn(c)
	}
}

func (s *Server) serveConn(c net.Conn) {
	raw, err := newRawIO(c)
	if err != nil {
		s.handoff.give(c)
		return
	}
	fc := newFastClient(s, c, raw)
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.conns[fc] = struct{}{}
	s.connsDone.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.connsDone.Done()
		defer func() {
			s.mu.Lock()
			delete(s.conns, fc)
			s.mu.Unlock()
		}()
		fc.serve()
	}()
}

// giveToHTTP moves c to the http.Server; pending are bytes already read
// from it, which the server reads first.
func (s *Server) giveToHTTP(c net.Conn, pending []byte) {
	s.handoff.give(&prefixConn{Conn: c, pending: pending})
}

// Shutdown stops accepting, closes idle connections, lets every request in
// progress finish, and returns when all connections are closed or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopAccepting()
	httpDone := make(chan error, 1)
	go func() { httpDone <- s.srv.Shutdown(ctx) }()
	allDone := make(chan struct{})
	go func() { s.connsDone.Wait(); close(allDone) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.wakeIdle()
		select {
		case <-allDone:
			return <-httpDone
		case <-ctx.Done():
			<-httpDone
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes every listener and connection at once.
func (s *Server) Close() error {
	s.stopAccepting()
	s.mu.Lock()
	for fc := range s.conns {
		fc.conn.Close()
	}
	s.mu.Unlock()
	return s.srv.Close()
}

func (s *Server) stopAccepting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing.Store(true)
	for l := range s.listeners {
		_ = l.Close()
	}
	s.listeners = map[net.Listener]struct{}{}
	// Without a Serve, http.Server never starts: nothing may wait on it.
	s.serveOnce.Do(func() { _ = s.handoff.Close() })
}

// wakeIdle ends the wait of connections between requests; their loops see
// the server closing and close them.
func (s *Server) wakeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for fc := range s.conns {
		if fc.idle.Load() {
			_ = fc.conn.SetReadDeadline(aLongTimeAgo)
		}
	}
}

// handoffListener is how connections reach the http.Server: Accept returns
// what give sends, until Close.
type handoffListener struct {
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	addr      net.Addr
}

func newHandoffListener() *handoffListener {
	return &handoffListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handoffListener) give(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr {
	if l.addr == nil {
		return &net.TCPAddr{}
	}
	return l.addr
}

// prefixConn is a connection whose first bytes were already read.
type prefixConn struct {
	net.Conn
	pending []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite lets http.Server half-close as it does on a plain TCP connection.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
