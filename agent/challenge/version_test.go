package challenge

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
)

// fakeTags is a TagLister with canned answers; fatal makes any call fail the test.
type fakeTags struct {
	tb    testing.TB
	tags  []string
	err   error
	fatal bool
	calls []string
}

func (f *fakeTags) Tags(_ context.Context, repository string) ([]string, error) {
	if f.fatal {
		f.tb.Errorf("Tags(%q) called; an exact version must not list tags", repository)
	}
	f.calls = append(f.calls, repository)
	return f.tags, f.err
}

var registryTags = []string{"1.3.0", "1.4.0", "1.4.9", "1.5.0", "2.0.0", "latest", "v1.4.10", "1.6.0-rc.1"}

func TestHighestMatching(t *testing.T) {
	tests := []struct {
		constraint string
		tags       []string
		want       string
		ok         bool
	}{
		{"^1.4", registryTags, "1.5.0", true},
		{"~1.4", registryTags, "v1.4.10", true},
		{"~1.4.2", registryTags, "v1.4.10", true},
		{">=1.2 <2", registryTags, "1.5.0", true},
		{">=1.3.0 <1.4.0", registryTags, "1.3.0", true},
		{"^2", registryTags, "2.0.0", true},
		{"^1.6", registryTags, "", false},
		{">=3", registryTags, "", false},
		{"*", registryTags, "2.0.0", true},
		{">=1.6.0-rc.0 <2", registryTags, "1.6.0-rc.1", true},
		{">=1.6.0-rc.0", []string{"1.5.0", "1.6.0-rc.1", "latest"}, "1.6.0-rc.1", true},
		{">=1.6.0-rc.2", []string{"1.5.0", "1.6.0-rc.1"}, "", false},
		{"^1.4", []string{"latest", "main", "sha-abc123", "edge"}, "", false},
		{"^1.4", nil, "", false},
		{"^1.4", []string{"1.4.0", "1.4.0-beta.1", "1.4.1-rc.1"}, "1.4.0", true},
	}
	for _, tt := range tests {
		t.Run(tt.constraint+"/"+strings.Join(tt.tags, ","), func(t *testing.T) {
			c, err := semver.NewConstraint(tt.constraint)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := highestMatching(c, tt.tags)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("highestMatching(%q) = %q, %v; want %q, %v", tt.constraint, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestHighestMatchingOrderIndependent(t *testing.T) {
	c, err := semver.NewConstraint("^1.4")
	if err != nil {
		t.Fatal(err)
	}
	rev := make([]string, len(registryTags))
	for i, tag := range registryTags {
		rev[len(rev)-1-i] = tag
	}
	for _, tags := range [][]string{registryTags, rev} {
		if got, _ := highestMatching(c, tags); got != "1.5.0" {
			t.Fatalf("highestMatching over %v = %q, want 1.5.0", tags, got)
		}
	}
}

func TestResolveVersion(t *testing.T) {
	const image = "ghcr.io/example/term-challenge"
	ctx := context.Background()

	t.Run("constraint resolves to highest tag", func(t *testing.T) {
		f := &fakeTags{tb: t, tags: registryTags}
		got, err := ResolveVersion(ctx, f, image, "^1.4")
		if err != nil {
			t.Fatal(err)
		}
		if got != "1.5.0" {
			t.Fatalf("got %q, want 1.5.0", got)
		}
		if len(f.calls) != 1 || f.calls[0] != image {
			t.Fatalf("lister calls %v, want one for %s", f.calls, image)
		}
	})

	t.Run("prerelease constraint", func(t *testing.T) {
		f := &fakeTags{tb: t, tags: []string{"1.5.0", "1.6.0-rc.1", "latest"}}
		got, err := ResolveVersion(ctx, f, image, ">=1.6.0-rc.0")
		if err != nil {
			t.Fatal(err)
		}
		if got != "1.6.0-rc.1" {
			t.Fatalf("got %q, want 1.6.0-rc.1", got)
		}
	})

	for _, exact := range []string{"1.4.2", "v1.4.2", "latest", "1.6.0-rc.1"} {
		t.Run("exact "+exact, func(t *testing.T) {
			f := &fakeTags{tb: t, fatal: true}
			got, err := ResolveVersion(ctx, f, image, exact)
			if err != nil {
				t.Fatal(err)
			}
			if got != exact {
				t.Fatalf("got %q, want %q unchanged", got, exact)
			}
		})
	}

	t.Run("no match names image and constraint", func(t *testing.T) {
		f := &fakeTags{tb: t, tags: registryTags}
		_, err := ResolveVersion(ctx, f, image, "^3.1")
		if err == nil {
			t.Fatal("no error for a constraint nothing matches")
		}
		if !strings.Contains(err.Error(), image) || !strings.Contains(err.Error(), "^3.1") {
			t.Fatalf("error %q does not name image and constraint", err)
		}
	})

	t.Run("lister error propagates", func(t *testing.T) {
		boom := errors.New("registry unreachable")
		f := &fakeTags{tb: t, err: boom}
		_, err := ResolveVersion(ctx, f, image, "^1.4")
		if !errors.Is(err, boom) {
			t.Fatalf("error %v does not wrap the lister's error", err)
		}
	})

	t.Run("bad constraint", func(t *testing.T) {
		f := &fakeTags{tb: t, fatal: true}
		_, err := ResolveVersion(ctx, f, image, ">=banana")
		if err == nil {
			t.Fatal("no error for an unparsable constraint")
		}
		if !strings.Contains(err.Error(), ">=banana") {
			t.Fatalf("error %q does not quote the constraint", err)
		}
	})
}
