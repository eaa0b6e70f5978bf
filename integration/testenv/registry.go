package testenv

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const registryTimeout = time.Minute

// originLabel makes each pushed image's content, and so its image id in the
// engine, unique to its reference: removing one test's image then never
// matches another test's containers.
const originLabel = "berth-testenv.origin"

// Registry is an in-process OCI registry on loopback, which the engine pulls
// from over plain HTTP.
type Registry struct {
	// Host is "127.0.0.1:<port>", the registry part of image references.
	Host string

	srv *httptest.Server
}

// StartRegistry serves an empty registry until the test ends.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return &Registry{Host: strings.TrimPrefix(srv.URL, "http://"), srv: srv}
}

var challengeLayer struct {
	once  sync.Once
	layer v1.Layer
	err   error
}

// layerFor builds, once per process, the layer holding the test challenge at
// /testchallenge and an empty /tmp to mount a tmpfs on.
func layerFor(t testing.TB) v1.Layer {
	t.Helper()
	bin := BuildTestChallenge(t)
	challengeLayer.once.Do(func() {
		data, err := os.ReadFile(bin)
		if err != nil {
			challengeLayer.err = err
			return
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		hdrs := []*tar.Header{
			{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
			{Name: "testchallenge", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data))},
		}
		for _, h := range hdrs {
			if err := tw.WriteHeader(h); err != nil {
				challengeLayer.err = err
				return
			}
		}
		if _, err := tw.Write(data); err != nil {
			challengeLayer.err = err
			return
		}
		if err := tw.Close(); err != nil {
			challengeLayer.err = err
			return
		}
		tarBytes := buf.Bytes()
		challengeLayer.layer, challengeLayer.err = tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(tarBytes)), nil
		}, tarball.WithCompressedCaching)
	})
	if challengeLayer.err != nil {
		t.Fatalf("building the test challenge layer: %v", challengeLayer.err)
	}
	return challengeLayer.layer
}

// PushChallenge pushes the test challenge as <Host>/<repo>:<tag> with
// VERSION=<tag> plus env (which may override VERSION), and returns the
// reference and the manifest digest ("sha256:…"). The same inputs give the same
// digest. Cleanup removes the image from the engine if a test pulled it.
func (r *Registry) PushChallenge(t testing.TB, repo, tag string, env map[string]string) (ref string, digest string) {
	t.Helper()
	ref = r.Host + "/" + repo + ":" + tag
	tagRef, err := name.NewTag(ref, name.Insecure, name.StrictValidation)
	if err != nil {
		t.Fatalf("PushChallenge: %v", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layerFor(t))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Config = v1.Config{
		Entrypoint:   []string{"/testchallenge"},
		Env:          imageEnv(tag, env),
		ExposedPorts: map[string]struct{}{"8080/tcp": {}},
		Labels:       map[string]string{originLabel: ref},
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), registryTimeout)
	defer cancel()
	if err := remote.Write(tagRef, img, remote.WithContext(ctx)); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	digest = d.String()
	byDigest := r.Host + "/" + repo + "@" + digest
	t.Cleanup(func() {
		removeImage(t, ref)
		removeImage(t, byDigest)
	})
	return ref, digest
}

// Tags lists the tags of repo in this registry.
func (r *Registry) Tags(t testing.TB, repo string) []string {
	t.Helper()
	rp, err := name.NewRepository(r.Host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), registryTimeout)
	defer cancel()
	tags, err := remote.List(rp, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("listing tags of %s: %v", rp, err)
	}
	return tags
}
