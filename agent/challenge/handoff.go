package challenge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// maxStateTransfer bounds one state hand-off request.
const maxStateTransfer = 60 * time.Second

// maxImportAnswer bounds what berth reads of an import's answer.
const maxImportAnswer = 64 << 10

// handOffClient is the one client of state hand-offs. The old container
// answers the export and the new one the import, so neither is trusted: no
// redirect is followed (a 302 or 307 could point berth at its own admin API
// or any loopback service), no proxy is used, and the transport dials only
// the address the request's context names (see handOffTo).
var handOffClient = &http.Client{
	Transport: &http.Transport{
		Proxy:                  nil,
		DialContext:            dialHandOff,
		DisableKeepAlives:      true,
		ResponseHeaderTimeout:  maxStateTransfer,
		MaxResponseHeaderBytes: 64 << 10,
	},
	Timeout: maxStateTransfer,
	// A redirect is answered as it came, and refused by status below.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type handOffAddr struct{}

// handOffTo returns ctx allowing the hand-off client to dial the host:port
// of container, the URL of the container's own address.
func handOffTo(ctx context.Context, container string) context.Context {
	addr := ""
	if u, err := url.Parse(container); err == nil && u.Scheme == "http" && u.Hostname() != "" {
		port := u.Port()
		if port == "" {
			port = "80"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	return context.WithValue(ctx, handOffAddr{}, addr)
}

var handOffDialer = &net.Dialer{Timeout: 10 * time.Second}

func dialHandOff(ctx context.Context, network, addr string) (net.Conn, error) {
	allowed, _ := ctx.Value(handOffAddr{}).(string)
	if allowed == "" || addr != allowed {
		return nil, fmt.Errorf("state hand-off dials only the container's address %q, not %q", allowed, addr)
	}
	return handOffDialer.DialContext(ctx, network, addr)
}

// exportState GETs path from the container at base (its own address): at
// most limit bytes within timeout. Errors say which rule an answer broke
// and never carry its body.
func exportState(ctx context.Context, base, path string, limit int64, timeout time.Duration) ([]byte, error) {
	target := base + path
	ctx, cancel := context.WithTimeout(handOffTo(ctx, base), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, err
	}
	resp, err := handOffClient.Do(req)
	if err != nil {
		return nil, slowOr(ctx, timeout, fmt.Errorf("GET %s: %w", target, unwrapURLError(err)))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return nil, fmt.Errorf("GET %s answered %d, a redirect; state is read only from the container itself", target, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET %s answered %d, not 200", target, resp.StatusCode)
	case resp.ContentLength > limit:
		return nil, fmt.Errorf("GET %s: state of %d bytes is larger than the limit of %d (state.max_bytes)", target, resp.ContentLength, limit)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, slowOr(ctx, timeout, fmt.Errorf("GET %s: reading the state: %w", target, unwrapURLError(err)))
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("GET %s: state is larger than the limit of %d bytes (state.max_bytes)", target, limit)
	}
	return data, nil
}

// slowOr names a timeout as such.
func slowOr(ctx context.Context, timeout time.Duration, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w (no complete answer within %s)", err, timeout)
	}
	return err
}

// unwrapURLError drops net/http's repetition of method and URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// importState POSTs data to path on the container at base (its own address).
func importState(ctx context.Context, base, path string, data []byte) error {
	target := base + path
	ctx, cancel := context.WithTimeout(handOffTo(ctx, base), maxStateTransfer)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := handOffClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", target, unwrapURLError(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxImportAnswer))
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return fmt.Errorf("POST %s answered %d, a redirect; state goes only to the container itself", target, resp.StatusCode)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return fmt.Errorf("POST %s answered %d", target, resp.StatusCode)
	}
	return nil
}
