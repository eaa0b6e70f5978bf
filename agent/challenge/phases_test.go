package challenge

import (
	"strings"
	"testing"
)

var allPhases = []string{PhasePulling, PhaseExporting, PhaseStarting, PhaseWaitingHealthy, PhaseImporting,
	PhaseCuttingOver, PhaseDraining, PhaseCompleted, PhaseRollingBack, PhaseRolledBack, PhaseFailed}

// allowedPhaseMoves is the expected phase table, written out independently
// of the production map so that any change to it shows up here.
var allowedPhaseMoves = map[[2]string]bool{
	// pulling → pulling: the plan is created in pulling and the runner
	// records the resolved tag in that same phase.
	{PhasePulling, PhasePulling}: true, {PhasePulling, PhaseExporting}: true, {PhasePulling, PhaseStarting}: true,
	{PhasePulling, PhaseRollingBack}: true, {PhasePulling, PhaseCompleted}: true,

	{PhaseExporting, PhaseStarting}: true, {PhaseExporting, PhaseRollingBack}: true,

	{PhaseStarting, PhaseWaitingHealthy}: true, {PhaseStarting, PhaseRollingBack}: true,

	{PhaseWaitingHealthy, PhaseImporting}: true, {PhaseWaitingHealthy, PhaseCuttingOver}: true,
	{PhaseWaitingHealthy, PhaseRollingBack}: true,

	{PhaseImporting, PhaseCuttingOver}: true, {PhaseImporting, PhaseRollingBack}: true,

	{PhaseCuttingOver, PhaseDraining}: true, {PhaseCuttingOver, PhaseRollingBack}: true,

	{PhaseDraining, PhaseCompleted}: true,

	{PhaseRollingBack, PhaseRolledBack}: true,
}

func TestNextPhaseAllowed(t *testing.T) {
	for move := range allowedPhaseMoves {
		if err := NextPhase(move[0], move[1]); err != nil {
			t.Errorf("%s → %s refused: %v", move[0], move[1], err)
		}
	}
	// The happy path of a swap with a state hand-off, and a rollback from
	// each phase before the cut-over.
	path := []string{PhasePulling, PhaseExporting, PhaseStarting, PhaseWaitingHealthy, PhaseImporting, PhaseCuttingOver, PhaseDraining, PhaseCompleted}
	for i := 1; i < len(path); i++ {
		if err := NextPhase(path[i-1], path[i]); err != nil {
			t.Errorf("happy path: %v", err)
		}
	}
	for _, from := range path[:6] {
		if err := NextPhase(from, PhaseRollingBack); err != nil {
			t.Errorf("no rollback from %s: %v", from, err)
		}
	}
}

// Every move not in the table is refused, terminal phases go nowhere, and
// unknown phases are refused both ways.
func TestNextPhaseFullMatrix(t *testing.T) {
	phases := append(append([]string{}, allPhases...), "", "bogus")
	refused := 0
	for _, from := range phases {
		for _, to := range phases {
			err := NextPhase(from, to)
			if allowedPhaseMoves[[2]string{from, to}] {
				if err != nil {
					t.Errorf("%q → %q refused: %v", from, to, err)
				}
				continue
			}
			refused++
			if err == nil {
				t.Errorf("%q → %q allowed, want refused", from, to)
				continue
			}
			if !strings.Contains(err.Error(), "invalid swap phase transition") || !strings.Contains(err.Error(), from+" → "+to) {
				t.Errorf("%q → %q: error %q does not name the move", from, to, err)
			}
		}
	}
	if want := len(phases)*len(phases) - len(allowedPhaseMoves); refused != want {
		t.Errorf("%d moves refused, want %d", refused, want)
	}
	// No phase after the cut-over may roll back; terminal phases are final.
	for _, from := range []string{PhaseDraining, PhaseCompleted, PhaseRolledBack, PhaseFailed} {
		if NextPhase(from, PhaseRollingBack) == nil {
			t.Errorf("%s may roll back", from)
		}
	}
	for _, from := range []string{PhaseCompleted, PhaseRolledBack, PhaseFailed} {
		for _, to := range phases {
			if NextPhase(from, to) == nil {
				t.Errorf("terminal %s moves to %s", from, to)
			}
		}
	}
}

// recoverRec is the record a crash left: old01 in slot a, and, when
// newActive, new01 in slot b already active.
func recoverRec(newActive bool) Record {
	rec := Record{Name: "web", ActiveSlot: slotA, Version: "1.0.0",
		Slots: map[string]Slot{slotA: {ContainerID: "old01", Version: "1.0.0"}}}
	if newActive {
		rec.Slots["b"] = Slot{ContainerID: "new01", Version: "2.0.0"}
		rec.ActiveSlot, rec.Version, rec.PreviousVersion = "b", "2.0.0", "1.0.0"
	}
	return rec
}

func recoverPlan(phase, toID string, cutOver bool) SwapPlan {
	return SwapPlan{ID: "s1", Challenge: "web", Phase: phase, From: "1.0.0", To: "2.0.0", FromSlot: slotA, ToSlot: "b",
		ToContainerID: toID, CutOver: cutOver}
}

