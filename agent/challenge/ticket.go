package challenge

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// ticket settles the race between an API request that gives up on a busy
// challenge owner and the owner acting on that request later: exactly one
// of take (the owner, before acting) and withdraw (the requester, on
// timeout) succeeds. A nil ticket is always taken.
type ticket struct{ state atomic.Int32 }

const (
	ticketPending int32 = iota
	ticketTaken
	ticketWithdrawn
)

func newTicket() *ticket { return &ticket{} }

// take reports whether the owner may act; false means the requester gave up
// and has told its caller that nothing happened.
func (t *ticket) take() bool {
	return t == nil || t.state.CompareAndSwap(ticketPending, ticketTaken)
}

// withdraw reports whether the request is now certain never to run.
func (t *ticket) withdraw() bool {
	return t != nil && t.state.CompareAndSwap(ticketPending, ticketWithdrawn)
}

// ErrOwnerBusy means the owner did not take the request in time; it was
// withdrawn and will not run.
var ErrOwnerBusy = errors.New("busy")

// How long a request waits for an owner to take it into its inbox, and then
// to answer it. Tests shorten them.
var (
	OwnerAcceptTimeout = 10 * time.Second
	OwnerReplyTimeout  = 30 * time.Second
)

// askOwner puts msg (which carries t and answers on reply) into h's inbox
// and waits for the answer. When the owner does not take it within
// OwnerAcceptTimeout+OwnerReplyTimeout, or ctx ends first, the request is
// withdrawn and ErrOwnerBusy returned: the owner skips a withdrawn request,
// so "busy" means it did not happen and will not. An owner that took the
// request just before the deadline answers at once; that answer is returned.
func askOwner[R any](ctx context.Context, h *Handle, msg message, t *ticket, reply <-chan R) (R, error) {
	var zero R
	accept := time.NewTimer(OwnerAcceptTimeout)
	defer accept.Stop()
	select {
	case h.inbox <- msg:
	case <-ctx.Done():
		return zero, ErrOwnerBusy
	case <-accept.C:
		return zero, ErrOwnerBusy
	}
	answer := time.NewTimer(OwnerReplyTimeout)
	defer answer.Stop()
	select {
	case rep := <-reply:
		return rep, nil
	case <-ctx.Done():
	case <-answer.C:
	}
	if t.withdraw() {
		return zero, ErrOwnerBusy
	}
	// The owner took it and answers as soon as it has decided.
	select {
	case rep := <-reply:
		return rep, nil
	case <-ctx.Done():
		return zero, ErrOwnerBusy
	}
}
