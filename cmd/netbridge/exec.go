package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/hypervisor/qemu"
	"github.com/netbridge/netbridge/pkg/netns"
)

// runExec opens every NIC's queues inside the sandbox netns, places them at
// fds 3, 4, ... in the order qemu.ByFD numbers them, appends the fd form of
// the NIC arguments to CMD (unless --no-append), and replaces netbridge
// with CMD inside the netns. It only returns on failure.
func runExec(ctx context.Context, e *env, args []string) error {
	fs := newFlags("exec")
	var (
		id       string
		sf       stateFlags
		noAppend bool
		driver   string
	)
	fs.StringVar(&id, "id", "", "sandbox id (required)")
	fs.BoolVar(&noAppend, "no-append", false, "do not append the NIC arguments to CMD (the fds are still passed, from 3)")
	fs.StringVar(&driver, "driver", qemu.DefaultDriver, "QEMU NIC device driver")
	sf.register(fs, time.Minute)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(e.stdout, fs)
			return err
		}
		return usageError{err}
	}
	if err := need("id", id); err != nil {
		return err
	}
	argv := fs.Args()
	if len(argv) == 0 {
		return usagef("no command: netbridge exec --id ID -- CMD [ARGS...]")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return usagef("command %q: %v", argv[0], err)
	}
	sb, err := sf.manager(nil).OpenQueues(ctx, id)
	if err != nil {
		return err
	}
	defer sb.Close()
	nicArgs, files, err := qemu.ByFD(sb.NICs, qemu.Options{Driver: driver}, 3)
	if err != nil {
		return err
	}
	if !noAppend {
		argv = append(argv, nicArgs...)
	}
	n, err := netns.Open(sb.Netns)
	if err != nil {
		return err
	}
	defer n.Close()

	// From here on this goroutine's thread enters the netns for good and
	// becomes CMD: it is never unlocked, so no other goroutine runs on it.
	runtime.LockOSThread()
	if err := unix.Setns(n.Fd(), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("entering netns %q: %w", sb.Netns, err)
	}
	if err := placeFDs(files, 3); err != nil {
		return err
	}
	if e.flush != nil {
		e.flush()
	}
	err = unix.Exec(path, argv, os.Environ())
	return fmt.Errorf("executing %s: %w", path, err)
}

// placeFDs makes files[i] available as descriptor first+i, without
// close-on-exec, for the program about to be executed. It first moves every
// file above the target range, so that placing one never clobbers another.
func placeFDs(files []*os.File, first int) error {
	high := make([]int, len(files))
	floor := first + len(files)
	for i, f := range files {
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, floor)
		if err != nil {
			return fmt.Errorf("duplicating queue fd: %w", err)
		}
		high[i] = fd
	}
	for i, fd := range high {
		if err := unix.Dup3(fd, first+i, 0); err != nil {
			return fmt.Errorf("placing queue fd at %d: %w", first+i, err)
		}
	}
	return nil
}
