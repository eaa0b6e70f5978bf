package challenge

import (
	"bytes"
	"context"
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
	CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		return fmt.Errorf("state hand-off does not follow redirects (the container redirected to %s)", req.URL.Redacted())
	},
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

// exportState GETs path from the container at base (its own address).
func exportState(ctx context.Context, base, path string) ([]byte, error) {
	target := base + path
	ctx, cancel := context.WithTimeout(handOffTo(ctx, base), maxStateTransfer)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, err
	}
	resp, err := handOffClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", target, resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxSnapshotBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxSnapshotBytes {
		return nil, fmt.Errorf("state larger than %d bytes", MaxSnapshotBytes)
	}
	return data, nil
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
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxImportAnswer))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("POST %s: status %d", target, resp.StatusCode)
	}
	return nil
}
