package docker

import "strings"

// Label keys berth writes on every object it creates; ownership is decided by
// these labels plus the container IDs recorded in the state store.
const (
	LabelManaged   = "io.berth.managed"
	LabelAgent     = "io.berth.agent"
	LabelChallenge = "io.berth.challenge"
	LabelVersion   = "io.berth.version"
	LabelSlot      = "io.berth.slot"
	LabelSpecHash  = "io.berth.spec-hash"
)

// OwnerLabels are the labels that select everything one agent owns.
func OwnerLabels(agentID string) map[string]string {
	return map[string]string{LabelManaged: "true", LabelAgent: agentID}
}

// ContainerName is deterministic per agent, challenge and slot so the engine
// itself refuses a duplicate.
func ContainerName(agentID, challenge, slot string) string {
	return "berth-" + agentID + "-" + challenge + "-" + slot
}

// VolumeName is the engine volume behind a challenge's volume name: one
// namespace per agent and challenge, so a spec cannot mount another
// challenge's volume or one berth does not own. Agent ids and challenge
// names hold no "_", so the name is unambiguous.
func VolumeName(agentID, challenge, name string) string {
	return volumePrefix(agentID, challenge) + name
}

// ForeignVolume returns the first of ct's volumes outside the namespace of
// agentID's challenge, or "": a container created before volumes were
// namespaced may mount any volume, and is never reused as it is.
func ForeignVolume(agentID, challenge string, ct Container) string {
	prefix := volumePrefix(agentID, challenge)
	for _, v := range ct.Volumes {
		if !strings.HasPrefix(v, prefix) || v == prefix {
			return v
		}
	}
	return ""
}

func volumePrefix(agentID, challenge string) string {
	return "berth_" + agentID + "_" + challenge + "_"
}

// Labels only the swarm backend writes: what a stopped service (no tasks)
// must still tell berth.
const (
	LabelReplicas = "io.berth.replicas"
	LabelPort     = "io.berth.port"
)
