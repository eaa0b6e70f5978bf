package challenge

import (
	"context"
	"fmt"

	"github.com/Masterminds/semver/v3"

	"berth/configs"
)

// TagLister lists a repository's tags in its registry.
type TagLister interface {
	Tags(ctx context.Context, repository string) ([]string, error)
}

// ResolveVersion turns a challenge's version into the exact tag to run: an
// exact tag as written, a constraint as the highest matching registry tag.
func ResolveVersion(ctx context.Context, tags TagLister, image, version string) (string, error) {
	if configs.IsExactVersion(version) {
		return version, nil
	}
	constraint, err := semver.NewConstraint(version)
	if err != nil {
		return "", fmt.Errorf("version constraint %q: %w", version, err)
	}
	list, err := tags.Tags(ctx, image)
	if err != nil {
		return "", err
	}
	tag, ok := highestMatching(constraint, list)
	if !ok {
		return "", fmt.Errorf("no tag of %s matches %q (%d tags listed)", image, version, len(list))
	}
	return tag, nil
}

// highestMatching picks the highest semver tag satisfying c; non-semver tags
// are ignored and prereleases match only when the constraint names one.
func highestMatching(c *semver.Constraints, tags []string) (string, bool) {
	var best *semver.Version
	bestTag := ""
	for _, t := range tags {
		v, err := semver.NewVersion(t)
		if err != nil || !c.Check(v) {
			continue
		}
		if best == nil || v.GreaterThan(best) {
			best, bestTag = v, t
		}
	}
	return bestTag, best != nil
}
