package testenv

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestAgentIDShape(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	for _, name := range []string{
		"TestX", "TestSwap/old_version_drains", "Test" + strings.Repeat("Long_", 40), "Test/__/", "TestÜmlaut",
	} {
		id := newAgentID(name)
		if !valid.MatchString(id) || strings.Contains(id, "--") {
			t.Errorf("newAgentID(%q) = %q: not a valid agent id", name, id)
		}
		if len(NetworkName(id)) > 63 {
			t.Errorf("NetworkName(%q) longer than 63", id)
		}
	}
	if a, b := newAgentID("TestX"), newAgentID("TestX"); a == b {
		t.Errorf("two ids for one test are equal: %s", a)
	}
}

func TestImageHelpers(t *testing.T) {
	for ref, want := range map[string]string{
		"127.0.0.1:5000/a/b:1.2.3": "1.2.3",
		"127.0.0.1:5000/a/b":       "",
		"a/b@sha256:abc":           "",
		"a:v1@sha256:abc":          "v1",
	} {
		if got := tagOf(ref); got != want {
			t.Errorf("tagOf(%q) = %q, want %q", ref, got, want)
		}
	}
	got := imageEnv("1.0.0", map[string]string{"B": "2", "A": "1"})
	if want := []string{"A=1", "B=2", "VERSION=1.0.0"}; !slices.Equal(got, want) {
		t.Errorf("imageEnv = %v, want %v", got, want)
	}
	if got := imageEnv("1.0.0", map[string]string{"VERSION": "x"}); !slices.Equal(got, []string{"VERSION=x"}) {
		t.Errorf("env must override VERSION, got %v", got)
	}
	if got := dockerfileQuote(`a "$b" \c`); got != `"a \"\$b\" \\c"` {
		t.Errorf("dockerfileQuote = %s", got)
	}
}

// fatalTB records a Fatalf and ends the calling goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestWaitFor(t *testing.T) {
	n := 0
	WaitFor(t, 5*time.Second, "third poll", func() (bool, error) {
		n++
		return n == 3, nil
	})

	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		WaitFor(f, 120*time.Millisecond, "never", func() (bool, error) { return false, errors.New("still no") })
	}()
	<-done
	if !strings.Contains(f.msg, "never") || !strings.Contains(f.msg, "still no") {
		t.Fatalf("timeout message %q lacks what and the last error", f.msg)
	}
}

// TestPushedImageShape checks the image config without an engine.
func TestPushedImageShape(t *testing.T) {
	reg := StartRegistry(t)
	ref, digest := reg.PushChallenge(t, "berth-test/shape", "1.2.3", map[string]string{"HEALTH_FAIL": "1"})
	reg.PushChallenge(t, "berth-test/shape", "2.0.0", nil)
	if tags := reg.Tags(t, "berth-test/shape"); !slices.Equal(tags, []string{"1.2.3", "2.0.0"}) {
		t.Fatalf("tags = %v", tags)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, remote.WithContext(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); d.String() != digest {
		t.Fatalf("registry digest %s, PushChallenge said %s", d, digest)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH ||
		!slices.Equal(c.Entrypoint, []string{"/testchallenge"}) ||
		!slices.Contains(c.Env, "VERSION=1.2.3") || !slices.Contains(c.Env, "HEALTH_FAIL=1") {
		t.Fatalf("config = %+v", cf)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok {
		t.Fatalf("8080/tcp not exposed: %v", c.ExposedPorts)
	}
}
