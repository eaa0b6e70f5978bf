package challenge

import "fmt"

// Swap phases (SPEC §5.5).
const (
	PhasePulling        = "pulling"
	PhaseExporting      = "exporting_state"
	PhaseStarting       = "starting"
	PhaseWaitingHealthy = "waiting_healthy"
	PhaseImporting      = "importing_state"
	PhaseCuttingOver    = "cutting_over"
	PhaseDraining       = "draining"
	PhaseCompleted      = "completed"
	PhaseRollingBack    = "rolling_back"
	PhaseRolledBack     = "rolled_back"
	PhaseFailed         = "failed"
)

// phaseMoves is the one table of a swap's phase transitions. Every phase
// before the cut-over may roll back; after it, only the drain remains.
var phaseMoves = map[string][]string{
	PhasePulling:        {PhasePulling, PhaseExporting, PhaseStarting, PhaseRollingBack, PhaseCompleted},
	PhaseExporting:      {PhaseStarting, PhaseRollingBack},
	PhaseStarting:       {PhaseWaitingHealthy, PhaseRollingBack},
	PhaseWaitingHealthy: {PhaseImporting, PhaseCuttingOver, PhaseRollingBack},
	PhaseImporting:      {PhaseCuttingOver, PhaseRollingBack},
	PhaseCuttingOver:    {PhaseDraining, PhaseRollingBack},
	PhaseDraining:       {PhaseCompleted},
	PhaseRollingBack:    {PhaseRolledBack},
}

// NextPhase validates a swap's move from one phase to the next.
func NextPhase(from, to string) error {
	for _, allowed := range phaseMoves[from] {
		if allowed == to {
			return nil
		}
	}
	return fmt.Errorf("invalid swap phase transition %s → %s", from, to)
}

// Recovery settles a swap a berth crash interrupted.
type Recovery struct {
	// Remove is the new instance to remove (interrupted before its cut-over).
	Remove string
	// RemoveSlot names a slot whose instance, found by name, is removed:
	// the swap may have created one before recording its id.
	RemoveSlot string
	// StopAndKeep is the old instance to stop and keep for a rollback
	// (interrupted after the cut-over, while it drained).
	StopAndKeep string
	// Event records how the swap ended.
	Event Event
}

// RecoverSwap decides how to settle plan, persisted in any phase, given the
// record the crash left: before the cut-over the swap is rolled back (the old
// version never stopped serving), after it the swap is completed.
func RecoverSwap(plan SwapPlan, rec Record) Recovery {
	active := rec.ActiveSlot
	if active == "" {
		active = slotA
	}
	activeID := rec.Slots[active].ContainerID
	ev := Event{Challenge: plan.Challenge, From: plan.From, To: plan.To}
	if !plan.CutOver {
		var r Recovery
		if id := plan.ToContainerID; id != "" && id != activeID {
			r.Remove = id
		} else if plan.ToSlot != active && plan.ToSlot != "" {
			r.RemoveSlot = plan.ToSlot
		}
		ev.Type, ev.Phase, ev.Error = EventSwapFailed, PhaseRolledBack, "berth restarted before the cut-over"
		ev.Message = fmt.Sprintf("swap %s: rolled back after a berth restart; %s keeps serving", plan.ID, plan.From)
		r.Event = ev
		return r
	}
	var r Recovery
	if from := rec.Slots[plan.FromSlot]; from.ContainerID != "" && from.ContainerID != activeID {
		r.StopAndKeep = from.ContainerID
	}
	ev.Type, ev.Phase = EventSwapCompleted, PhaseCompleted
	ev.Message = fmt.Sprintf("swap %s: completed after a berth restart", plan.ID)
	r.Event = ev
	return r
}
