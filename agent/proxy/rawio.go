package proxy

import (
	"errors"
	"io"
	"net"
	"syscall"
	"time"
	"unsafe"
)

// rawIO reads and writes a TCP connection's non-blocking socket with raw
// system calls, waiting through Go's poller only when the socket is not
// ready. A plain Read or Write tells the scheduler it entered a system call;
// on loopback a write runs the receiver's network stack inline and takes
// long enough that the scheduler hands the goroutine's P to another thread
// and its monitor keeps polling every 20 µs: under load, a quarter of the
// proxy's CPU went to those thread switches. On a non-blocking socket the
// call cannot block, so nothing is lost by not telling.
type rawIO struct {
	conn net.Conn
	rc   syscall.RawConn
}

func newRawIO(c net.Conn) (*rawIO, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, errors.New("connection has no file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &rawIO{conn: c, rc: rc}, nil
}

// Read reads at least one byte, waiting for the socket without a deadline
// of its own: the caller sets the connection's read deadline.
func (r *rawIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n uintptr
	var errno syscall.Errno
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			n, _, errno = syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			if errno != syscall.EINTR {
				return errno != syscall.EAGAIN
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, errno
	case n == 0:
		return 0, io.EOF
	}
	return int(n), nil
}

// Write writes all of p. It sets a write deadline of idle only when the
// socket is full, so the usual write costs no timer.
func (r *rawIO) Write(p []byte, idle time.Duration) error {
	written := 0
	var errno syscall.Errno
	try := func(fd uintptr) bool {
		for written < len(p) {
			n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[written])), uintptr(len(p)-written))
			switch e {
			case 0:
				written += int(n)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	}
	var done bool
	if err := r.rc.Control(func(fd uintptr) { done = try(fd) }); err != nil {
		return err
	}
	if !done {
		if idle > 0 {
			_ = r.conn.SetWriteDeadline(time.Now().Add(idle))
		}
		if err := r.rc.Write(try); err != nil {
			return err
		}
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// peekClosed says whether the peer has closed or reset the connection,
// without waiting or consuming anything it sent.
func (r *rawIO) peekClosed() bool {
	closed := false
	var b [1]byte
	err := r.rc.Control(func(fd uintptr) {
		n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		closed = (errno == 0 && n == 0) || (errno != 0 && errno != syscall.EAGAIN && errno != syscall.EINTR)
	})
	return err != nil || closed
}

// writeThenRead writes p and then waits for an answer in b, with one read:
// the write happens inside the read, after the socket's readiness is
// reset, so the answer's arrival wakes the reader and no read is tried
// before it (a read that finds nothing costs a system call). written says
// how much of p went out; when it is not all, nothing was read either.
func (r *rawIO) writeThenRead(p, b []byte) (n, written int, err error) {
	first := true
	var werr, rerr syscall.Errno
	var got uintptr
	err = r.rc.Read(func(fd uintptr) bool {
		if first {
			first = false
			for written < len(p) {
				m, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[written])), uintptr(len(p)-written))
				switch e {
				case 0:
					written += int(m)
				case syscall.EINTR:
				default: // full (EAGAIN) or failed: finished outside
					werr = e
					return true
				}
			}
			return false // the answer cannot be there yet
		}
		for {
			got, _, rerr = syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
			if rerr != syscall.EINTR {
				return rerr != syscall.EAGAIN
			}
		}
	})
	if written < len(p) {
		if err == nil && werr != 0 && werr != syscall.EAGAIN {
			err = werr
		}
		return 0, written, err
	}
	switch {
	case err != nil:
		return 0, written, err
	case rerr != 0:
		return 0, written, rerr
	case got == 0:
		return 0, written, io.EOF
	}
	return int(got), written, nil
}
