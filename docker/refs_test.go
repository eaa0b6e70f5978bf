package docker

import (
	"strings"
	"testing"
)

var (
	digestA = "sha256:" + strings.Repeat("a", 64)
	digestB = "sha256:" + strings.Repeat("b", 64)
)

func TestRepositoryOf(t *testing.T) {
	for ref, want := range map[string]string{
		"nginx":                                  "nginx",
		"nginx:1.25":                             "nginx",
		"library/nginx:1.25":                     "library/nginx",
		"ghcr.io/org/app:v1.2.3":                 "ghcr.io/org/app",
		"127.0.0.1:5000/a/b:1.0":                 "127.0.0.1:5000/a/b",
		"127.0.0.1:5000/a/b":                     "127.0.0.1:5000/a/b",
		"localhost:5000/a":                       "localhost:5000/a",
		"127.0.0.1:5000/a/b@" + digestA:          "127.0.0.1:5000/a/b",
		"127.0.0.1:5000/a/b:1.0@" + digestA:      "127.0.0.1:5000/a/b",
		"docker.io/library/nginx:1.25":           "docker.io/library/nginx",
		"[::1]:5000/a/b:2":                       "[::1]:5000/a/b",
		"registry.example.com:443/team/app:1-rc": "registry.example.com:443/team/app",
	} {
		if got := repositoryOf(ref); got != want {
			t.Errorf("repositoryOf(%q) = %q, want %q", ref, got, want)
		}
	}
}

func TestRepoDigest(t *testing.T) {
	tests := []struct {
		name    string
		digests []string
		ref     string
		want    string
	}{
		{"host:port registry", []string{"127.0.0.1:5000/a/b@" + digestA}, "127.0.0.1:5000/a/b:1.0", digestA},
		{"by digest", []string{"127.0.0.1:5000/a/b@" + digestA}, "127.0.0.1:5000/a/b@" + digestA, digestA},
		{"picks the ref's repository",
			[]string{"127.0.0.1:5000/other@" + digestB, "127.0.0.1:5000/a/b@" + digestA}, "127.0.0.1:5000/a/b:1.0", digestA},
		{"other registry does not match", []string{"127.0.0.1:5001/a/b@" + digestA}, "127.0.0.1:5000/a/b:1.0", ""},
		{"prefix repository does not match", []string{"127.0.0.1:5000/a/bc@" + digestA}, "127.0.0.1:5000/a/b:1.0", ""},
		{"no repo digests", nil, "127.0.0.1:5000/a/b:1.0", ""},
		{"malformed entry", []string{"127.0.0.1:5000/a/b"}, "127.0.0.1:5000/a/b:1.0", ""},
		{"familiar entry, familiar ref", []string{"nginx@" + digestA}, "nginx:1.25", digestA},
		{"qualified entry, familiar ref", []string{"docker.io/library/nginx@" + digestA}, "nginx:1.25", digestA},
		{"qualified entry, org ref", []string{"docker.io/org/app@" + digestA}, "org/app:1", digestA},
		// The engine reports familiar names; a fully qualified ref names the same repository.
		{"familiar entry, qualified ref", []string{"nginx@" + digestA}, "docker.io/library/nginx:1.25", digestA},
		{"familiar org entry, qualified ref", []string{"org/app@" + digestA}, "docker.io/org/app:1", digestA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ImageDetails{ID: "sha256:img", RepoDigests: tt.digests}
			if got := d.RepoDigest(tt.ref); got != tt.want {
				t.Fatalf("RepoDigest(%q) over %v = %q, want %q", tt.ref, tt.digests, got, tt.want)
			}
		})
	}
}
