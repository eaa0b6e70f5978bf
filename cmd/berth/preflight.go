package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"berth/agent/challenge"
	"berth/configs"
)

// preflight checks what berth run needs of the host beyond a valid config:
// the files it reads, a data_dir it can write, and free listen addresses.
// Each problem is one "PATH: key: message" line. It does not reach the
// Docker engine or a registry: images and credentials are checked at start.
func preflight(path string, cfg *configs.Config, checkListen bool) []string {
	var problems []string
	add := func(key string, err error) {
		problems = append(problems, fmt.Sprintf("%s: %s: %v", path, key, err))
	}
	if f := cfg.Agent.API.TokenFile; f != "" {
		if b, err := os.ReadFile(f); err != nil {
			add("agent.api.token_file", err)
		} else if strings.TrimSpace(string(b)) == "" {
			add("agent.api.token_file", fmt.Errorf("%s is empty", f))
		}
	}
	if err := writableDir(cfg.Agent.DataDir); err != nil {
		add("agent.data_dir", err)
	}
	if checkListen {
		for _, l := range []struct{ key, addr string }{{"agent.api.listen", cfg.Agent.API.Listen}, {"agent.proxy.listen", cfg.Agent.Proxy.Listen}} {
			ln, err := net.Listen("tcp", l.addr)
			if err != nil {
				add(l.key, fmt.Errorf("%w (if berth already runs with this config, that is expected; --no-listen skips this check)", err))
				continue
			}
			ln.Close()
		}
	}
	for _, c := range cfg.Challenges {
		keys := make([]string, 0, len(c.SecretEnvFiles))
		for k := range c.SecretEnvFiles {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := challenge.CheckSecret(c.SecretEnvFiles[k]); err != nil {
				add("challenges."+c.Name+".secret_env_files."+k, err)
			}
		}
	}
	return problems
}

// writableDir checks that dir can be used as berth's data directory: an
// existing directory berth can write in, or one it can create (its nearest
// existing parent is a writable directory). Nothing is left behind.
func writableDir(dir string) error {
	info, err := os.Stat(dir)
	switch {
	case err == nil && !info.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case err == nil:
		f, err := os.CreateTemp(dir, ".berth-validate-*")
		if err != nil {
			return fmt.Errorf("cannot write in %s: %w", dir, err)
		}
		name := f.Name()
		f.Close()
		return os.Remove(name)
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if parent == dir {
		return fmt.Errorf("%s does not exist", dir)
	}
	if err := writableDir(parent); err != nil {
		return fmt.Errorf("%s does not exist and cannot be created: %w", dir, err)
	}
	return nil
}
