package agent

import (
	"context"
	"time"

	"berth/supervisor"
)

// sleepCtx waits d on clock; false if ctx ended first.
func sleepCtx(ctx context.Context, clock supervisor.Clock, d time.Duration) bool {
	t := clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}
