package agent

import (
	"context"
	"errors"
	"net/http"

	"berth/agent/api"
	"berth/agent/challenge"
	"berth/configs"
	"berth/statestore"
)

// apiHandler is the admin API over this agent; the adapters below join it
// to the state store and the reconciler. The checkpointer serves
// api.Checkpoints itself.
func (a *Agent) apiHandler() http.Handler {
	opts := api.Options{
		Directory: a.dir,
		Events:    apiEvents{a.store},
		Desired:   apiDesired{a},
		Snapshots: lifeStore{a.store},
		Ready:     a.readiness,
		Health:    a.healthReport,
		Token:     a.token,
		Log:       a.log.With().Str(fieldComponent, "api").Logger(),
	}
	// Interfaces holding a nil pointer would not read as absent.
	if a.runtime != nil {
		opts.Runtime = a.runtime
	}
	if a.checkpoints != nil {
		opts.Checkpoints = a.checkpoints
	}
	if a.metrics != nil {
		opts.Metrics = a.metrics.handler()
	}
	return api.New(opts)
}

// apiEvents is the state store's event log as the admin API reads it.
type apiEvents struct{ store *statestore.Store }

func (e apiEvents) Events(since uint64, challenge string) ([]challenge.Event, error) {
	return queryEvents(e.store, statestore.EventQuery{Since: since, Challenge: challenge})
}

func (e apiEvents) Subscribe(buffer int) api.Subscription { return subscribeEvents(e.store, buffer) }

// LastSeq lets the status page start from the newest events.
func (e apiEvents) LastSeq() uint64 { return e.store.LastSeq() }

// apiDesired hands the admin API's changes to the reconciler, one request
// at a time, and gives its refusals the API's reasons.
type apiDesired struct{ a *Agent }

func (d apiDesired) Config() *configs.Config { return d.a.config() }

func (d apiDesired) Put(ctx context.Context, spec configs.Challenge) error {
	reply := make(chan error, 1)
	if err := d.a.ask(ctx, reqPut{spec: spec, reply: reply}); err != nil {
		return refusal{api.ErrNotReady, err}
	}
	return apiReason(<-reply)
}

func (d apiDesired) Delete(ctx context.Context, name string) error {
	reply := make(chan error, 1)
	if err := d.a.ask(ctx, reqDelete{name: name, reply: reply}); err != nil {
		return refusal{api.ErrNotReady, err}
	}
	return apiReason(<-reply)
}

func (d apiDesired) Reload(ctx context.Context) (api.ReloadResult, error) {
	res, err := d.a.Reload(ctx)
	if err != nil {
		return api.ReloadResult{}, apiReason(err)
	}
	return api.ReloadResult{Added: res.Added, Updated: res.Updated, Removed: res.Removed}, nil
}

// apiReason tags a reconciler's refusal with the admin API's reason for it;
// other errors pass unchanged.
func apiReason(err error) error {
	var refused *specRefusedError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errNotReady):
		return refusal{api.ErrNotReady, err}
	case errors.Is(err, errConfigManaged):
		return refusal{api.ErrConfigManaged, err}
	case errors.Is(err, errUnknownChallenge):
		return refusal{api.ErrUnknownChallenge, err}
	case errors.As(err, &refused):
		return refusal{api.ErrSpecRefused, err}
	}
	return err
}

// refusal is err, matching reason too; its message stays err's.
type refusal struct{ reason, err error }

func (r refusal) Error() string   { return r.err.Error() }
func (r refusal) Unwrap() []error { return []error{r.reason, r.err} }
