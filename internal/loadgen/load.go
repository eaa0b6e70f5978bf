package loadgen

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Load drives steady client traffic at a challenge's stable endpoint and
// counts what the clients see; swap tests and the benchmark share it.
type Load struct {
	requests atomic.Int64
	failed   atomic.Int64
	mu       sync.Mutex
	errs     []string // a few samples
	first    string   // X-Challenge-Version of the first good answer
	last     string   // and of the latest
	stop     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
}

// LoadResult is what the clients saw.
type LoadResult struct {
	Requests     int64    `json:"requests"`
	Failed       int64    `json:"failed"`
	Errors       []string `json:"sample_errors,omitempty"`
	FirstVersion string   `json:"-"`
	LastVersion  string   `json:"-"`
}

// StartLoad runs short clients looping GET base/version and long ones
// looping GET base/work?ms=3000 until Finish.
func StartLoad(base string, short, long int) *Load {
	l := &Load{stop: make(chan struct{})}
	client := &http.Client{Timeout: 60 * time.Second}
	for range short {
		l.wg.Add(1)
		go l.run(client, base, "/version")
	}
	for range long {
		l.wg.Add(1)
		go l.run(client, base, "/work?ms=3000")
	}
	return l
}

func (l *Load) run(client *http.Client, base, path string) {
	defer l.wg.Done()
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		resp, err := client.Get(base + path)
		l.requests.Add(1)
		if err != nil {
			l.fail(err.Error())
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			l.fail(fmt.Sprintf("%s: status %d", path, resp.StatusCode))
			continue
		}
		l.mu.Lock()
		if l.first == "" {
			l.first = resp.Header.Get("X-Challenge-Version")
		}
		l.last = resp.Header.Get("X-Challenge-Version")
		l.mu.Unlock()
	}
}

// fail counts a failure; the short pause keeps a dead endpoint from
// turning the clients into a busy loop.
func (l *Load) fail(msg string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.errs) < 10 {
		l.errs = append(l.errs, msg)
	}
	l.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
}

// Finish stops the clients, waits for them and reports; it may be called
// more than once.
func (l *Load) Finish() LoadResult {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return LoadResult{Requests: l.requests.Load(), Failed: l.failed.Load(), Errors: append([]string(nil), l.errs...),
		FirstVersion: l.first, LastVersion: l.last}
}
