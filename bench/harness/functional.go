package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"berth/internal/loadgen"
)

const pollEvery = 5 * time.Millisecond

// pollClient is used by the 5 ms pollers: no keep-alive, so a dead backend
// shows at once as a refused connection.
var pollClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// recoveryAfter polls url every 5 ms (each request under reqTimeout) and
// returns when the first failed request was sent and when the first 200
// after a failure was received.
func recoveryAfter(ctx context.Context, url string, reqTimeout, limit time.Duration) (failedAt, okAt time.Time, err error) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		sent := time.Now()
		status, _, err := get(ctx, pollClient, url, reqTimeout)
		ok := err == nil && status == http.StatusOK
		if !ok && failedAt.IsZero() {
			failedAt = sent
		}
		if ok && !failedAt.IsZero() {
			return failedAt, time.Now(), nil
		}
		if err := sleepCtx(ctx, pollEvery); err != nil {
			return failedAt, okAt, err
		}
	}
	if failedAt.IsZero() {
		return failedAt, okAt, fmt.Errorf("%s never failed within %s", url, limit)
	}
	return failedAt, okAt, fmt.Errorf("%s did not recover within %s", url, limit)
}

// waitOK polls url until it answers 200.
func waitOK(ctx context.Context, url string, timeout time.Duration) error {
	return waitUntil(ctx, timeout, 50*time.Millisecond, "GET "+url, func() (bool, error) {
		status, _, err := get(ctx, pollClient, url, time.Second)
		return err == nil && status == http.StatusOK, err
	})
}

// outage is what a client saw of one crash: its first failed request was
// sent at Failed, and the first 200 afterwards arrived at OK.
type outage struct{ Failed, OK time.Time }

func (o outage) length() time.Duration { return o.OK.Sub(o.Failed) }

// crashOnce crashes the service at base (POST /admin/crash?code=1) and
// measures the outage: first failed poll → first 200 afterwards.
func crashOnce(ctx context.Context, base string) (outage, error) {
	if err := waitOK(ctx, base+"/version", 60*time.Second); err != nil {
		return outage{}, err
	}
	status, b, err := post(ctx, base+"/admin/crash?code=1", "")
	if err != nil || status != http.StatusOK {
		return outage{}, fmt.Errorf("POST %s/admin/crash: %d %s %v", base, status, b, err)
	}
	failedAt, okAt, err := recoveryAfter(ctx, base+"/version", 250*time.Millisecond, 60*time.Second)
	return outage{failedAt, okAt}, err
}

// hangOnce hangs /health at base (POST /admin/hang) and measures from the
// hang to the first 200 from /health after the hang was seen.
func hangOnce(ctx context.Context, base string, limit time.Duration) (time.Duration, error) {
	if err := waitOK(ctx, base+"/health", 60*time.Second); err != nil {
		return 0, err
	}
	start := time.Now()
	status, b, err := post(ctx, base+"/admin/hang", "")
	if err != nil || status != http.StatusOK {
		return 0, fmt.Errorf("POST %s/admin/hang: %d %s %v", base, status, b, err)
	}
	_, okAt, err := recoveryAfter(ctx, base+"/health", 250*time.Millisecond, limit)
	if err != nil {
		return 0, err
	}
	return okAt.Sub(start), nil
}

// dockerRunBaseline starts a labelled container of image with extra docker
// run flags and returns its id and the base URL of its published port 8080.
func dockerRunBaseline(ctx context.Context, e *env, name, image string, flags ...string) (string, string, error) {
	args := append([]string{"run", "-d", "--name", name, "--label", e.label}, flags...)
	args = append(args, image)
	id, err := docker(ctx, args...)
	if err != nil {
		return "", "", err
	}
	port, err := docker(ctx, "port", id, "8080/tcp")
	if err != nil {
		return id, "", err
	}
	port = strings.Split(port, "\n")[0]
	return id, "http://" + port, nil
}

// autoheal restarts containers of this run whose health is unhealthy, every
// 5 s, like willfarrell/autoheal (docker restart with a 10 s stop timeout).
func autoheal(ctx context.Context, e *env, restarted *atomic.Int64) {
	for sleepCtx(ctx, 5*time.Second) == nil {
		out, err := docker(ctx, "ps", "-q", "--filter", "label="+e.label, "--filter", "health=unhealthy")
		if err != nil {
			continue
		}
		for _, id := range strings.Fields(out) {
			if _, err := docker(ctx, "restart", "-t", "10", id); err == nil {
				restarted.Add(1)
				logf("autoheal: restarted %s", id)
			}
		}
	}
}

