package configs

import "syscall"

// hostMemory is the physical memory of the host berth runs on, 0 if unknown.
func hostMemory() ByteSize {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 0
	}
	return ByteSize(uint64(si.Totalram) * uint64(si.Unit))
}
