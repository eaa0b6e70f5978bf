package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"time"

	"berth/agent/challenge"
	"berth/configs"
	"berth/docker"
	"berth/statestore"
	"berth/supervisor"
)

// request is what the reconciler serves, from the API and SIGHUP; the set
// is sealed.
type request interface{ reconcilerRequest() }

func (reqReload) reconcilerRequest() {}
func (reqPut) reconcilerRequest()    {}
func (reqDelete) reconcilerRequest() {}

// Requests the reconciler serves.
type (
	reqReload struct{ reply chan ReloadResult }
	reqPut    struct {
		spec  configs.Challenge
		reply chan error
	}
	reqDelete struct {
		name  string
		reply chan error
	}
	// ReloadResult says what a reload changed.
	ReloadResult struct {
		Added   []string `json:"added"`
		Updated []string `json:"updated"`
		Removed []string `json:"removed"`
		err     error
	}
)

// errConfigManaged refuses API changes to challenges the config declares.
var errConfigManaged = errors.New("declared in the config file; change it there and reload")

// reconciler owns the desired set of challenges and their services. It
// keeps no config of its own: it reads the one in force (a.config()) and is
// the only one to publish a new one, on reload.
type reconciler struct {
	a       *Agent
	root    *supervisor.Supervisor
	running map[string]configs.Challenge // challenge services started, by name
}

// reconcile brings desired state (config challenges, challenge_dirs and
// API-registered specs) to life once the engine answers, then serves
// reload, register and delete requests until ctx ends.
func (a *Agent) reconcile(ctx context.Context, root *supervisor.Supervisor) error {
	for !a.watcher.dockerUp() {
		if !supervisor.Sleep(ctx, a.clock, 100*time.Millisecond) {
			return nil
		}
	}
	if err := a.runtime.Prepare(ctx); err != nil {
		return err
	}
	r := &reconciler{a: a, root: root, running: map[string]configs.Challenge{}}
	if _, err := r.apply(ctx); err != nil {
		return err
	}
	a.reconciled.Store(true)
	a.log.Info().Int("challenges", len(r.running)).Msg("reconciled")
	for {
		select {
		case <-ctx.Done():
			return nil
		case req := <-a.requests:
			r.serve(ctx, req)
		}
	}
}

func (r *reconciler) serve(ctx context.Context, req request) {
	switch m := req.(type) {
	case reqReload:
		res := r.reload(ctx)
		m.reply <- res
	case reqPut:
		m.reply <- r.put(ctx, m.spec)
	case reqDelete:
		m.reply <- r.delete(ctx, m.name)
	}
}

// desired is every challenge that should run: the config's (with its
// challenge_dirs) and those registered over the API.
func (r *reconciler) desired() (map[string]configs.Challenge, map[string]string, error) {
	cfg := r.a.config()
	specs := map[string]configs.Challenge{}
	source := map[string]string{}
	for _, c := range cfg.Challenges {
		specs[c.Name], source[c.Name] = c, "config"
	}
	stored, err := r.a.store.ListSpecs()
	if err != nil {
		return nil, nil, fmt.Errorf("list stored challenges: %w", err)
	}
	for _, rec := range stored {
		if rec.Source != "api" {
			continue
		}
		if _, inConfig := specs[rec.Name]; inConfig {
			continue
		}
		c, err := storedAPISpec(cfg, rec)
		if err != nil {
			r.a.refuseStored(rec.Name, err)
			continue
		}
		specs[c.Name], source[c.Name] = c, "api"
	}
	return specs, source, nil
}

// apply makes the running set match the desired set.
func (r *reconciler) apply(ctx context.Context) (ReloadResult, error) {
	var res ReloadResult
	specs, source, err := r.desired()
	if err != nil {
		return res, err
	}
	if err := r.a.removeUndesired(ctx, specs); err != nil {
		return res, err
	}
	for name := range r.running {
		if _, ok := specs[name]; !ok {
			if err := r.stop(ctx, name); err != nil {
				return res, err
			}
			res.Removed = append(res.Removed, name)
		}
	}
	names := make([]string, 0, len(specs))
	for name := range specs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		spec := specs[name]
		old, running := r.running[name]
		changed, err := r.a.register(spec, source[name])
		if err != nil {
			return res, err
		}
		switch {
		case !running:
			if err := r.start(spec, changed); err != nil {
				return res, err
			}
			res.Added = append(res.Added, name)
		case old.SpecHash() != spec.SpecHash():
			r.running[name] = spec
			if h := r.a.dir.Get(name); h != nil {
				h.SetSpec(spec)
			}
			res.Updated = append(res.Updated, name)
		}
	}
	return res, nil
}

