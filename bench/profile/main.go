package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"time"

	"berth/agent"
	"berth/configs"
)

func main() {
	config := flag.String("config", "", "berth config")
	seconds := flag.Int("seconds", 30, "profile duration")
	out := flag.String("out", "cpu.pprof", "profile file")
	flag.Parse()
	if err := run(*config, time.Duration(*seconds)*time.Second, *out); err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		os.Exit(1)
	}
}

func run(config string, d time.Duration, out string) error {
	cfg, err := configs.LoadAll(config, os.Getenv)
	if err != nil {
		return err
	}
	log, err := agent.NewLogger(io.Discard, "info", "json", nil)
	if err != nil {
		return err
	}
	a, err := agent.New(cfg, agent.Options{Logger: log, Version: "profile"})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	api := "http://" + a.APIAddr()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		if n, ok := allHealthy(api); ok {
			fmt.Fprintf(os.Stderr, "%d challenges healthy\n", n)
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("challenges not healthy within 10m")
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(5 * time.Second)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	time.Sleep(d)
	pprof.StopCPUProfile()
	return nil
}

func allHealthy(api string) (int, bool) {
	resp, err := http.Get(api + "/v1/challenges")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var list []struct {
		State  string `json:"state"`
		Health string `json:"health"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return 0, false
	}
	for _, c := range list {
		if c.State != "running" || c.Health != "healthy" {
			return len(list), false
		}
	}
	return len(list), len(list) > 0
}
