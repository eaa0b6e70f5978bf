package api

import (
	"net/http"

	"berth/agent/challenge"
)

// The probe routes serve each challenge's recent health probes from memory
// (challenge.ProbeHistorySize of them), so a sparkline needs no Prometheus.

// listProbes answers {name: [samples, oldest first]} for every challenge.
func (s *server) listProbes(w http.ResponseWriter, r *http.Request) error {
	out := map[string][]challenge.ProbeSample{}
	for _, h := range s.Directory.List() {
		out[h.Name()] = h.Probes()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// challengeProbes answers one challenge's samples, oldest first.
func (s *server) challengeProbes(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	h := s.Directory.Get(name)
	if h == nil {
		return unknownChallenge(name)
	}
	writeJSON(w, http.StatusOK, h.Probes())
	return nil
}
