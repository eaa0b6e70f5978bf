// Command berth supervises challenge containers beside a Docker Engine.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"berth/agent"
	"berth/configs"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes: 0 success, 1 the operation failed, 2 usage or validation error.
const (
	exitOK      = 0
	exitFailed  = 1
	exitInvalid = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitInvalid
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "config":
		if len(args) >= 2 && args[1] == "validate" {
			return cmdValidate(args[2:], stdout, stderr)
		}
		fmt.Fprintln(stderr, "usage: berth config validate PATH")
		return exitInvalid
	case "status", "ps":
		return cmdStatus(args[1:], stdout, stderr)
	case "restart":
		return cmdRestart(args[1:], stdout, stderr)
	case "swap":
		return cmdSwap(args[1:], stdout, stderr)
	case "rollback":
		return cmdRollback(args[1:], stdout, stderr)
	case "events":
		return cmdEvents(args[1:], stdout, stderr)
	case "logs":
		return cmdLogs(args[1:], stdout, stderr)
	case "checkpoint":
		return cmdCheckpoint(args[1:], stdout, stderr)
	case "healthcheck":
		return cmdHealthcheck(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "berth", version)
		return exitOK
	case "help", "-h", "--help":
		usage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "berth: unknown command %q\n", args[0])
		usage(stderr)
		return exitInvalid
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  berth run --config PATH [--data-dir DIR] [--log-format json|console] [--log-level LEVEL] [--cpu-profile FILE]
  berth config validate PATH
  berth status [-o table|json]            (alias: ps)
  berth swap NAME VERSION [--wait] [--timeout DURATION]
  berth restart NAME
  berth rollback NAME [--wait]
  berth events [-f] [--challenge NAME] [--since SEQ] [-o text|json]
  berth logs NAME [-f] [--tail N]
  berth checkpoint create | list | verify FILE | restore FILE --data-dir DIR
  berth version
  berth healthcheck [--addr URL] [--ready] [--timeout DURATION]   (exit 0 when /healthz answers 200)
client commands take --addr (BERTH_ADDR, default http://127.0.0.1:7070),
--token (BERTH_TOKEN) or --token-file.
`)
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: berth config validate PATH")
		return exitInvalid
	}
	// The same load as berth run, but without this shell's BERTH_* variables:
	// the service reads its own environment, and validate checks the files.
	noEnv := func(string) string { return "" }
	if _, err := configs.LoadAll(args[0], noEnv); err != nil {
		printConfigError(stderr, err)
		return exitInvalid
	}
	fmt.Fprintln(stdout, "ok")
	return exitOK
}

func printConfigError(w io.Writer, err error) {
	var errs configs.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(w, e.Error())
		}
		return
	}
	fmt.Fprintln(w, err)
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (YAML)")
	dataDir := fs.String("data-dir", "", "override agent.data_dir")
	logFormat := fs.String("log-format", "", "json or console (overrides agent.log.format)")
	logLevel := fs.String("log-level", "", "trace, debug, info, warn or error (overrides agent.log.level)")
	cpuProfile := fs.String("cpu-profile", "", "write a CPU profile (pprof) of the whole run to this file")
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	if *configPath == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: berth run --config PATH [--data-dir DIR] [--log-format json|console] [--log-level LEVEL]")
		return exitInvalid
	}
	cfg, err := configs.LoadAll(*configPath, os.Getenv)
	if err != nil {
		printConfigError(stderr, err)
		return exitInvalid
	}
	// Flags win over the file and the environment; they set agent settings
	// only, which a reload keeps.
	if *dataDir != "" {
		cfg.Agent.DataDir = *dataDir
	}
	if *logFormat != "" {
		cfg.Agent.Log.Format = *logFormat
	}
	if *logLevel != "" {
		cfg.Agent.Log.Level = *logLevel
	}
	log, err := agent.NewLogger(stdout, cfg.Agent.Log.Level, cfg.Agent.Log.Format, os.Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "berth:", err)
		return exitInvalid
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// From here on the logger reports errors, once: with its level (and its
	// journal priority), where the operator reads the rest of the log.
	// Errors before it exists go to stderr.
	a, err := agent.New(cfg, agent.Options{Logger: log, Version: version})
	if err != nil {
		log.Error().Err(err).Msg("berth cannot start")
		return exitFailed
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				// Reload logs its own outcome.
				_, _ = a.Reload(ctx)
			}
		}
	}()
	if *cpuProfile != "" {
		stopProfile, err := startCPUProfile(*cpuProfile)
		if err != nil {
			log.Error().Err(err).Msg("berth cannot start")
			return exitFailed
		}
		defer stopProfile()
	}
	if err := a.Run(ctx); err != nil {
		log.Error().Err(err).Msg("berth failed")
		return exitFailed
	}
	return exitOK
}

// startCPUProfile profiles until the returned stop runs.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}
