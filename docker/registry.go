package docker

import (
	"context"
	"fmt"
	"time"

	"github.com/docker/docker/api/types/registry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Keychain resolves registry credentials.
type Keychain = authn.Keychain

// DockerConfigKeychain reads credentials the way the docker CLI does:
// ~/.docker/config.json (or DOCKER_CONFIG), including credential helpers.
func DockerConfigKeychain() Keychain { return authn.DefaultKeychain }

// maxTags bounds a registry's tag list; a registry answering more is refused.
const maxTags = 10000

// registryTimeout bounds one registry conversation (tag list, digest lookup).
const registryTimeout = 30 * time.Second

// Tags lists the tags of repository (e.g. "ghcr.io/org/app") from its registry.
func (c *Client) Tags(ctx context.Context, repository string) ([]string, error) {
	repo, err := name.NewRepository(repository)
	if err != nil {
		return nil, fmt.Errorf("list tags: bad repository %q: %w", repository, err)
	}
	ctx, cancel := context.WithTimeout(ctx, registryTimeout)
	defer cancel()
	tags, err := remote.List(repo, remote.WithContext(ctx), remote.WithAuthFromKeychain(c.keychain),
		remote.WithPageSize(1000))
	if err != nil {
		return nil, fmt.Errorf("list tags of %s: %w", repository, err)
	}
	if len(tags) > maxTags {
		return nil, fmt.Errorf("list tags of %s: registry answered %d tags, more than the limit of %d", repository, len(tags), maxTags)
	}
	return tags, nil
}

// registryAuth encodes credentials for ref's registry as the engine expects
// them; empty when the keychain has none (anonymous pulls).
func (c *Client) registryAuth(ref string) (string, error) {
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("bad image reference %q: %w", ref, err)
	}
	authenticator, err := c.keychain.Resolve(parsed.Context())
	if err != nil {
		return "", fmt.Errorf("registry credentials for %s: %w", parsed.Context().RegistryStr(), err)
	}
	if authenticator == authn.Anonymous {
		return "", nil
	}
	cfg, err := authenticator.Authorization()
	if err != nil {
		return "", fmt.Errorf("registry credentials for %s: %w", parsed.Context().RegistryStr(), err)
	}
	return registry.EncodeAuthConfig(registry.AuthConfig{
		Username:      cfg.Username,
		Password:      cfg.Password,
		Auth:          cfg.Auth,
		IdentityToken: cfg.IdentityToken,
		RegistryToken: cfg.RegistryToken,
		ServerAddress: parsed.Context().RegistryStr(),
	})
}
