package challenge

import (
	"context"
	"time"

	"berth/configs"
)

// armAutoUpdate schedules the next registry check of a challenge with
// update.auto, jittered by up to ±20% so validators do not all swap at once.
func (c *Owner) armAutoUpdate() {
	if !c.spec.Update.Auto || configs.IsExactVersion(c.spec.Version) {
		return
	}
	d := c.spec.Update.CheckInterval
	d += time.Duration((c.Rand()*0.4 - 0.2) * float64(d))
	c.rearm(&c.autoTimer, d)
}

// checkForUpdate asks the registry, in a job, for the highest tag matching
// the version constraint; onUpdateCheck swaps to it when it differs from the
// running one.
func (c *Owner) checkForUpdate(ctx context.Context) {
	if c.swap != nil || c.draining != nil || c.current == nil || c.lifecycle != Running {
		c.armAutoUpdate()
		return
	}
	rt, image, constraint, jobs := c.Runtime, c.spec.Image, c.spec.Version, c.jobs
	c.goJob(func() {
		checkCtx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		tag, err := ResolveVersion(checkCtx, rt, image, constraint)
		report(ctx, jobs, msgUpdateCheck{constraint: constraint, tag: tag, err: err})
	})
}

func (c *Owner) onUpdateCheck(ctx context.Context, m msgUpdateCheck) {
	defer c.armAutoUpdate()
	if m.err != nil {
		c.logf(LevelWarn, "auto-update check failed", m.err)
		return
	}
	if m.constraint != c.spec.Version || m.tag == c.rec.Version || c.badVersions[m.tag] {
		return
	}
	if c.swap != nil || c.draining != nil || c.current == nil || c.lifecycle != Running {
		return
	}
	c.logf(LevelInfo, "newer version found; swapping", nil, F(FieldFrom, c.rec.Version), F(FieldTo, m.tag))
	if r := c.startSwap(ctx, c.spec.Version, swapAuto); r.err != nil {
		c.logf(LevelWarn, "auto-update swap", r.err)
	}
}
