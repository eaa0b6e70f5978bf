package challenge

import "context"

// Request kinds a stand-in reports.
const (
	RequestRestart  = "restart"
	RequestSwap     = "swap"
	RequestRollback = "rollback"
)

// StandIn answers the next request in h's inbox in place of an owner, for
// tests of code that talks to owners (the admin API): a restart with
// restartErr, a swap or rollback with swap and swapErr. It returns the
// request's kind and, for a swap, the version asked for; "" when ctx ends
// first. Runtime hints in the inbox are skipped.
func StandIn(ctx context.Context, h *Handle, restartErr error, swap SwapResult, swapErr error) (kind, version string) {
	for {
		select {
		case <-ctx.Done():
			return "", ""
		case msg := <-h.inbox:
			switch m := msg.(type) {
			case msgRestart:
				if m.ticket.take() {
					m.reply <- restartErr
				}
				return RequestRestart, ""
			case msgSwap:
				if m.ticket.take() {
					m.reply <- swapReply{id: swap.ID, from: swap.From, to: swap.To, err: swapErr}
				}
				if m.kind == swapRollback {
					return RequestRollback, ""
				}
				return RequestSwap, m.version
			}
		}
	}
}

// Pending is how many messages wait in h's inbox.
func (h *Handle) Pending() int { return len(h.inbox) }