// autohealHang measures the autoheal-like baseline once: a container with
// Docker's default HEALTHCHECK timing (interval 30s, timeout 30s, retries 3)
// plus the autoheal loop.
func autohealHang(ctx context.Context, e *env) (time.Duration, error) {
	// A fixed host port: Docker gives an ephemeral one a new number on restart.
	port, err := freePort()
	if err != nil {
		return 0, err
	}
	_, base, err := dockerRunBaseline(ctx, e, "bb"+e.runID+"-autoheal", e.hcImage, "-p", fmt.Sprintf("127.0.0.1:%d:8080", port))
	if err != nil {
		return 0, err
	}
	// Hang only once Docker calls it healthy, as a running deployment would be.
	err = waitUntil(ctx, 3*time.Minute, time.Second, "autoheal container healthy", func() (bool, error) {
		s, err := docker(ctx, "inspect", "-f", "{{.State.Health.Status}}", "bb"+e.runID+"-autoheal")
		return s == "healthy", err
	})
	if err != nil {
		return 0, err
	}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var restarted atomic.Int64
	go autoheal(hctx, e, &restarted)
	d, err := hangOnce(ctx, base, 6*time.Minute)
	if err == nil && restarted.Load() == 0 {
		err = errors.New("recovered without an autoheal restart")
	}
	return d, err
}

// loadResult is the swap load's outcome, as the tests see it too.
type loadResult = loadgen.LoadResult

// startLoad is the load the swap tests use too.
func startLoad(base string, short, long int) *loadgen.Load {
	return loadgen.StartLoad(base, short, long)
}

// berthSwap swaps challenge name from 1.0.0 to 1.1.0 under load.
func berthSwap(ctx context.Context, p *berthProc, name string) (loadResult, error) {
	base := p.proxy + "/" + name
	if err := waitOK(ctx, base+"/version", 60*time.Second); err != nil {
		return loadResult{}, err
	}
	l := startLoad(base, 6, 2)
	_ = sleepCtx(ctx, 3*time.Second)
	status, b, err := post(ctx, p.api+"/v1/challenges/"+name+"/swap", `{"version":"1.1.0"}`)
	if err != nil || status != http.StatusAccepted {
		r := l.Finish()
		return r, fmt.Errorf("POST swap: %d %s %v", status, b, err)
	}
	var phase, swapErr string
	err = waitUntil(ctx, 3*time.Minute, 100*time.Millisecond, "swap to finish", func() (bool, error) {
		var c challengeStatus
		if err := getJSON(ctx, p.api+"/v1/challenges/"+name, &c); err != nil {
			return false, err
		}
		if c.Swap != nil {
			phase, swapErr = c.Swap.Phase, c.Swap.Error
		}
		return phase == "completed" || phase == "rolled_back" || phase == "failed", fmt.Errorf("phase %q", phase)
	})
	_ = sleepCtx(ctx, 3*time.Second)
	r := l.Finish()
	if err != nil {
		return r, err
	}
	if phase != "completed" {
		return r, fmt.Errorf("swap ended %s: %s", phase, swapErr)
	}
	return r, nil
}

// stopFirstSwap recreates a container on a fixed published port the way
// Compose and Watchtower do: stop old, remove, run new.
func stopFirstSwap(ctx context.Context, e *env) (loadResult, error) {
	port, err := freePort()
	if err != nil {
		return loadResult{}, err
	}
	name := "bb" + e.runID + "-stopfirst"
	publish := fmt.Sprintf("127.0.0.1:%d:8080", port)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if _, err := docker(ctx, "run", "-d", "--name", name, "--label", e.label, "-p", publish, e.repo+":1.0.0"); err != nil {
		return loadResult{}, err
	}
	if err := waitOK(ctx, base+"/version", 60*time.Second); err != nil {
		return loadResult{}, err
	}
	l := startLoad(base, 6, 2)
	_ = sleepCtx(ctx, 3*time.Second)
	steps := [][]string{
		{"stop", name},
		{"rm", name},
		{"run", "-d", "--name", name, "--label", e.label, "-p", publish, e.repo + ":1.1.0"},
	}
	for _, s := range steps {
		if _, err := docker(ctx, s...); err != nil {
			r := l.Finish()
			return r, err
		}
	}
	err = waitUntil(ctx, 60*time.Second, 20*time.Millisecond, "new version serving", func() (bool, error) {
		status, b, err := get(ctx, pollClient, base+"/version", time.Second)
		return err == nil && status == http.StatusOK && strings.Contains(string(b), "1.1.0"), err
	})
	_ = sleepCtx(ctx, 3*time.Second)
	r := l.Finish()
	return r, err
}
