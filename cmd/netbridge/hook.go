package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/netbridge/netbridge/hooks"
)

// hookDeadline is the hook's default --timeout, well under the hooks.d
// timeout so that the hook rolls back and says why before it is killed.
const hookDeadline = 20 * time.Second

func runHook(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fs := newFlags("hook")
			return parse(e.stdout, fs, args)
		}
		return usagef("the stage is missing: netbridge hook prestart|createRuntime|poststop [flags]")
	}
	stage := args[0]
	fs := newFlags("hook")
	var (
		setup   setupFlags
		sf      stateFlags
		logFile string
		verbose bool
	)
	setup.register(fs)
	sf.register(fs, hookDeadline)
	fs.StringVar(&logFile, "log-file", "", "also append the log to this file")
	fs.BoolVar(&verbose, "verbose", false, "log every kernel object created")
	if err := parse(e.stdout, fs, args[1:]); err != nil {
		return err
	}
	out := e.stderr
	if logFile != "" {
		f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("opening --log-file: %w", err)
		}
		defer f.Close()
		out = io.MultiWriter(e.stderr, f)
	}
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level}))
	ctx, cancel := sf.context(ctx)
	defer cancel()
	lib := sf.manager(log.With("stage", stage))
	h := &hooks.Hook{Stage: stage, Setup: setup.config(), Log: log, Lib: lib}
	if err := h.Run(ctx, e.stdin); err != nil {
		log.Error("failed", "stage", stage, "error", report(err))
		if errors.Is(err, hooks.ErrBadInput) {
			err = usageError{err}
		}
		return loggedError{err}
	}
	return nil
}

func runHooksConfig(_ context.Context, e *env, args []string) error {
	fs := newFlags("hooks-config")
	var (
		binary  string
		stage   string
		timeout int
	)
	self, _ := os.Executable()
	if self != "" {
		self, _ = filepath.Abs(self)
	}
	fs.StringVar(&binary, "binary", self, "absolute path of the netbridge binary the runtime should run")
	fs.StringVar(&stage, "stage", hooks.StagePrestart, "hook stage: prestart or createRuntime (setup), or poststop (teardown)")
	fs.IntVar(&timeout, "timeout", hooks.DefaultTimeout, "seconds before the runtime kills the hook")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(e.stdout, fs)
			return err
		}
		return usageError{err}
	}
	b, err := hooks.HooksConfig(binary, stage, timeout, fs.Args())
	if err != nil {
		return usageError{err}
	}
	_, err = e.stdout.Write(b)
	return err
}
