// Command berth supervises challenge containers beside a Docker Engine.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"berth/agent"
	domain "berth/agent/challenge"
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

// exitError ends a command with a code once the command has printed why.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// exit turns a command's exit code into the error cobra carries back to run.
func exit(code int) error {
	if code == exitOK {
		return nil
	}
	return exitError(code)
}

// run executes one command line. Commands print their own errors and return
// an exitError; any other error comes from cobra's parsing (unknown command
// or flag, wrong argument count) and is a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(normalizeFlags(root, args))
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var code exitError
	if errors.As(err, &code) {
		return int(code)
	}
	if cmd == nil {
		cmd = root
	}
	fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", cmd.CommandPath(), err, cmd.CommandPath())
	return exitInvalid
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "berth",
		Short: "berth supervises challenge containers beside a Docker Engine",
		Long: `berth supervises challenge containers beside a Docker Engine: it pulls,
starts, health-checks, restarts and swaps them, and proxies traffic to them.

berth run starts the supervisor; the other commands talk to a running berth
through its admin API at --addr (BERTH_ADDR, default ` + defaultAddr + `)
with --token (BERTH_TOKEN) or --token-file.
Exit codes: 0 success, 1 the operation failed, 2 usage or validation error.`,
		Example: `  berth run --config /etc/berth/berth.yaml
  berth status
  berth swap web 1.5.0 --wait`,
		Version:           versionLine(),
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q", args[0])
			}
			// A bare berth is a usage error: the help goes to stderr.
			cmd.SetOut(stderr)
			_ = cmd.Usage()
			return exitError(exitInvalid)
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return err })
	root.AddCommand(
		newRunCmd(),
		newConfigCmd(),
		newStatusCmd(),
		newInspectCmd(),
		newSwapCmd(),
		newRestartCmd(),
		newRollbackCmd(),
		newReloadCmd(),
		newRmCmd(),
		newEventsCmd(),
		newLogsCmd(),
		newCheckpointCmd(),
		newStateCmd(),
		newHealthcheckCmd(),
		newVersionCmd(),
		newCompletionCmd(),
	)
	root.SetHelpCommand(newHelpCmd(root))
	return root
}

// newHelpCmd is cobra's help command, but an unknown topic is a usage error
// (exit 2) rather than the root's help and exit 0.
func newHelpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:     "help [COMMAND]",
		Short:   "Help about any command",
		Long:    "Print the help of a command: its description, an example and its flags.",
		Example: "  berth help swap\n  berth help checkpoint restore",
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			cmd, _, err := root.Find(args)
			if err != nil || cmd == nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []cobra.Completion
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() {
					names = append(names, sub.Name())
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(_ *cobra.Command, args []string) error {
			cmd, rest, err := root.Find(args)
			if err != nil || cmd == nil || (len(rest) > 0 && cmd.HasSubCommands()) {
				return fmt.Errorf("unknown help topic %q", strings.Join(args, " "))
			}
			cmd.InitDefaultHelpFlag()
			cmd.InitDefaultVersionFlag()
			return cmd.Help()
		},
	}
}

// groupRunE makes a command that only groups subcommands fail with its usage
// when run bare or with an unknown subcommand (cobra would print help and
// exit 0).
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: unknown subcommand %q\n", cmd.CommandPath(), args[0])
	}
	cmd.SetOut(cmd.ErrOrStderr())
	_ = cmd.Usage()
	return exitError(exitInvalid)
}

// exactArgs is cobra.ExactArgs naming the arguments in its error.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("expected %d argument(s) (%s), got %d", n, names, len(args))
		}
		return nil
	}
}

func newConfigCmd() *cobra.Command {
	cfg := &cobra.Command{
		Use:     "config",
		Short:   "Work with berth's config files",
		Example: "  berth config validate /etc/berth/berth.yaml",
		Args:    cobra.ArbitraryArgs,
		RunE:    groupRunE,
	}
	var noListen bool
	validate := &cobra.Command{
		Use:   "validate PATH",
		Short: "Check a config file and what berth run needs of this host, without starting anything",
		Long: `Check a config file and its challenge directories the way berth run loads
them, without this shell's BERTH_* variables, and then what run needs of this
host: the token file and secret files are readable, data_dir is writable (or
can be created), and the listen addresses are free. Prints "ok" and exits 0,
or prints "PATH:LINE: message" / "PATH: key: message" lines and exits 2.

Not checked: the Docker engine, the images and registry credentials; berth
run reports those when it starts the challenges.`,
		Example: `  berth config validate /etc/berth/berth.yaml
  berth config validate --no-listen /etc/berth/berth.yaml   # berth already runs`,
		Args: exactArgs(1, "PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return exit(cmdValidate(args[0], !noListen, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	validate.Flags().BoolVar(&noListen, "no-listen", false, "skip the check that the listen addresses are free")
	cfg.AddCommand(validate)
	return cfg
}

func cmdValidate(path string, checkListen bool, stdout, stderr io.Writer) int {
	// The same load as berth run, but without this shell's BERTH_* variables:
	// the service reads its own environment, and validate checks the files.
	noEnv := func(string) string { return "" }
	cfg, err := configs.LoadAll(path, noEnv)
	if err != nil {
		printConfigError(stderr, err)
		return exitInvalid
	}
	if problems := preflight(path, cfg, checkListen); len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stderr, domain.Printable(p, false))
		}
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

type runOptions struct {
	configPath, dataDir, logFormat, logLevel, cpuProfile string
}

func newRunCmd() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run --config PATH",
		Short: "Run the supervisor",
		Long: `Run the supervisor: load the config, start the admin API and the proxy,
and supervise the challenges until SIGINT or SIGTERM. SIGHUP reloads the config.`,
		Example: `  berth run --config /etc/berth/berth.yaml
  berth run --config berth.yaml --data-dir /tmp/berth --log-format console --log-level debug`,
		Args: exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.configPath == "" {
				return errors.New("--config is required")
			}
			return exit(cmdRun(o, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.configPath, "config", "", "config file (YAML)")
	f.StringVar(&o.dataDir, "data-dir", "", "override agent.data_dir")
	f.StringVar(&o.logFormat, "log-format", "", "json or console (overrides agent.log.format)")
	f.StringVar(&o.logLevel, "log-level", "", "trace, debug, info, warn or error (overrides agent.log.level)")
	f.StringVar(&o.cpuProfile, "cpu-profile", "", "write a CPU profile (pprof) of the whole run to this file")
	return cmd
}

func cmdRun(o runOptions, stdout, stderr io.Writer) int {
	cfg, err := configs.LoadAll(o.configPath, os.Getenv)
	if err != nil {
		printConfigError(stderr, err)
		return exitInvalid
	}
	// Flags win over the file and the environment; they set agent settings
	// only, which a reload keeps.
	if o.dataDir != "" {
		cfg.Agent.DataDir = o.dataDir
	}
	if o.logFormat != "" {
		cfg.Agent.Log.Format = o.logFormat
	}
	if o.logLevel != "" {
		cfg.Agent.Log.Level = o.logLevel
	}
	log, err := agent.NewLogger(stdout, cfg.Agent.Log.Level, cfg.Agent.Log.Format, os.Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "berth:", err)
		return exitInvalid
	}
	setAgentProcs(os.Getenv)
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
	if o.cpuProfile != "" {
		stopProfile, err := startCPUProfile(o.cpuProfile)
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
