package challenge

// Event types: the vocabulary of the event log (SPEC §5.7), written by the
// challenge owners and by the agent, read by the API, the CLI and alerts.
const (
	EventRegistered         = "registered"
	EventRemoved            = "removed"
	EventRefused            = "refused"
	EventPulling            = "pulling"
	EventPulled             = "pulled"
	EventStarted            = "started"
	EventAdopted            = "adopted"
	EventExited             = "exited"
	EventOOMKilled          = "oom_killed"
	EventStartFailed        = "start_failed"
	EventPullFailed         = "pull_failed"
	EventDigestMismatch     = "digest_mismatch"
	EventUnhealthy          = "unhealthy"
	EventHealthChanged      = "health_changed"
	EventRestarting         = "restarting"
	EventBackoffReset       = "backoff_reset"
	EventGaveUp             = "gave_up"
	EventStopped            = "stopped"
	EventSwapStarted        = "swap_started"
	EventSwapPhase          = "swap_phase"
	EventSwapCompleted      = "swap_completed"
	EventSwapFailed         = "swap_failed"
	EventSwapRolledBack     = "swap_rolled_back"
	EventOrphanRemoved      = "orphan_removed"
	EventDockerDisconnected = "docker_disconnected"
	EventDockerReconnected  = "docker_reconnected"
	EventCheckpointCreated  = "checkpoint_created"
	EventUpdateAvailable    = "update_available"
	EventStateSaved         = "state_saved"
	EventStateSaveFailed    = "state_save_failed"
	EventStateRestored      = "state_restored"
	EventStateRestoreFailed = "state_restore_failed"
	EventStandbyReady       = "standby_ready"
	EventStandbyPromoted    = "standby_promoted"
)

// Log field names, shared by every line berth writes about a challenge.
const (
	FieldChallenge   = "challenge"
	FieldContainerID = "container_id"
	FieldVersion     = "version"
	FieldSlot        = "slot"
	FieldEvent       = "event"
	FieldComponent   = "component"
	FieldSeq         = "seq"
	FieldExitCode    = "exit_code"
	FieldOOM         = "oom"
	FieldFrom        = "from"
	FieldTo          = "to"
	FieldAttempt     = "attempt"
	FieldDelayMS     = "delay_ms"
	FieldError       = "error"
	FieldSwap        = "swap"
	FieldPhase       = "phase"
	FieldImage       = "image"
	FieldRetryIn     = "retry_in"
)

// ShortID is a container id as logs and events show it.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