func (r *reconciler) start(spec configs.Challenge, changed bool) error {
	h := r.a.dir.Get(spec.Name)
	if h == nil {
		h = challenge.NewHandle(spec.Name)
		r.a.dir.Put(h)
	}
	r.a.metrics.challengeAdded(spec.Name)
	if _, err := r.root.Add("challenge/"+spec.Name, challenge.New(r.a.deps, h, spec, changed)); err != nil {
		r.a.metrics.challengeRemoved(spec.Name)
		return err
	}
	r.running[spec.Name] = spec
	return nil
}

// stop ends a challenge's service and removes its containers and records.
func (r *reconciler) stop(ctx context.Context, name string) error {
	if err := r.root.RemoveByName(ctx, "challenge/"+name); err != nil && !errors.Is(err, supervisor.ErrUnknownService) {
		return err
	}
	delete(r.running, name)
	r.a.dir.Remove(name)
	r.a.metrics.challengeRemoved(name)
	return r.a.forget(ctx, name)
}

// reload re-reads the config file, its BERTH_* overrides (through
// Options.Getenv) and challenge_dirs, the same load as berth run, and
// publishes the result once. An invalid config is refused whole and the
// running one stays.
func (r *reconciler) reload(ctx context.Context) ReloadResult {
	prev := r.a.config()
	next, err := configs.LoadAll(prev.Path, r.a.opts.Getenv)
	if err != nil {
		r.a.log.Error().Err(err).Str("config", prev.Path).Msg("reload refused: invalid config; keeping the running one")
		return ReloadResult{err: err}
	}
	if next.Agent.ID != prev.Agent.ID || next.Agent.API != prev.Agent.API || !reflect.DeepEqual(next.Agent.Proxy, prev.Agent.Proxy) ||
		next.Agent.DataDir != prev.Agent.DataDir || next.Agent.Network != prev.Agent.Network || next.Agent.Backend != prev.Agent.Backend {
		r.a.log.Warn().Msg("agent settings changed in the config; they apply at the next berth restart")
	}
	// The policy applies at once (to stored API specs too); the other agent
	// settings at the next start.
	policy := next.Agent.Policy
	next.Agent = prev.Agent
	next.Agent.Policy = policy
	r.use(next)
	res, err := r.apply(ctx)
	if err != nil {
		r.use(prev)
		res.err = err
		return res
	}
	r.a.log.Info().Strs("added", res.Added).Strs("updated", res.Updated).Strs("removed", res.Removed).Msg("config reloaded")
	return res
}

// use publishes cfg as the config in force: the API parses and checks later
// specs with its defaults and policy, the reconciler desires its challenges,
// and the engine client enforces its maxima.
func (r *reconciler) use(cfg *configs.Config) {
	r.a.setConfig(cfg)
	if r.a.engine != nil {
		r.a.engine.SetLimits(engineLimits(cfg.Agent.Policy))
	}
}

// put registers or updates a challenge from the API.
func (r *reconciler) put(ctx context.Context, spec configs.Challenge) error {
	cfg := r.a.config()
	if _, ok := cfg.Challenge(spec.Name); ok {
		return errConfigManaged
	}
	// The API checked spec against the config in force when it parsed it; a
	// reload may have replaced that config since.
	if err := cfg.CheckAPIChallenge(spec); err != nil {
		return &specRefusedError{err: err}
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	err = r.a.store.Update(func(tx *statestore.Tx) error {
		prev, ok, err := tx.GetSpec(spec.Name)
		if err != nil {
			return err
		}
		if ok && prev.Source == "api" && prev.SpecHash == spec.SpecHash() {
			return nil
		}
		// Stored as the API's spec; apply registers and starts or swaps it.
		return tx.PutSpec(statestore.SpecRecord{Name: spec.Name, Source: "api", Spec: raw, SpecHash: "", UpdatedAt: r.a.clock.Now()})
	})
	if err != nil {
		return err
	}
	_, err = r.apply(ctx)
	return err
}

// delete stops and removes a challenge registered over the API.
func (r *reconciler) delete(ctx context.Context, name string) error {
	if _, ok := r.a.config().Challenge(name); ok {
		return errConfigManaged
	}
	rec, ok, err := r.a.store.GetSpec(name)
	if err != nil {
		return err
	}
	if !ok || rec.Source != "api" {
		return errUnknownChallenge
	}
	if err := r.a.store.Update(func(tx *statestore.Tx) error { return tx.DeleteSpec(name) }); err != nil {
		return err
	}
	_, err = r.apply(ctx)
	return err
}

var errUnknownChallenge = errors.New("no such challenge")

// engineLimits are the policy maxima the engine client enforces at create.
func engineLimits(p configs.PolicyConfig) docker.Limits {
	return docker.Limits{NanoCPUs: int64(math.Round(p.MaxCPUs * 1e9)), MemoryBytes: int64(p.MaxMemory), Pids: p.MaxPids}
}
