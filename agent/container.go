package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"berth/configs"
	"berth/docker"
	"berth/statestore"
)

// maxSecretSize bounds a secret env file.
const maxSecretSize = 64 << 10

// bringUp makes the challenge's container run: adopt, start or create it.
func (c *challenge) bringUp(ctx context.Context) {
	if c.lifecycle == Failed && c.recovered {
		return
	}
	if c.dockerUp != nil && !c.dockerUp() {
		// Not a failure of the challenge; try again when the engine answers.
		c.armAction(time.Second)
		return
	}
	// An interrupted swap and a kept container are settled even for a
	// challenge that has given up: they outlive the give-up.
	if !c.recovered && c.recoverTimer == nil {
		c.retryRecovery(ctx)
	}
	if c.lifecycle == Failed {
		return
	}
	err := c.ensureRunning(ctx)
	if err == nil && c.pendingSwap && c.recovered {
		c.pendingSwap = false
		if r := c.startSwap(ctx, c.spec.Version, swapConfig); r.err != nil {
			c.log.Error().Err(r.err).Msg("swap to the changed config entry")
		}
	}
	if err == nil || ctx.Err() != nil {
		return
	}
	c.lastErr = err.Error()
	var refused *refusal
	if errors.As(err, &refused) {
		c.setLifecycle(Failed)
		c.persist(statestore.Event{Type: refused.event, Message: "start refused", Error: err.Error()})
		return
	}
	if docker.IsTransient(err) || (c.dockerUp != nil && !c.dockerUp()) {
		c.log.Warn().Err(err).Msg("docker unavailable; will retry")
		c.armAction(time.Second)
		c.publish()
		return
	}
	c.scheduleRestart(statestore.Event{Type: "start_failed", Message: "could not start container", Error: err.Error()})
}

