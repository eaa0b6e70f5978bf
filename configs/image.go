package configs

import (
	"fmt"
	"regexp"
	"strings"
)

// Repository grammar from the distribution reference spec.
var (
	pathComponentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	domainRE        = regexp.MustCompile(`^(?:\[[a-fA-F0-9:]+\]|(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*)(?::[0-9]+)?$`)
)

const maxRepositoryLen = 255

// looksLikeDomain applies Docker's rule for telling a registry host from the
// first path component of a Docker Hub repository.
func looksLikeDomain(s string) bool {
	return strings.ContainsAny(s, ".:") || s == "localhost" || strings.ToLower(s) != s
}

// checkImage returns why image is not a plain repository reference, or "".
func checkImage(image string) string {
	switch {
	case image == "":
		return "is required"
	case strings.Contains(image, "://"):
		return fmt.Sprintf("%q must not include a scheme; write it like ghcr.io/org/app", image)
	case strings.Contains(image, "@"):
		return fmt.Sprintf("%q includes a digest; put the tag in version and the digest in digest", image)
	}
	segs := strings.Split(image, "/")
	if last := segs[len(segs)-1]; strings.Contains(last, ":") {
		return fmt.Sprintf("%q includes a tag; put the tag in version", image)
	}
	return checkRepository(image, segs)
}

func checkRepository(image string, segs []string) string {
	if len(image) > maxRepositoryLen {
		return fmt.Sprintf("is longer than %d characters", maxRepositoryLen)
	}
	if len(segs) > 1 && looksLikeDomain(segs[0]) {
		if !domainRE.MatchString(segs[0]) {
			return fmt.Sprintf("%q has an invalid registry host %q", image, segs[0])
		}
		segs = segs[1:]
	}
	for _, s := range segs {
		switch {
		case s == "":
			return fmt.Sprintf("%q has an empty path component", image)
		case pathComponentRE.MatchString(s):
		case pathComponentRE.MatchString(strings.ToLower(s)):
			return fmt.Sprintf("%q: repository path %q must be lowercase", image, s)
		default:
			return fmt.Sprintf("%q has an invalid path component %q (lowercase letters, digits and single . _ - separators)", image, s)
		}
	}
	return ""
}

// checkImagePrefix validates an allowed_images entry: a registry host alone, or
// a repository prefix.
func checkImagePrefix(p string) string {
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return "must not be empty"
	}
	segs := strings.Split(p, "/")
	if len(segs) == 1 && looksLikeDomain(p) {
		if !domainRE.MatchString(p) {
			return fmt.Sprintf("%q is not a valid registry host", p)
		}
		return ""
	}
	return checkImage(p)
}

// normalizeImage spells Docker Hub references out in full so "nginx",
// "library/nginx" and "docker.io/library/nginx" compare equal.
func normalizeImage(image string) string {
	segs := strings.Split(image, "/")
	if len(segs) > 1 && looksLikeDomain(segs[0]) {
		segs[0] = normalizeHost(segs[0])
		if segs[0] == "docker.io" && len(segs) == 2 {
			return "docker.io/library/" + segs[1]
		}
		return strings.Join(segs, "/")
	}
	if len(segs) == 1 {
		return "docker.io/library/" + image
	}
	return "docker.io/" + image
}

// normalizeHost lowercases a registry host (host names are case-insensitive)
// and maps Docker Hub's legacy name index.docker.io to docker.io.
func normalizeHost(h string) string {
	h = strings.ToLower(h)
	if h == "index.docker.io" {
		return "docker.io"
	}
	return h
}

// prefixForms returns the normalized forms a policy prefix may stand for.
func prefixForms(p string) []string {
	p = strings.TrimSuffix(p, "/")
	segs := strings.Split(p, "/")
	switch {
	case looksLikeDomain(segs[0]):
		segs[0] = normalizeHost(segs[0])
		if segs[0] == "docker.io" && len(segs) == 2 && segs[1] != "library" {
			// Like "nginx" below: docker.io/nginx is the official image too.
			return []string{"docker.io/library/" + segs[1], "docker.io/" + segs[1]}
		}
		return []string{strings.Join(segs, "/")}
	case len(segs) == 1:
		// "nginx" may mean the official image or a Hub namespace.
		return []string{"docker.io/library/" + p, "docker.io/" + p}
	default:
		return []string{"docker.io/" + p}
	}
}

// ImageAllowed reports whether image is admitted by the repository prefixes.
// Prefixes match on path boundaries: "ghcr.io/org/app" admits ghcr.io/org/app
// and ghcr.io/org/app/x but not ghcr.io/org/application. No prefixes admits
// every image. Docker Hub short names are normalized on both sides.
func ImageAllowed(image string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	img := normalizeImage(image)
	for _, p := range prefixes {
		if strings.TrimSuffix(p, "/") == "" {
			continue
		}
		for _, f := range prefixForms(p) {
			if img == f || strings.HasPrefix(img, f+"/") {
				return true
			}
		}
	}
	return false
}

// Check returns a FieldError (key "image") when the policy refuses image. It is
// for specs that arrive outside a config file, such as challenge_dirs files or
// the admin API.
func (p PolicyConfig) Check(image string) error {
	if ImageAllowed(image, p.AllowedImages) {
		return nil
	}
	return &FieldError{Key: "image", Msg: policyMsg(image, p.AllowedImages)}
}

func policyMsg(image string, prefixes []string) string {
	return fmt.Sprintf("image %q is not admitted by agent.policy.allowed_images (%s)", image, strings.Join(prefixes, ", "))
}
