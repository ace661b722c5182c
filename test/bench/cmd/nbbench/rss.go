package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// gnuTime is GNU time, which reports a child's peak RSS without the
// driver's own: see measureRSS.
const gnuTime = "/usr/bin/time"

// rssItem is a process whose peak RSS is measured, with what undoes it.
type rssItem struct {
	label    string
	cmd      func() *exec.Cmd
	stdin    string
	after    func() error // checks the result, outside the measurement
	undo     func() *exec.Cmd
	undoIn   string
	undoName string
	undoDone func() error // checks the undo's result
	reset    func() error // puts things back after a failure
	wantExit int          // the exit status expected (nbfloor's usage: 2)
}

// measureRSS measures the peak RSS of each item's command (and of its undo
// command, when it has one) rounds times, in turn.
//
// ru_maxrss from wait4 cannot be used for this: the driver starts children
// with vfork semantics (CLONE_VM), and at execve the kernel records the
// hiwater RSS of the mm being left, the driver's, in the child's maxrss.
// Every child would show at least the driver's RSS (about 12 MiB here,
// even /bin/true). So each command runs under GNU time, which forks from
// its own ~1 MiB and reports the child's maximum RSS (-f %M, KiB). Without
// GNU time the driver falls back to ru_maxrss and says that it is only an
// upper bound.
func measureRSS(ctx context.Context, items []rssItem, rounds int, work string) (map[string]*Series, string, error) {
	out := map[string]*Series{}
	useTime := true
	if _, err := os.Stat(gnuTime); err != nil {
		useTime = false
	}
	method := "GNU time -f %M (the child's maximum RSS; GNU time forks it from its own ~1 MiB)"
	if !useTime {
		method = "ru_maxrss from wait4: an upper bound, since it includes the driver's own RSS, inherited at execve (install GNU time, /usr/bin/time, for the process's own)"
	}
	file := filepath.Join(work, "rss")
	measure := func(cmd *exec.Cmd, stdin string) Sample {
		var in io.Reader
		if stdin != "" {
			in = strings.NewReader(stdin)
		}
		if !useTime {
			return run(ctx, cmd, in)
		}
		wrapped := exec.Command(gnuTime, append([]string{"-f", "%M", "-o", file, "--", cmd.Path}, cmd.Args[1:]...)...)
		wrapped.Env = cmd.Env
		s := run(ctx, wrapped, in)
		b, err := os.ReadFile(file)
		if err != nil {
			s.Err = strings.TrimSpace(s.Err + fmt.Sprintf(" reading GNU time's output: %v", err))
			return s
		}
		// GNU time writes "Command exited with non-zero status N" first
		// when the command fails; the last line is %M.
		lines := strings.Fields(strings.TrimSpace(string(b)))
		if len(lines) == 0 {
			s.Err = strings.TrimSpace(s.Err + " GNU time printed nothing")
			return s
		}
		kib, err := strconv.ParseInt(lines[len(lines)-1], 10, 64)
		if err != nil {
			s.Err = strings.TrimSpace(s.Err + fmt.Sprintf(" GNU time printed %q", b))
			return s
		}
		s.MaxRSSKiB = kib
		return s
	}
	err := rotate(ctx, rounds, len(items), func(i int) error {
		it := items[i]
		s := measure(it.cmd(), it.stdin)
		wantExit(&s, it.label, it.wantExit)
		check(&s, it.label, it.after)
		add(out, it.label, s)
		failed := s.Err != ""
		if it.undo != nil {
			u := measure(it.undo(), it.undoIn)
			check(&u, it.undoName, it.undoDone)
			add(out, it.undoName, u)
			failed = failed || u.Err != ""
		}
		if failed && it.reset != nil {
			if err := it.reset(); err != nil {
				return fmt.Errorf("putting things back after %s failed: %w", it.label, err)
			}
		}
		return nil
	})
	return out, method, err
}

func add(m map[string]*Series, label string, s Sample) {
	if m[label] == nil {
		m[label] = &Series{Name: label}
	}
	m[label].Samples = append(m[label].Samples, s)
}
