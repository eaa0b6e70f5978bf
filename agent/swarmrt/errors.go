package swarmrt

import "berth/agent/dockerrt"

// wrap adds the lifecycle's error kinds to an engine error, as the Docker
// runtime does.
func wrap(err error) error { return dockerrt.WrapEngineError(err) }
