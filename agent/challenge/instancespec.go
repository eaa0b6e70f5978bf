package challenge

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"berth/configs"
)

// maxSecretSize bounds a secret env file.
const maxSecretSize = 64 << 10

// instanceSpec is the instance for cs (whose hash is hash) in slot. It
// reads only its arguments, so swaps may call it too.
func instanceSpec(cs configs.Challenge, hash, ref, tag, slot string) (InstanceSpec, error) {
	env, err := environment(cs)
	if err != nil {
		return InstanceSpec{}, err
	}
	return InstanceSpec{Challenge: cs, SpecHash: hash, Ref: ref, Version: tag, Slot: slot, Env: env}, nil
}

// environment builds the instance env; secret values are read here and
// never logged or stored.
func environment(cs configs.Challenge) ([]string, error) {
	env := make([]string, 0, len(cs.Env)+len(cs.SecretEnvFiles))
	for k, v := range cs.Env {
		env = append(env, k+"="+v)
	}
	for k, path := range cs.SecretEnvFiles {
		value, err := readSecret(path)
		if err != nil {
			return nil, fmt.Errorf("secret_env_files.%s: %w", k, err)
		}
		env = append(env, k+"="+value)
	}
	sort.Strings(env)
	return env, nil
}

// readSecret reads a secret file named by the operator's config: a regular
// file (after symlinks) of at most maxSecretSize bytes. The open never blocks,
// so a FIFO or a device cannot stall the owner.
func readSecret(path string) (string, error) {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(resolved, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file (%s)", path, info.Mode().Type())
	}
	buf, err := io.ReadAll(io.LimitReader(f, maxSecretSize+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(buf) > maxSecretSize {
		return "", fmt.Errorf("%s is larger than %d bytes", path, maxSecretSize)
	}
	value := string(buf)
	for len(value) > 0 && (value[len(value)-1] == '\n' || value[len(value)-1] == '\r') {
		value = value[:len(value)-1]
	}
	return value, nil
}

// CheckSecret reports whether path is a secret file a start could read: a
// regular file of at most 64 KiB. The value is read and dropped.
func CheckSecret(path string) error {
	_, err := readSecret(path)
	return err
}
