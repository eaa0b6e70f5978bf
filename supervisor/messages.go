package supervisor

// message is a request to the owner goroutine. The set is closed: every change to a
// running Supervisor's state from outside arrives as one of these.
type message interface{ isMessage() }

// addMsg registers and starts a service.
type addMsg struct {
	name  string
	svc   Service
	reply chan addReply // buffered: the owner never blocks on a reply
}

type addReply struct {
	id  ServiceID
	err error
}

// removeMsg stops a service (by id, or by name when byName is set) and replies once
// its Serve has returned.
type removeMsg struct {
	id     ServiceID
	name   string
	byName bool
	reply  chan error // buffered: the caller may have given up waiting
}

// listMsg asks for the sorted names of all registered services.
type listMsg struct {
	reply chan []string // buffered
}

func (addMsg) isMessage()    {}
func (removeMsg) isMessage() {}
func (listMsg) isMessage()   {}
