package main

import (
	"runtime"
	"strconv"
)

// agentProcs is how many threads run berth's Go code at once: half the CPUs
// the Go runtime would use (its default follows the CPU count and any cgroup
// limit), at least one. berth shares its host with the challenges it runs
// and their clients: on 2 cores, one thread served the stable endpoint 10 to
// 20% faster than two, which contended with them for the CPUs (one nginx
// worker gains the same over two). A set GOMAXPROCS wins.
func agentProcs(getenv func(string) string, runtimeDefault int) (int, bool) {
	if n, err := strconv.Atoi(getenv("GOMAXPROCS")); err == nil && n > 0 {
		return n, false
	}
	return max(1, runtimeDefault/2), true
}

// setAgentProcs applies agentProcs unless GOMAXPROCS was set.
func setAgentProcs(getenv func(string) string) {
	if n, set := agentProcs(getenv, runtime.GOMAXPROCS(0)); set {
		runtime.GOMAXPROCS(n)
	}
}
