package challenge

import (
	"context"
	"fmt"
	"time"

	"berth/configs"
)

// armAutoUpdate schedules the next registry check of a challenge whose
// update.auto checks, jittered by up to ±20% so validators do not all swap at once.
func (c *Owner) armAutoUpdate() {
	if !c.spec.Update.Auto.Checks() || configs.IsExactVersion(c.spec.Version) {
		return
	}
	d := c.spec.Update.CheckInterval
	d += time.Duration((c.Rand()*0.4 - 0.2) * float64(d))
	c.rearm(&c.autoTimer, d)
}

// checkForUpdate asks the registry, in a job, for the highest tag matching
// the version constraint; onUpdateCheck swaps to it when it differs from the
// running one, or with update.auto notify says a newer one is out.
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
	if c.spec.Update.Auto == configs.AutoNotify {
		c.notifyUpdate(m.tag)
		return
	}
	c.logf(LevelInfo, "newer version found; swapping", nil, F(FieldFrom, c.rec.Version), F(FieldTo, m.tag))
	if r := c.startSwap(ctx, c.spec.Version, swapAuto); r.err != nil {
		c.logf(LevelWarn, "auto-update swap", r.err)
	}
}

// notifyUpdate raises update_available once per newer version; the operator
// swaps when they choose.
func (c *Owner) notifyUpdate(tag string) {
	if d := VersionDelta(c.rec.Version, tag); d == "downgrade" || d == "same" || c.notifiedVersion == tag {
		return
	}
	c.notifiedVersion = tag
	c.logf(LevelInfo, "newer version available", nil, F(FieldFrom, c.rec.Version), F(FieldTo, tag))
	c.persist(Event{Type: EventUpdateAvailable, From: c.rec.Version, To: tag,
		Message: fmt.Sprintf("%s matches %s; running %s (berth swap %s %s)", tag, c.spec.Version, c.rec.Version, c.spec.Name, tag)})
}
