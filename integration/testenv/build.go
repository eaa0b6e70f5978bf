package testenv

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const buildTimeout = 5 * time.Minute

var challengeBin struct {
	once sync.Once
	path string
	err  error
}

// BuildTestChallenge builds ./integration/testchallenge as a static linux
// binary once per test process and returns its path.
//
// The binary lives at a fixed path in the user cache dir, replaced atomically
// by each build: a test package has no hook to delete a per-process temp dir
// when it ends, and a fixed path leaks nothing.
func BuildTestChallenge(t testing.TB) string {
	t.Helper()
	challengeBin.once.Do(func() {
		challengeBin.path, challengeBin.err = buildChallenge()
	})
	if challengeBin.err != nil {
		t.Fatalf("building the test challenge: %v", challengeBin.err)
	}
	return challengeBin.path
}

func buildChallenge() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "berth-testenv")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	final := filepath.Join(dir, "testchallenge-linux-"+runtime.GOARCH)
	tmp := fmt.Sprintf("%s.%d.tmp", final, os.Getpid())
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", tmp, "./integration/testchallenge")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("go build ./integration/testchallenge: %w\n%s", err, out)
	}
	if err := os.Rename(tmp, final); err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return final, nil
}

// moduleRoot finds berth's module root from `go env GOMOD`, falling back to
// walking up from the working directory.
func moduleRoot() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output(); err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull {
			return filepath.Dir(gomod), nil
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// LocalImageOption tunes BuildLocalImage.
type LocalImageOption func(*localImageOptions)

type localImageOptions struct {
	keep bool
}

// KeepImage leaves the image in the engine after the test.
func KeepImage() LocalImageOption {
	return func(o *localImageOptions) { o.keep = true }
}

// BuildLocalImage builds the test challenge into the engine as ref with
// `docker build` (FROM scratch, so nothing is pulled), for tests that must not
// touch a registry. VERSION defaults to ref's tag; env adds or overrides
// variables. Unless KeepImage is given, cleanup removes the image and any
// container still using it, so refs should be unique to the test (put the
// agent id in the repository name when tests may share one).
func BuildLocalImage(t testing.TB, ref string, env map[string]string, opts ...LocalImageOption) {
	t.Helper()
	var o localImageOptions
	for _, opt := range opts {
		opt(&o)
	}
	bin := BuildTestChallenge(t)
	dir := t.TempDir()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "testchallenge"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	var df strings.Builder
	df.WriteString("FROM scratch\nCOPY testchallenge /testchallenge\n")
	for _, kv := range imageEnv(tagOf(ref), env) {
		k, v, _ := strings.Cut(kv, "=")
		if strings.ContainsAny(v, "\r\n") {
			t.Fatalf("BuildLocalImage: env %s holds a newline, which a Dockerfile cannot carry", k)
		}
		fmt.Fprintf(&df, "ENV %s=%s\n", k, dockerfileQuote(v))
	}
	df.WriteString("EXPOSE 8080/tcp\nENTRYPOINT [\"/testchallenge\"]\n")
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	// The classic builder needs no buildx plugin and builds FROM scratch
	// without a pull; --no-cache gives every ref its own image id, so removing
	// one test's image never touches another's containers.
	cmd := exec.CommandContext(ctx, "docker", "build", "--no-cache", "-q", "-t", ref, dir)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	cmd.WaitDelay = time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker build -t %s: %v\n%s", ref, err, out)
	}
	if !o.keep {
		t.Cleanup(func() { removeImage(t, ref) })
	}
}

// removeImage deletes ref after removing the containers still using it, since
// their own cleanup may be registered earlier and so run later.
func removeImage(t testing.TB, ref string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if out, err := DockerE(ctx, "ps", "-aq", "--no-trunc", "--filter", "ancestor="+ref); err == nil {
		if ids := strings.Fields(out); len(ids) > 0 {
			if _, err := DockerE(ctx, append([]string{"rm", "-f", "-v"}, ids...)...); err != nil {
				t.Logf("testenv cleanup of image %s: %v", ref, err)
			}
		}
	}
	if _, err := DockerE(ctx, "image", "rm", ref); err != nil && !isNoSuchImage(err) {
		t.Logf("testenv cleanup of image %s: %v", ref, err)
	}
}

func isNoSuchImage(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "no such image") || strings.Contains(s, "not found")
}

// imageEnv is VERSION=version plus env, as sorted KEY=value pairs.
func imageEnv(version string, env map[string]string) []string {
	all := map[string]string{}
	if version != "" {
		all["VERSION"] = version
	}
	maps.Copy(all, env)
	out := make([]string, 0, len(all))
	for _, k := range slices.Sorted(maps.Keys(all)) {
		out = append(out, k+"="+all[k])
	}
	return out
}

// tagOf returns the tag of an image reference, or "" when it has none.
func tagOf(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[i+1:]
	}
	return ""
}

// dockerfileQuote quotes v so ENV takes it literally, with no $ expansion.
func dockerfileQuote(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`)
	return `"` + r.Replace(v) + `"`
}
