package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// httpService serves one listener until ctx ends, then shuts down gracefully.
type httpService struct {
	name         string
	listener     net.Listener
	handler      http.Handler
	log          zerolog.Logger
	longRequests bool          // proxied requests may run long; no write timeout
	grace        time.Duration // how long shutdown lets requests finish (default 5s)
	// Client-side timeouts; zero means 10s for the header and 2m idle.
	readHeaderTimeout, idleTimeout time.Duration
	// wrap, if set, serves the listener in place of the http.Server, which
	// it is given (the stable endpoint's fast loop).
	wrap func(*http.Server) server
}

// server is what serves a listener: an http.Server or what wraps one.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

func (s *httpService) Serve(ctx context.Context) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: cmp.Or(s.readHeaderTimeout, 10*time.Second),
		IdleTimeout:       cmp.Or(s.idleTimeout, 2*time.Minute),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
	if !s.longRequests {
		srv.ReadTimeout = 30 * time.Second
	}
	var run server = srv
	if s.wrap != nil {
		run = s.wrap(srv)
	}
	errc := make(chan error, 1)
	go func() { errc <- run.Serve(s.listener) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("%s: %w", s.name, err)
	case <-ctx.Done():
	}
	grace := s.grace
	if grace <= 0 {
		grace = 5 * time.Second
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := run.Shutdown(shutdownCtx); err != nil {
		run.Close()
	}
	<-errc
	return nil
}
