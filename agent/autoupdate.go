package agent

import (
	"context"
	"time"

	"berth/configs"
)

// armAutoUpdate schedules the next registry check of a challenge with
// update.auto, jittered by up to ±20% so validators do not all swap at once.
func (c *challenge) armAutoUpdate() {
	if !c.spec.Update.Auto || configs.IsExactVersion(c.spec.Version) {
		return
	}
	if c.autoTimer != nil {
		c.autoTimer.Stop()
	}
	d := c.spec.Update.CheckInterval
	d += time.Duration((c.rand()*0.4 - 0.2) * float64(d))
	c.autoTimer = c.clock.NewTimer(d)
}

// checkForUpdate swaps to the highest tag matching the version constraint
// when it differs from the running one.
func (c *challenge) checkForUpdate(ctx context.Context) {
	c.autoTimer = nil
	defer c.armAutoUpdate()
	if c.swap != nil || c.draining != nil || c.current == nil || c.lifecycle != Running {
		return
	}
	checkCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tag, err := resolveVersion(checkCtx, c.engine, c.spec.Image, c.spec.Version)
	if err != nil {
		c.log.Warn().Err(err).Msg("auto-update check failed")
		return
	}
	if tag == c.rec.Version || c.badVersions[tag] {
		return
	}
	c.log.Info().Str("from", c.rec.Version).Str("to", tag).Msg("newer version found; swapping")
	if r := c.startSwap(ctx, c.spec.Version, swapAuto); r.err != nil {
		c.log.Warn().Err(r.err).Msg("auto-update swap")
	}
}
