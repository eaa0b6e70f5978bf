package api

import "net/http"

// HealthReport is the body of GET /v1/health (SPEC §5.8). Status counts
// every component, the challenges too; "unknown" never reads as healthy.
type HealthReport struct {
	Status             string                     `json:"status"`
	Ready              bool                       `json:"ready"`
	Version            string                     `json:"version"`
	UptimeSecs         int64                      `json:"uptime_secs"`
	Components         map[string]ComponentHealth `json:"components"`
	ActiveChallenges   int                        `json:"active_challenges"`
	CheckpointSequence uint64                     `json:"checkpoint_sequence"`
}

// ComponentHealth is one component of a HealthReport: docker, statestore
// or challenges.
type ComponentHealth struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// readyz answers 200 ready, or 503 not_ready or draining; it needs no token.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	ok, components := s.Ready()
	status := http.StatusOK
	body := map[string]any{"status": "ready", "components": components}
	if !ok {
		status = http.StatusServiceUnavailable
		body["status"] = "not_ready"
		if components["agent"] == "draining" {
			body["status"] = "draining"
		}
	}
	writeJSON(w, status, body)
}

func (s *server) getHealth(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.Health())
	return nil
}
