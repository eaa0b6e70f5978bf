package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/google/go-containerregistry/pkg/name"
)

// PullProgress is one progress report of a pull, already condensed.
type PullProgress struct {
	Ref     string
	Status  string // engine status line, e.g. "Downloading", "Pull complete"
	Layer   string
	Current int64
	Total   int64
}

// ErrPullStalled means the engine reported no progress for the stall timeout.
var ErrPullStalled = errors.New("pull made no progress")

// pullCall is one in-flight pull shared by every caller asking for the same ref.
type pullCall struct {
	done    chan struct{}
	digest  string
	err     error
	waiters int                // guarded by Client.pullMu
	cancel  context.CancelFunc // cancels the pull when the last waiter leaves
	// listeners receive progress, one per waiting caller; guarded by Client.pullMu.
	listeners map[int]func(PullProgress)
	nextID    int
}

// Pull pulls ref (repository:tag or @digest) and returns the image's
// repository digest ("sha256:…") when the engine reports one. Concurrent
// pulls of one ref share a single engine pull. progress may be nil.
func (c *Client) Pull(ctx context.Context, ref string, progress func(PullProgress)) (string, error) {
	c.pullMu.Lock()
	call, shared := c.pulls[ref]
	if !shared {
		pullCtx, cancel := context.WithCancel(context.Background())
		call = &pullCall{done: make(chan struct{}), cancel: cancel, listeners: map[int]func(PullProgress){}}
		c.pulls[ref] = call
		go c.runPull(pullCtx, ref, call)
	}
	call.waiters++
	call.nextID++
	me := call.nextID
	if progress != nil {
		call.listeners[me] = progress
	}
	c.pullMu.Unlock()

	select {
	case <-call.done:
		c.leavePull(ref, call, me)
		return call.digest, call.err
	case <-ctx.Done():
		c.leavePull(ref, call, me)
		return "", fmt.Errorf("pull %s: %w", ref, ctx.Err())
	}
}

// leavePull drops one waiter; the last one cancels the pull and unpublishes
// it so a later caller starts afresh instead of inheriting the cancellation.
func (c *Client) leavePull(ref string, call *pullCall, me int) {
	c.pullMu.Lock()
	defer c.pullMu.Unlock()
	delete(call.listeners, me)
	call.waiters--
	if call.waiters == 0 {
		call.cancel()
		if c.pulls[ref] == call {
			delete(c.pulls, ref)
		}
	}
}

func (c *Client) runPull(ctx context.Context, ref string, call *pullCall) {
	call.digest, call.err = c.pullOnce(ctx, ref, func(p PullProgress) {
		c.pullMu.Lock()
		listeners := make([]func(PullProgress), 0, len(call.listeners))
		for _, l := range call.listeners {
			listeners = append(listeners, l)
		}
		c.pullMu.Unlock()
		for _, l := range listeners {
			l(p)
		}
	})
	c.pullMu.Lock()
	if c.pulls[ref] == call {
		delete(c.pulls, ref)
	}
	c.pullMu.Unlock()
	call.cancel()
	close(call.done)
}

// pullMessage is the subset of the engine's JSON progress stream berth reads.
type pullMessage struct {
	Status         string `json:"status"`
	ID             string `json:"id"`
	ProgressDetail struct {
		Current int64 `json:"current"`
		Total   int64 `json:"total"`
	} `json:"progressDetail"`
	Error       string `json:"error"`
	ErrorDetail struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

func (c *Client) pullOnce(ctx context.Context, ref string, progress func(PullProgress)) (string, error) {
	auth, err := c.registryAuth(ref)
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", ref, err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	// The watchdog cancels the pull when the engine goes quiet, including
	// before its first answer (it sends no header until progress starts).
	activity := make(chan struct{}, 1)
	watchdogDone := make(chan struct{})
	defer func() { <-watchdogDone }()
	go func() {
		defer close(watchdogDone)
		timer := time.NewTimer(c.pullStallTimeout)
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-activity:
				if !timer.Stop() {
					<-timer.C
				}
				timer.Reset(c.pullStallTimeout)
			case <-timer.C:
				cancel(fmt.Errorf("%w for %s", ErrPullStalled, c.pullStallTimeout))
				return
			}
		}
	}()
	defer cancel(nil)

	c.count("image_pull")
	body, err := c.api.ImagePull(ctx, ref, image.PullOptions{RegistryAuth: auth})
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return "", fmt.Errorf("pull %s: %w", ref, cause)
		}
		return "", classify("pull "+ref, err)
	}
	defer body.Close()

	digest := ""
	dec := json.NewDecoder(io.LimitReader(body, 1<<30))
	for {
		var m pullMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
				return "", fmt.Errorf("pull %s: %w", ref, cause)
			}
			if ctx.Err() != nil {
				return "", fmt.Errorf("pull %s: %w", ref, context.Cause(ctx))
			}
			return "", classify("pull "+ref, fmt.Errorf("reading progress: %w", err))
		}
		select {
		case activity <- struct{}{}:
		default:
		}
		if m.Error != "" || m.ErrorDetail.Message != "" {
			msg := m.ErrorDetail.Message
			if msg == "" {
				msg = m.Error
			}
			return "", &Error{Op: "pull " + ref, Err: errors.New(msg)}
		}
		if d, ok := strings.CutPrefix(m.Status, "Digest: "); ok {
			digest = strings.TrimSpace(d)
		}
		if progress != nil {
			progress(PullProgress{Ref: ref, Status: m.Status, Layer: m.ID,
				Current: m.ProgressDetail.Current, Total: m.ProgressDetail.Total})
		}
	}
	if digest == "" {
		// Some engines omit the digest line when the image was already present.
		info, err := c.ImageInfo(ctx, ref)
		if err == nil {
			digest = info.RepoDigest(ref)
		}
	}
	return digest, nil
}

// ImageDetails is what berth needs to know about a local image.
type ImageDetails struct {
	ID          string
	RepoDigests []string // "repo@sha256:…"
}

// RepoDigest returns the digest recorded for ref's repository, or "".
func (i ImageDetails) RepoDigest(ref string) string {
	repo := normalRepository(repositoryOf(ref))
	for _, rd := range i.RepoDigests {
		r, d, ok := strings.Cut(rd, "@")
		if ok && normalRepository(r) == repo {
			return d
		}
	}
	return ""
}

// normalRepository spells a repository fully (docker.io/library/nginx) so
// familiar and qualified names compare equal.
func normalRepository(repo string) string {
	if parsed, err := name.NewRepository(repo); err == nil {
		return parsed.Name()
	}
	return repo
}

// repositoryOf strips a tag or digest from an image reference.
func repositoryOf(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// ImageInfo inspects a local image; ErrNotFound when it is not present.
func (c *Client) ImageInfo(ctx context.Context, ref string) (ImageDetails, error) {
	ctx, cancel := c.call(ctx, "image_inspect")
	defer cancel()
	img, err := c.api.ImageInspect(ctx, ref)
	if err != nil {
		return ImageDetails{}, classify("inspect image "+ref, err)
	}
	return ImageDetails{ID: img.ID, RepoDigests: img.RepoDigests}, nil
}
