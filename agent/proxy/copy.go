package proxy

import (
	"sync"
	"time"
)

// flushInterval bounds how long bytes of a response with a known length
// wait in the server's buffer before they go to the client. Streaming
// responses (no length, text/event-stream) are flushed after every write
// regardless. Flushing every response at once (-1) made ReverseProxy flush
// the header from a timer goroutine before the body was copied: two writes
// to the client and a goroutine per request, a fifth of the proxy's CPU.
const flushInterval = 10 * time.Millisecond

// copyBufferSize is what httputil.ReverseProxy allocates per request
// without a pool.
const copyBufferSize = 32 << 10

// bufferPool reuses the body copy buffers: without it every proxied request
// allocated and zeroed 32 KiB, 70% of the bytes the hot path allocated.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, copyBufferSize)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) != copyBufferSize {
		return
	}
	buf = buf[:copyBufferSize]
	b.p.Put(&buf)
}
