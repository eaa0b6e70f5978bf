package challenge

// message is what an owner's inbox carries: requests from the API and hints
// from the runtime watcher. The set is sealed: only this package adds to it.
type message interface{ inboxMessage() }

// jobReport is what the owner's own jobs (image pulls, stops, probes and
// swaps) send back when they have news. Sealed like message.
type jobReport interface{ jobReport() }

type (
	// msgInstanceEvent is a runtime event about one of the challenge's instances.
	msgInstanceEvent struct{ ev InstanceEvent }
	// msgInstanceList is the runtime's full list of the challenge's instances.
	msgInstanceList struct{ instances []Instance }
	// msgRestart asks for a restart now; it also clears a give-up. A
	// withdrawn ticket means the requester was told nothing happened.
	msgRestart struct {
		reply  chan error
		ticket *ticket
	}
	// msgSwap asks for a swap to version (the previous one for a rollback).
	msgSwap struct {
		version string
		kind    string
		reply   chan swapReply
		ticket  *ticket
	}
)

type (
	// msgSaveState asks for a state snapshot now.
	msgSaveState struct {
		reply  chan saveReply
		ticket *ticket
	}
	// msgRestoreState asks to import snapshot seq into the serving instance.
	msgRestoreState struct {
		seq    uint64
		reply  chan error
		ticket *ticket
	}
)

type saveReply struct {
	snap Snapshot
	err  error
}

func (msgSaveState) inboxMessage()     {}
func (msgRestoreState) inboxMessage()  {}
func (msgInstanceEvent) inboxMessage() {}
func (msgInstanceList) inboxMessage()  {}
func (msgRestart) inboxMessage()       {}
func (msgSwap) inboxMessage()          {}

type swapReply struct {
	id, from, to string
	err          error
}

type (
	// msgPulling: the image job found it must pull.
	msgPulling struct {
		gen int
		ref string
	}
	// msgImage ends an image job: the image to run is present, or err.
	msgImage struct {
		gen              int
		tag, ref, digest string
		err              error
	}
	// msgStopped ends a stop job.
	msgStopped struct {
		id  string
		err error
	}
	// msgRecoveryStopped ends the stop of a recovered swap's old instance;
	// ev records how the swap ended.
	msgRecoveryStopped struct {
		id  string
		ev  Event
		err error
	}
	// msgUpdateCheck ends a registry check for a newer version.
	msgUpdateCheck struct {
		constraint, tag string
		err             error
	}
	// msgSnapshotTaken ends a snapshot export; why says what asked for it.
	msgSnapshotTaken struct {
		why  string
		snap Snapshot
		err  error
	}
	// msgRestored ends one import attempt of run.
	msgRestored struct {
		run     *restoreRun
		snap    Snapshot
		corrupt []uint64
		found   bool
		err     error
	}
	// msgStandbyProbed is one probe of the standby of.
	msgStandbyProbed struct {
		of *Instance
		r  ProbeResult
	}
	// msgStandbyFed ends a state import into the standby of.
	msgStandbyFed struct {
		of  *Instance
		err error
	}
	// msgDiscarded ends the removal of an instance recorded in slot.
	msgDiscarded struct {
		slot, id string
		err      error
	}
	// msgImagePruned ends the removal of a previous version's image.
	msgImagePruned struct {
		ref string
		err error
	}
	// msgProbed is one probe's result; of is the owner's current instance
	// when the probe began (a new value after every start, adoption or
	// cut-over, so a result is never taken for a later instance's).
	msgProbed struct {
		of *Instance
		r  ProbeResult
	}
	// msgCutOver: the swap's new instance is ready; the owner makes it
	// active and answers on reply.
	msgCutOver struct {
		job   *swapJob
		inst  Instance
		slot  string
		tag   string
		dig   string
		reply chan error
	}
	// msgSwapProgress: the swap's plan changed; publish it.
	msgSwapProgress struct{ job *swapJob }
	// msgSwapDone ends a swap (or its drain, after the cut-over).
	msgSwapDone struct {
		job *swapJob
		err error
	}
)

func (msgPulling) jobReport()         {}
func (msgImage) jobReport()           {}
func (msgStopped) jobReport()         {}
func (msgProbed) jobReport()          {}
func (msgUpdateCheck) jobReport()     {}
func (msgRecoveryStopped) jobReport() {}
func (msgImagePruned) jobReport()     {}
func (msgSnapshotTaken) jobReport()   {}
func (msgStandbyProbed) jobReport()   {}
func (msgStandbyFed) jobReport()      {}
func (msgDiscarded) jobReport()       {}
func (msgRestored) jobReport()        {}
func (msgCutOver) jobReport()         {}
func (msgSwapDone) jobReport()        {}
func (msgSwapProgress) jobReport()    {}
