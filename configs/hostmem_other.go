//go:build !linux

package configs

// hostMemory is unknown off Linux; the fallback maximum applies.
func hostMemory() ByteSize { return 0 }
