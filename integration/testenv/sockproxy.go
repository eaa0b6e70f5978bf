package testenv

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// SocketProxy sits between berth and the engine's unix socket so a test can
// cut the engine off (every connection dropped, new ones refused) and restore it.
type SocketProxy struct {
	// Path is the proxy's socket; Host() is the DOCKER_HOST form.
	Path   string
	target string
	ln     net.Listener

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// StartSocketProxy proxies to the engine socket named by DOCKER_HOST (or the
// default /var/run/docker.sock) until the test ends.
func StartSocketProxy(t testing.TB) *SocketProxy {
	t.Helper()
	target := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
		target = strings.TrimPrefix(h, "unix://")
	}
	// Socket paths are limited to ~108 bytes, so avoid t.TempDir's long names.
	dir, err := os.MkdirTemp("", "bsp")
	if err != nil {
		t.Fatal(err)
	}
	p := &SocketProxy{Path: filepath.Join(dir, "docker.sock"), target: target, conns: map[net.Conn]struct{}{}}
	p.ln, err = net.Listen("unix", p.Path)
	if err != nil {
		t.Fatal(err)
	}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		p.ln.Close()
		p.Cut()
		p.wg.Wait()
		os.RemoveAll(dir)
	})
	return p
}

// Host is the DOCKER_HOST value that reaches the engine through the proxy.
func (p *SocketProxy) Host() string { return "unix://" + p.Path }

// Cut drops every open connection and refuses new ones until Restore.
func (p *SocketProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// Restore lets connections through again.
func (p *SocketProxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

func (p *SocketProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.mu.Unlock()
		upstream, err := net.Dial("unix", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[upstream] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go p.pipe(c, upstream)
	}
}

func (p *SocketProxy) pipe(a, b net.Conn) {
	defer p.wg.Done()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
	p.mu.Lock()
	delete(p.conns, a)
	delete(p.conns, b)
	p.mu.Unlock()
}
