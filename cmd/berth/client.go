package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

const defaultAddr = "http://127.0.0.1:7070"

// apiClient talks to a running berth's admin API.
type apiClient struct {
	addr  string
	token string
	http  *http.Client
}

// clientFlags holds --addr, --token and --token-file of a client command.
type clientFlags struct {
	addr, token, tokenFile string
}

func addClientFlags(fs *pflag.FlagSet) *clientFlags {
	f := &clientFlags{}
	fs.StringVar(&f.addr, "addr", "", "admin API address (default $BERTH_ADDR or "+defaultAddr+")")
	fs.StringVar(&f.token, "token", "", "bearer token (default $BERTH_TOKEN)")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding the bearer token")
	return f
}

func (f *clientFlags) client() (*apiClient, error) {
	addr := firstNonEmpty(f.addr, os.Getenv("BERTH_ADDR"), defaultAddr)
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	token := firstNonEmpty(f.token, os.Getenv("BERTH_TOKEN"))
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	return &apiClient{addr: strings.TrimRight(addr, "/"), token: token, http: &http.Client{}}, nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// apiError is an error answer of the admin API.
type apiError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"error"`
}

func (e *apiError) Error() string {
	if e.Status == http.StatusUnauthorized {
		return e.Message + " (pass --token, --token-file or set BERTH_TOKEN)"
	}
	return e.Message
}

// request sends one call; the caller bounds it with ctx and closes the body.
func (c *apiClient) request(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.addr+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || isDialError(err) {
			return nil, fmt.Errorf("berth is not running at %s (start it with `berth run`, or point --addr/BERTH_ADDR at it)", c.addr)
		}
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		e := &apiError{Status: resp.StatusCode}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, e) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		return nil, e
	}
	return resp, nil
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// call sends one request and decodes a JSON answer into out (if non-nil).
func (c *apiClient) call(method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
		return fmt.Errorf("%s %s: bad answer: %w", method, path, err)
	}
	return nil
}
