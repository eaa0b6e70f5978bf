package challenge

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// images makes images present for bring-ups and swaps. It holds only what
// a job may use away from the owner.
type images struct {
	rt    Runtime
	store Store
	obs   Observer
	clock Clock
}

func (c *Owner) images() images {
	return images{rt: c.Runtime, store: c.Store, obs: c.Observer, clock: c.Clock}
}

// digest makes ref present as policy says, pulling if needed (onPull runs
// first), and returns its repository digest.
func (im images) digest(ctx context.Context, challenge, policy, ref string, onPull func()) (string, error) {
	if policy != "always" {
		digest, err := im.rt.LocalImage(ctx, ref)
		switch {
		case err == nil:
			return digest, nil
		case !errors.Is(err, ErrNotFound):
			return "", err
		case policy == "never":
			return "", &refusal{event: EventStartFailed, err: fmt.Errorf("image %s is not present locally and pull_policy is never", ref)}
		}
	}
	if onPull != nil {
		onPull()
	}
	start := im.clock.Now()
	lastLog := time.Time{}
	digest, err := im.rt.Pull(ctx, ref, func(p PullProgress) {
		if now := time.Now(); now.Sub(lastLog) > 5*time.Second {
			lastLog = now
			im.obs.Log(LevelInfo, challenge, "pull progress", nil, F(FieldImage, ref), F("status", p.Status),
				F("current", p.Current), F("total", p.Total))
		}
	})
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", ref, err)
	}
	took := im.clock.Now().Sub(start)
	im.obs.Pulled(challenge, took)
	ev := Event{Type: EventPulled, Challenge: challenge, Message: fmt.Sprintf("pulled %s in %s", ref, took.Round(time.Millisecond)), To: digest}
	saved, err := im.store.Commit(Write{Challenge: challenge, Events: []Event{ev}})
	if err != nil {
		saved = []Event{ev}
	}
	for _, ev := range saved {
		im.obs.Event(ev)
	}
	return digest, nil
}
