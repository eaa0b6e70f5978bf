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

// checkForUpdate swaps to the highest tag matching the version constraint
// when it differs from the running one.
func (c *Owner) checkForUpdate(ctx context.Context) {
	defer c.armAutoUpdate()
	if c.swap != nil || c.draining != nil || c.current == nil || c.lifecycle != Running {
		return
	}
	checkCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tag, err := ResolveVersion(checkCtx, c.Runtime, c.spec.Image, c.spec.Version)
	if err != nil {
		c.logf(LevelWarn, "auto-update check failed", err)
		return
	}
	if tag == c.rec.Version || c.badVersions[tag] {
		return
	}
	c.logf(LevelInfo, "newer version found; swapping", nil, F(FieldFrom, c.rec.Version), F(FieldTo, tag))
	if r := c.startSwap(ctx, c.spec.Version, swapAuto); r.err != nil {
		c.logf(LevelWarn, "auto-update swap", r.err)
	}
}