// refusal is an error retrying cannot fix; the challenge waits in failed
// until its spec changes or an operator restarts it.
type refusal struct {
	event string
	err   error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// activeSlot is the slot of the serving container.
func (c *challenge) activeSlot() string {
	if c.rec.ActiveSlot == "" {
		return slotA
	}
	return c.rec.ActiveSlot
}

func (c *challenge) ensureRunning(ctx context.Context) error {
	active := c.activeSlot()
	if slot, ok := c.rec.Slots[active]; !ok || slot.ContainerID == "" {
		c.claimByName(ctx, active)
	}
	if slot, ok := c.rec.Slots[active]; ok && slot.ContainerID != "" {
		done, err := c.reuse(ctx, slot)
		if done || err != nil {
			return err
		}
	}
	tag, err := resolveVersion(ctx, c.engine, c.spec.Image, c.spec.Version)
	if err != nil {
		return err
	}
	ref := c.spec.Image + ":" + tag
	digest, err := c.ensureImage(ctx, ref)
	if err != nil {
		return err
	}
	if c.spec.Digest != "" && digest != c.spec.Digest {
		return &refusal{event: "digest_mismatch", err: fmt.Errorf("image %s has digest %q, but the challenge pins %s", ref, digest, c.spec.Digest)}
	}
	return c.createAndStart(ctx, ref, tag, digest)
}

// claimByName finds this challenge's container by its deterministic name and
// labels when no record names it (a lost store, or a crash between create
// and persist), so it is adopted instead of duplicated.
func (c *challenge) claimByName(ctx context.Context, slot string) {
	name := docker.ContainerName(c.agentID, c.spec.Name, slot)
	ct, err := c.engine.Inspect(ctx, name)
	if err != nil || ct.Labels[docker.LabelAgent] != c.agentID || ct.Labels[docker.LabelChallenge] != c.spec.Name {
		return
	}
	c.rec.Slots[slot] = statestore.SlotRecord{ContainerID: ct.ID, ContainerName: ct.Name, Image: ct.Image,
		Version: ct.Labels[docker.LabelVersion], SpecHash: ct.Labels[docker.LabelSpecHash], CreatedAt: c.clock.Now()}
	c.log.Info().Str(fieldContainerID, shortID(ct.ID)).Msg("found unrecorded container by name")
}

// reuse adopts a running container of the current spec or starts a stopped
// one again (the fast path after a crash). done=false means create anew.
func (c *challenge) reuse(ctx context.Context, slot statestore.SlotRecord) (bool, error) {
	ct, err := c.engine.Inspect(ctx, slot.ContainerID)
	if errors.Is(err, docker.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if v := docker.ForeignVolume(c.agentID, c.spec.Name, ct); v != "" {
		// Made before volumes were namespaced: replace it like a changed spec.
		c.log.Warn().Str(fieldContainerID, shortID(ct.ID)).Str("volume", v).Msg("container mounts a volume outside its namespace; replacing it")
		slot.SpecHash = ""
		if s, ok := c.rec.Slots[c.activeSlot()]; ok && s.ContainerID == ct.ID {
			s.SpecHash = ""
			c.rec.Slots[c.activeSlot()] = s
		}
	}
	if slot.SpecHash != c.hash && ct.Running {
		// Serve on with the old spec while a blue-green swap brings in the new.
		c.log.Info().Str(fieldContainerID, shortID(ct.ID)).Msg("spec changed; swapping to it")
		c.adopt(ct)
		c.pendingSwap = true
		return true, nil
	}
	if slot.SpecHash != c.hash {
		c.log.Info().Str(fieldContainerID, shortID(ct.ID)).Msg("spec changed; replacing stopped container")
		if err := c.engine.Stop(ctx, ct.ID, c.spec.Restart.StopTimeout); err != nil {
			return false, err
		}
		return false, c.engine.Remove(ctx, ct.ID)
	}
	if ct.Running {
		c.adopt(ct)
		return true, nil
	}
	if c.lifecycle == Registered {
		// It stopped while no berth was watching: record that exit like any other.
		code := ct.ExitCode
		c.rec.LastExitCode = &code
		c.rec.Restarts++
		ev := statestore.Event{Type: "exited", ContainerID: ct.ID, ExitCode: &code, OOM: ct.OOMKilled,
			Message: fmt.Sprintf("container exited with code %d while berth was not running", code)}
		if ct.OOMKilled {
			ev.Type = "oom_killed"
		}
		c.persist(ev)
	}
	c.setLifecycle(Starting)
	c.publish() // the record already names this container; "started" is persisted next
	if err := c.engine.Start(ctx, ct.ID); err != nil {
		c.log.Warn().Err(err).Msg("starting existing container failed; recreating")
		return false, c.engine.Remove(ctx, ct.ID)
	}
	ct, err = c.engine.Inspect(ctx, ct.ID)
	if err != nil {
		return false, err
	}
	c.started(ct, slot.Version, slot.Digest)
	return true, nil
}

func (c *challenge) ensureImage(ctx context.Context, ref string) (string, error) {
	digest, err := c.imageDigest(ctx, c.spec.Name, c.spec.PullPolicy, ref, func() {
		c.setLifecycle(Pulling)
		c.persist(statestore.Event{Type: "pulling", Message: "pulling " + ref})
	})
	if err != nil {
		return "", err
	}
	return digest, nil
}

// imageDigest makes ref present as policy says, pulling if needed (onPull
// runs first), and returns its repository digest.
func (sh *shared) imageDigest(ctx context.Context, challenge, policy, ref string, onPull func()) (string, error) {
	if policy != "always" {
		info, err := sh.engine.ImageInfo(ctx, ref)
		switch {
		case err == nil:
			return info.RepoDigest(ref), nil
		case !errors.Is(err, docker.ErrNotFound):
			return "", err
		case policy == "never":
			return "", &refusal{event: "start_failed", err: fmt.Errorf("image %s is not present locally and pull_policy is never", ref)}
		}
	}
	if onPull != nil {
		onPull()
	}
	start := sh.clock.Now()
	lastLog := time.Time{}
	log := sh.log.With().Str(fieldChallenge, challenge).Str("image", ref).Logger()
	digest, err := sh.engine.Pull(ctx, ref, func(p docker.PullProgress) {
		if now := time.Now(); now.Sub(lastLog) > 5*time.Second {
			lastLog = now
			log.Info().Str("status", p.Status).Int64("current", p.Current).Int64("total", p.Total).Msg("pull progress")
		}
	})
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", ref, err)
	}
	sh.metrics.pullDuration.WithLabelValues(challenge).Observe(sh.clock.Now().Sub(start).Seconds())
	ev := statestore.Event{Type: "pulled", Challenge: challenge, Message: fmt.Sprintf("pulled %s in %s", ref, sh.clock.Now().Sub(start).Round(time.Millisecond)), To: digest}
	if saved, err := sh.store.AppendEvent(ev); err == nil {
		ev = saved
	}
	logEvent(log, ev)
	return digest, nil
}

// containerSpec is the container for spec (whose hash is hash) in slot. It
// reads only its arguments and shared state, so swaps may call it too.
func (sh *shared) containerSpec(cs configs.Challenge, hash, ref, tag, slot string) (docker.ContainerSpec, error) {
	env, err := environment(cs)
	if err != nil {
		return docker.ContainerSpec{}, err
	}
	name := docker.ContainerName(sh.agentID, cs.Name, slot)
	labels := docker.OwnerLabels(sh.agentID)
	labels[docker.LabelChallenge] = cs.Name
	labels[docker.LabelVersion] = tag
	labels[docker.LabelSlot] = slot
	labels[docker.LabelSpecHash] = hash
	spec := docker.ContainerSpec{
		Name:            name,
		Image:           ref,
		Env:             env,
		Labels:          labels,
		Port:            cs.Port,
		Publish:         sh.agent.Reach != "network",
		Network:         sh.agent.Network,
		Aliases:         []string{cs.Name + "-" + slot},
		NanoCPUs:        int64(math.Round(cs.Resources.CPUs * 1e9)),
		MemoryBytes:     int64(cs.Resources.Memory),
		PidsLimit:       cs.Resources.Pids,
		ReadOnlyRootfs:  cs.Security.ReadOnly,
		CapDrop:         cs.Security.CapDrop,
		NoNewPrivileges: cs.Security.NoNewPrivileges,
		Tmpfs:           cs.Security.Tmpfs,
		StopTimeout:     cs.Restart.StopTimeout,
	}
	for _, v := range cs.Volumes {
		// Each challenge has its own volume namespace (docker refuses any other name).
		spec.Volumes = append(spec.Volumes, docker.VolumeMount{Name: docker.VolumeName(sh.agentID, cs.Name, v.Name), Target: v.Target, ReadOnly: v.ReadOnly})
	}
	return spec, nil
}

// environment builds the container env; secret values are read here and
// never logged or stored.
func environment(cs configs.Challenge) ([]string, error) {
	env := make([]string, 0, len(cs.Env)+len(cs.SecretEnvFiles))
	for k, v := range cs.Env {
		env = append(env, k+"="+v)
	}
	for k, path := range cs.SecretEnvFiles {
		value, err := readSecret(path)
		if err != nil {
			return nil, fmt.Errorf("secret_env_files.%s: %w", k, err)
		}
		env = append(env, k+"="+value)
	}
	sort.Strings(env)
	return env, nil
}

// readSecret reads a secret file named by the operator's config: a regular
// file (after symlinks) of at most maxSecretSize bytes. The open never blocks,
// so a FIFO or a device cannot stall the challenge's goroutine.
func readSecret(path string) (string, error) {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(resolved, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file (%s)", path, info.Mode().Type())
	}
	buf, err := io.ReadAll(io.LimitReader(f, maxSecretSize+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(buf) > maxSecretSize {
		return "", fmt.Errorf("%s is larger than %d bytes", path, maxSecretSize)
	}
	value := string(buf)
	for len(value) > 0 && (value[len(value)-1] == '\n' || value[len(value)-1] == '\r') {
		value = value[:len(value)-1]
	}
	return value, nil
}

func (c *challenge) createAndStart(ctx context.Context, ref, tag, digest string) error {
	slot := c.activeSlot()
	spec, err := c.containerSpec(c.spec, c.hash, ref, tag, slot)
	if err != nil {
		return &refusal{event: "start_failed", err: err}
	}
	c.setLifecycle(Starting)
	c.persist()
	id, err := c.engine.Create(ctx, spec)
	if errors.Is(err, docker.ErrConflict) {
		// A container of that deterministic name exists but no record
		// claims it (e.g. berth died between create and persist): replace it.
		if old, ierr := c.engine.Inspect(ctx, spec.Name); ierr == nil && old.Labels[docker.LabelAgent] == c.agentID {
			if rerr := c.engine.Remove(ctx, old.ID); rerr != nil {
				return rerr
			}
			id, err = c.engine.Create(ctx, spec)
		}
	}
	if err != nil {
		if errors.Is(err, docker.ErrRefused) {
			return &refusal{event: "start_failed", err: err}
		}
		return err
	}
	c.rec.Slots[slot] = statestore.SlotRecord{ContainerID: id, ContainerName: spec.Name, Image: ref, Version: tag,
		Digest: digest, SpecHash: c.hash, CreatedAt: c.clock.Now()}
	c.rec.ActiveSlot = slot
	c.persist() // record the id before starting, so a crash now cannot orphan it
	if err := c.engine.Start(ctx, id); err != nil {
		return err
	}
	ct, err := c.engine.Inspect(ctx, id)
	if err != nil {
		return err
	}
	c.started(ct, tag, digest)
	return nil
}

// started records a container that is now running and begins probing it.
func (c *challenge) started(ct docker.Container, version, digest string) {
	c.current = &ct
	c.upstream = c.upstreamFor(ct)
	c.rec.Version = version
	c.rec.Digest = digest
	c.rec.StartedAt = ct.StartedAt
	c.rec.ActiveSlot = c.activeSlot()
	c.lastErr = ""
	c.tracker = NewHealthTracker(c.clock.Now())
	c.setLifecycle(Running)
	c.persist(statestore.Event{Type: "started", ContainerID: ct.ID, Message: "container started", To: c.upstream})
	c.armProbe(0)
}

// adopt takes over a container that is already running (after berth restarted).
func (c *challenge) adopt(ct docker.Container) {
	c.current = &ct
	c.upstream = c.upstreamFor(ct)
	slot := c.rec.Slots[c.activeSlot()]
	c.rec.Version = slot.Version
	c.rec.Digest = slot.Digest
	// Keep the recorded health so clients never see a healthy container flip to unknown.
	c.tracker = NewHealthTracker(ct.StartedAt)
	if h := Health(c.rec.Health); h != "" {
		c.tracker.State = h
		c.tracker.PassedOnce = h == HealthHealthy || h == HealthDegraded
	}
	c.setLifecycle(Running)
	c.persist(statestore.Event{Type: "adopted", ContainerID: ct.ID, Message: "adopted running container", To: c.upstream})
	c.armProbe(0)
}

func (c *challenge) upstreamFor(ct docker.Container) string { return c.upstreamOn(ct, c.spec.Port) }

// upstreamOn is the address berth dials for port in ct, as agent.reach says.
func (sh *shared) upstreamOn(ct docker.Container, port int) string {
	if sh.agent.Reach == "network" {
		if ip := ct.NetworkIPs[sh.agent.Network]; ip != "" {
			return "http://" + net.JoinHostPort(ip, strconv.Itoa(port))
		}
		return ""
	}
	if ct.HostPort == "" {
		return ""
	}
	return "http://" + net.JoinHostPort("127.0.0.1", ct.HostPort)
}
