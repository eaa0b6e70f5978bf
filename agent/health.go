package agent

import (
	"fmt"
	"strings"
	"time"

	"berth/agent/api"
	"berth/agent/challenge"
)

// readiness is /readyz: engine reachable, store open, first reconcile done.
func (a *Agent) readiness() (bool, map[string]string) {
	components := map[string]string{"docker": "ok", "statestore": "ok", "reconcile": "ok", "agent": "ok"}
	ok := true
	if !a.watcher.dockerUp() {
		components["docker"], ok = "unreachable", false
	}
	if err := a.store.Check(); err != nil {
		// /readyz is unauthenticated: the details go to the log only.
		a.log.Error().Err(err).Msg("readiness: state store check failed")
		components["statestore"], ok = "error", false
	}
	if !a.reconciled.Load() {
		components["reconcile"], ok = "pending", false
	}
	if a.draining.Load() {
		components["agent"], ok = "draining", false
	}
	return ok, components
}

// healthReport is /v1/health; the challenges component counts toward the
// overall status and "unknown" never reads as healthy.
func (a *Agent) healthReport() api.HealthReport {
	ready, _ := a.readiness()
	r := api.HealthReport{Ready: ready, Version: a.opts.Version, UptimeSecs: int64(time.Since(a.started).Seconds()),
		Components: map[string]api.ComponentHealth{}, CheckpointSequence: a.checkpoints.lastSeq.Load()}
	if a.watcher.dockerUp() {
		r.Components["docker"] = api.ComponentHealth{Status: "healthy"}
	} else {
		r.Components["docker"] = api.ComponentHealth{Status: "unhealthy", Message: "docker engine unreachable"}
	}
	if err := a.store.Check(); err != nil {
		r.Components["statestore"] = api.ComponentHealth{Status: "unhealthy", Message: err.Error()}
	} else {
		r.Components["statestore"] = api.ComponentHealth{Status: "healthy"}
	}
	total, healthy := 0, 0
	var notHealthy []string
	for _, h := range a.dir.List() {
		st := h.Status()
		total++
		if st.Health == challenge.HealthHealthy {
			healthy++
			r.ActiveChallenges++
		} else {
			notHealthy = append(notHealthy, st.Name+"="+string(st.Health))
		}
	}
	switch {
	case total == healthy:
		r.Components["challenges"] = api.ComponentHealth{Status: "healthy", Message: fmt.Sprintf("%d/%d healthy", healthy, total)}
	case healthy == 0:
		r.Components["challenges"] = api.ComponentHealth{Status: "unhealthy", Message: strings.Join(notHealthy, ", ")}
	default:
		r.Components["challenges"] = api.ComponentHealth{Status: "degraded", Message: strings.Join(notHealthy, ", ")}
	}
	r.Status = "healthy"
	for _, c := range r.Components {
		if c.Status == "unhealthy" {
			r.Status = "unhealthy"
			break
		}
		if c.Status != "healthy" {
			r.Status = "degraded"
		}
	}
	return r
}