// RecoverSwap for a plan persisted in every phase: before the cut-over the
// swap rolls back and its new instance goes (by id once recorded, by slot
// before), after it the swap completes and the old instance is stopped and
// kept.
func TestRecoverSwapEveryPhase(t *testing.T) {
	beforeCutOver := []string{PhasePulling, PhaseExporting, PhaseStarting, PhaseWaitingHealthy, PhaseImporting,
		PhaseCuttingOver, PhaseRollingBack, PhaseRolledBack}
	type want struct{ remove, removeSlot, stopAndKeep string }
	for _, phase := range beforeCutOver {
		for _, tc := range []struct {
			name string
			toID string
			rec  Record
			want want
		}{
			{"with the new instance's id", "new01", recoverRec(false), want{remove: "new01"}},
			{"before the id was recorded", "", recoverRec(false), want{removeSlot: "b"}},
			// The record already names the new instance as active (a
			// route-back plan, or a store that kept the record but not the
			// plan's cut-over): it serves, so nothing is removed.
			{"with the new instance already active", "new01", recoverRec(true), want{}},
		} {
			t.Run(phase+"/"+tc.name, func(t *testing.T) {
				r := RecoverSwap(recoverPlan(phase, tc.toID, false), tc.rec)
				if r.Remove != tc.want.remove || r.RemoveSlot != tc.want.removeSlot || r.StopAndKeep != tc.want.stopAndKeep {
					t.Fatalf("recovery %+v, want %+v", r, tc.want)
				}
				ev := r.Event
				if ev.Type != EventSwapFailed || ev.Phase != PhaseRolledBack || ev.Error == "" || ev.Challenge != "web" ||
					ev.From != "1.0.0" || ev.To != "2.0.0" || !strings.Contains(ev.Message, "s1") || !strings.Contains(ev.Message, "1.0.0 keeps serving") {
					t.Fatalf("event %+v, want a swap_failed rolled back naming the swap", ev)
				}
			})
		}
	}
	for _, tc := range []struct {
		name  string
		phase string
		toID  string
		rec   Record
		want  want
	}{
		{"draining", PhaseDraining, "new01", recoverRec(true), want{stopAndKeep: "old01"}},
		{"draining without the new id in the plan", PhaseDraining, "", recoverRec(true), want{stopAndKeep: "old01"}},
		// The plan's phase does not matter once the cut-over is recorded.
		{"cut over, phase not yet draining", PhaseCuttingOver, "new01", recoverRec(true), want{stopAndKeep: "old01"}},
		{"the old slot is empty", PhaseDraining, "new01", func() Record {
			r := recoverRec(true)
			delete(r.Slots, slotA)
			return r
		}(), want{}},
		{"the old slot names the active instance", PhaseDraining, "new01", func() Record {
			r := recoverRec(true)
			r.Slots[slotA] = r.Slots["b"]
			return r
		}(), want{}},
	} {
		t.Run("cut over/"+tc.name, func(t *testing.T) {
			r := RecoverSwap(recoverPlan(tc.phase, tc.toID, true), tc.rec)
			if r.Remove != tc.want.remove || r.RemoveSlot != tc.want.removeSlot || r.StopAndKeep != tc.want.stopAndKeep {
				t.Fatalf("recovery %+v, want %+v", r, tc.want)
			}
			ev := r.Event
			if ev.Type != EventSwapCompleted || ev.Phase != PhaseCompleted || ev.Error != "" || ev.From != "1.0.0" || ev.To != "2.0.0" ||
				!strings.Contains(ev.Message, "s1") {
				t.Fatalf("event %+v, want swap_completed", ev)
			}
		})
	}
}

// Edge cases of the record a crash left behind.
func TestRecoverSwapRecordEdges(t *testing.T) {
	// No active slot recorded: slot a is the active one.
	rec := recoverRec(false)
	rec.ActiveSlot = ""
	if r := RecoverSwap(recoverPlan(PhaseStarting, "", false), rec); r.RemoveSlot != "b" || r.Remove != "" {
		t.Errorf("no active slot: %+v, want slot b removed", r)
	}
	if r := RecoverSwap(recoverPlan(PhaseWaitingHealthy, "old01", false), rec); r.Remove != "" || r.RemoveSlot != "b" {
		t.Errorf("a plan naming the serving instance as new: %+v, want only slot b cleared", r)
	}
	// A plan without a target slot has nothing to remove.
	p := recoverPlan(PhasePulling, "", false)
	p.ToSlot = ""
	if r := RecoverSwap(p, recoverRec(false)); r.Remove != "" || r.RemoveSlot != "" || r.StopAndKeep != "" {
		t.Errorf("no target slot: %+v", r)
	}
	// A plan whose target slot is the active one (its new instance would
	// replace the serving one) never removes by slot.
	p = recoverPlan(PhaseStarting, "", false)
	p.ToSlot = slotA
	if r := RecoverSwap(p, recoverRec(false)); r.RemoveSlot != "" {
		t.Errorf("target slot is active: %+v", r)
	}
	// A route-back (b → a) cut over while 2.0.0 drained: 2.0.0 is stopped
	// and kept.
	rb := SwapPlan{ID: "s2", Challenge: "web", Phase: PhaseDraining, From: "2.0.0", To: "1.0.0", FromSlot: "b", ToSlot: slotA,
		ToContainerID: "old01", CutOver: true}
	rec = recoverRec(true)
	rec.ActiveSlot, rec.Version, rec.PreviousVersion = slotA, "1.0.0", "2.0.0"
	if r := RecoverSwap(rb, rec); r.StopAndKeep != "new01" || r.Event.Type != EventSwapCompleted {
		t.Errorf("route-back: %+v, want new01 stopped and kept", r)
	}
}
