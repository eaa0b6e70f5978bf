package challenge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"time"

	"berth/configs"
	"berth/supervisor"
)

// maxHealthBody caps how much of a health response berth reads.
const maxHealthBody = 64 << 10

// Prober runs HTTP health probes. One Prober is shared by all challenges; it
// holds no per-challenge state.
type Prober struct {
	client *http.Client
}

// NewProber returns a prober that keeps one idle connection per container:
// a new TCP connection per probe was most of berth's steady-state CPU. A
// probe that times out closes its own connection, so a hung container
// cannot pin sockets, and idle ones are dropped after a minute.
func NewProber() *Prober {
	return &Prober{client: &http.Client{
		Transport: &http.Transport{
			MaxIdleConnsPerHost:    1,
			IdleConnTimeout:        time.Minute,
			ResponseHeaderTimeout:  time.Minute,
			MaxResponseHeaderBytes: 16 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Probe GETs url within timeout. Pass means a 200–399 status and, when the
// body is JSON with a "status" field, that field is "ok" or "healthy".
func (p *Prober) Probe(ctx context.Context, url string, timeout time.Duration) ProbeResult {
	res, _ := p.probeOnce(ctx, url, timeout)
	return res
}

// probeOnce also reports whether the failure was a port with no server on it.
func (p *Prober) probeOnce(ctx context.Context, url string, timeout time.Duration) (ProbeResult, bool) {
	start := time.Now()
	res := ProbeResult{At: start}
	err := p.probe(ctx, url, timeout)
	res.Duration = time.Since(start)
	res.Spent = res.Duration
	if err != nil {
		res.Err = err.Error()
		return res, notListening(err)
	}
	res.Pass = true
	return res, false
}

// notListeningRetry is how often a starting container whose port is not open
// yet is dialled again.
const notListeningRetry = 10 * time.Millisecond

// ProbeStarting probes a container that has not passed since it started. While
// its port refuses or drops connections (nothing listens yet; a published
// port's proxy accepts and closes), it dials again every few ms for up to
// window, so the first pass comes within ms of the server listening instead
// of a whole start_interval later. Any answer, pass or fail, ends it.
func (p *Prober) ProbeStarting(ctx context.Context, url string, timeout, window time.Duration) ProbeResult {
	start := time.Now()
	for {
		res, refused := p.probeOnce(ctx, url, timeout)
		res.Spent = time.Since(start)
		if res.Pass || !refused || res.Spent+notListeningRetry >= window || !supervisor.Sleep(ctx, supervisor.RealClock(), notListeningRetry) {
			return res
		}
	}
}

// ProbeFor probes a container whose health t tracks: the quick redials of
// ProbeStarting until its first pass since a (re)start, a single probe after.
func (p *Prober) ProbeFor(ctx context.Context, url string, cfg configs.Health, t HealthTracker) ProbeResult {
	if t.PassedOnce {
		return p.Probe(ctx, url, cfg.Timeout)
	}
	return p.ProbeStarting(ctx, url, cfg.Timeout, t.NextProbeIn(cfg))
}

// notListening reports a dial that found no server: refused, or accepted and
// closed before any answer.
func notListening(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func (p *Prober) probe(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "berth-health")
	resp, err := p.client.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("no answer within %s", timeout)
		}
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHealthBody))
	if err != nil {
		return fmt.Errorf("reading body: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("status %d: %s", resp.StatusCode, snippet(body))
	}
	if status, ok := jsonStatus(body); ok {
		switch strings.ToLower(status) {
		case "ok", "healthy":
		default:
			return fmt.Errorf("status field %q", status)
		}
	}
	return nil
}

// jsonStatus extracts a top-level "status" string when body is a JSON object.
func jsonStatus(body []byte) (string, bool) {
	trimmed := strings.TrimSpace(string(body))
	if !strings.HasPrefix(trimmed, "{") {
		return "", false
	}
	var doc struct {
		Status *string `json:"status"`
	}
	if json.Unmarshal(body, &doc) != nil || doc.Status == nil {
		return "", false
	}
	return *doc.Status, true
}

// snippet is the start of a probe body as one printable line.
func snippet(b []byte) string {
	s := strings.TrimSpace(Printable(string(b), false))
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return s
}
