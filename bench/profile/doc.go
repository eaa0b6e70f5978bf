// Command profile runs berth's agent in-process on a config and writes a CPU
// profile of its steady state, since berth itself serves no pprof endpoint.
// It waits until every challenge is running and healthy, settles, profiles for
// the given duration, then stops the agent (containers are left running, as
// with agent.shutdown: leave; remove them by their io.berth.agent label).
//
//	go run ./bench/profile -config berth.yaml -seconds 30 -out cpu.pprof
//	go tool pprof -top cpu.pprof
package main
