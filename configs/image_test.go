package configs

import (
	"strings"
	"testing"
)

func TestCheckImage(t *testing.T) {
	tests := []struct {
		image string
		want  string // substring of the problem; "" = valid
	}{
		{"ghcr.io/org/app", ""},
		{"localhost:5000/app", ""},
		{"registry.example.com:443/a/b/c", ""},
		{"nginx", ""},
		{"library/nginx", ""},
		{"berth-demo/echo", ""},
		{"a/b__c/d.e-f", ""},
		{"[::1]:5000/app", ""},
		{"", "required"},
		{"ghcr.io/org/app:1.2", "put the tag in version"},
		{"nginx:latest", "put the tag in version"},
		{"ghcr.io/org/app@sha256:" + strings.Repeat("a", 64), "put the tag in version and the digest in digest"},
		{"ghcr.io/Org/app", "must be lowercase"},
		{"App", "must be lowercase"},
		{"ghcr.io//app", "empty path component"},
		{"ghcr.io/org/app/", "empty path component"},
		{"-bad.io/app", "invalid registry host"},
		{"ghcr.io/org/-app", "invalid path component"},
		{"ghcr.io/org/a..b", "invalid path component"},
		{"https://ghcr.io/org/app", "scheme"},
		{"a/" + strings.Repeat("b", 260), "longer than"},
	}
	for _, tt := range tests {
		got := checkImage(tt.image)
		if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("checkImage(%q) = %q, want %q", tt.image, got, tt.want)
		}
	}
}

func TestImageAllowed(t *testing.T) {
	tests := []struct {
		image    string
		prefixes []string
		want     bool
	}{
		{"anything/at/all", nil, true},
		{"ghcr.io/org/app", []string{"ghcr.io/org/app"}, true},
		{"ghcr.io/org/app/x", []string{"ghcr.io/org/app"}, true},
		{"ghcr.io/org/application", []string{"ghcr.io/org/app"}, false},
		{"ghcr.io/org", []string{"ghcr.io/org/app"}, false},
		{"ghcr.io/org/app", []string{"ghcr.io/org/"}, true},
		{"ghcr.io/org/app", []string{"ghcr.io"}, true},
		{"ghcr.io.evil.com/org/app", []string{"ghcr.io"}, false},
		{"ghcr.io/other/app", []string{"ghcr.io/org", "docker.io/library"}, false},
		{"nginx", []string{"docker.io/library"}, true},
		{"nginx", []string{"nginx"}, true},
		{"docker.io/library/nginx", []string{"nginx"}, true},
		{"index.docker.io/myorg/app", []string{"myorg"}, true},
		{"myorg/app", []string{"docker.io/myorg"}, true},
		{"myorganisation/app", []string{"myorg"}, false},
		{"localhost:5000/app", []string{"localhost:5000"}, true},
		{"localhost:5001/app", []string{"localhost:5000"}, false},
	}
	for _, tt := range tests {
		if got := ImageAllowed(tt.image, tt.prefixes); got != tt.want {
			t.Errorf("ImageAllowed(%q, %q) = %v, want %v", tt.image, tt.prefixes, got, tt.want)
		}
	}
}

func TestPolicyCheck(t *testing.T) {
	p := PolicyConfig{AllowedImages: []string{"ghcr.io/org/app"}}
	if err := p.Check("ghcr.io/org/app"); err != nil {
		t.Errorf("Check(allowed) = %v", err)
	}
	err := p.Check("ghcr.io/org/application")
	if err == nil || !strings.HasPrefix(err.Error(), "image: ") || !strings.Contains(err.Error(), "allowed_images") {
		t.Errorf("Check(refused) = %v", err)
	}
}

func TestCheckImagePrefix(t *testing.T) {
	tests := []struct {
		prefix string
		ok     bool
	}{
		{"ghcr.io", true},
		{"ghcr.io/", true},
		{"localhost:5000", true},
		{"ghcr.io/org", true},
		{"docker.io/library", true},
		{"myorg", true},
		{"", false},
		{"ghcr.io/Org", false},
		{"ghcr.io/org/app:1.0", false},
		{"bad_host.io:x", false},
	}
	for _, tt := range tests {
		if msg := checkImagePrefix(tt.prefix); (msg == "") != tt.ok {
			t.Errorf("checkImagePrefix(%q) = %q, want ok=%v", tt.prefix, msg, tt.ok)
		}
	}
}
