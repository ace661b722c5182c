package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Sample is one process run: its wall time from fork to reaped exit, its
// CPU time and peak RSS (of the process and the children it waited for,
// as wait4 reports them), and what went wrong, if anything. The peak RSS
// wait4 reports includes the driver's own (see measureRSS); the samples of
// measureRSS have the process's own.
type Sample struct {
	WallNS    int64  `json:"wall_ns"`
	UserNS    int64  `json:"user_ns"`
	SysNS     int64  `json:"sys_ns"`
	MaxRSSKiB int64  `json:"maxrss_kib"`
	Err       string `json:"error,omitempty"`
}

// Series is a list of samples of one measurement.
type Series struct {
	Name    string   `json:"name"`
	Samples []Sample `json:"samples"`
}

// walls returns the wall times of the successful samples.
func (s *Series) walls() []float64 {
	var out []float64
	for _, x := range s.Samples {
		if x.Err == "" {
			out = append(out, float64(x.WallNS))
		}
	}
	return out
}

// errors counts the failed samples.
func (s *Series) errors() int {
	n := 0
	for _, x := range s.Samples {
		if x.Err != "" {
			n++
		}
	}
	return n
}

// firstErr returns the first failure, or "".
func (s *Series) firstErr() string {
	for _, x := range s.Samples {
		if x.Err != "" {
			return x.Err
		}
	}
	return ""
}

// Median of xs, or NaN when empty.
func median(xs []float64) float64 { return quantile(xs, 0.5) }

// quantile returns the q-quantile of xs by linear interpolation, or NaN.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return nan
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (pos-float64(i))*(s[i+1]-s[i])
}

// runner starts the processes the driver measures.
type runner struct {
	netbridge, nbfloor, baseline string
	stateDir                     string // netbridge's --state-dir
}

// impl is a way to wire a sandbox as processes.
type impl struct {
	name     string
	setup    func(s *sandbox) *exec.Cmd
	teardown func(s *sandbox) *exec.Cmd
}

// Implementation names.
const (
	implNetbridge = "netbridge"
	implFloor     = "floor"
	implShell     = "shell"
	implShellExec = "shell-netns-exec"
)

func (r *runner) impl(name string) impl {
	switch name {
	case implNetbridge:
		return impl{
			name: name,
			setup: func(s *sandbox) *exec.Cmd {
				return exec.Command(r.netbridge, "setup", "--id", s.id, "--netns", s.ns.path, "--model", "tcfilter", "--state-dir", r.stateDir)
			},
			teardown: func(s *sandbox) *exec.Cmd {
				return exec.Command(r.netbridge, "teardown", "--id", s.id, "--state-dir", r.stateDir)
			},
		}
	case implFloor:
		return impl{
			name: name,
			setup: func(s *sandbox) *exec.Cmd {
				return exec.Command(r.nbfloor, append([]string{"setup", s.ns.path}, s.ifnames...)...)
			},
			teardown: func(s *sandbox) *exec.Cmd {
				return exec.Command(r.nbfloor, append([]string{"teardown", s.ns.path}, s.ifnames...)...)
			},
		}
	case implShell, implShellExec:
		cmd := func(op string, s *sandbox) *exec.Cmd {
			args := []string{op, s.ns.name}
			for i, n := range s.ifnames {
				args = append(args, n, s.taps()[i])
			}
			c := exec.Command(r.baseline, args...)
			if name == implShellExec {
				c.Env = append(os.Environ(), "NB_BASELINE_EXEC=netns")
			}
			return c
		}
		return impl{
			name:     name,
			setup:    func(s *sandbox) *exec.Cmd { return cmd("setup", s) },
			teardown: func(s *sandbox) *exec.Cmd { return cmd("teardown", s) },
		}
	}
	panic("unknown implementation " + name)
}

// run runs cmd to completion and measures it. Its stdout is discarded
// (/dev/null) and its stderr kept for the error. It runs in its own process
// group, so that a terminal's ^C reaches only the driver, which then
// cancels ctx; that kills cmd (by its pid).
func run(ctx context.Context, cmd *exec.Cmd, stdin io.Reader) Sample {
	return runOut(ctx, cmd, stdin, nil)
}

// runOut is run keeping cmd's stdout in stdout (when not nil), which a
// failure's error then quotes too: a CNI plugin prints its error there.
func runOut(ctx context.Context, cmd *exec.Cmd, stdin io.Reader, stdout *bytes.Buffer) Sample {
	full := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	full.Env = cmd.Env
	full.Stdin = stdin
	var stderr bytes.Buffer
	full.Stderr = &stderr
	if stdout != nil {
		full.Stdout = stdout
	}
	full.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	err := full.Run()
	wall := time.Since(start)
	s := Sample{WallNS: wall.Nanoseconds()}
	if ps := full.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			s.UserNS = syscall.TimevalToNsec(ru.Utime)
			s.SysNS = syscall.TimevalToNsec(ru.Stime)
			s.MaxRSSKiB = ru.Maxrss
		}
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if stdout != nil {
			msg = strings.TrimSpace(msg + " " + stdout.String())
		}
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		s.Err = fmt.Sprintf("%s: %v: %s", strings.Join(cmd.Args, " "), err, msg)
	}
	return s
}

// pairResult is what measurePairs gives per implementation: setup,
// teardown, and their sum per round.
type pairResult struct {
	Setup, Teardown, Both Series
}

// measurePairs runs, for rounds rounds, setup then teardown of s with each
// implementation in turn, rotating which goes first every round. Each
// setup is checked (s.wired) and each teardown too (s.clean), outside the
// timing; a failed check counts as an error of the sample, and s is reset.
func measurePairs(ctx context.Context, r *runner, s *sandbox, names []string, rounds int, label string) (map[string]*pairResult, error) {
	out := map[string]*pairResult{}
	for _, n := range names {
		out[n] = &pairResult{
			Setup:    Series{Name: fmt.Sprintf("%s/%s/setup", label, n)},
			Teardown: Series{Name: fmt.Sprintf("%s/%s/teardown", label, n)},
			Both:     Series{Name: fmt.Sprintf("%s/%s/setup+teardown", label, n)},
		}
	}
	err := rotate(ctx, rounds, len(names), func(i int) error {
		name := names[i]
		im := r.impl(name)
		res := out[name]
		su := run(ctx, im.setup(s), nil)
		check(&su, name+" setup", s.wired)
		td := run(ctx, im.teardown(s), nil)
		check(&td, name+" teardown", s.clean)
		if su.Err != "" || td.Err != "" {
			if err := r.resetSandbox(ctx, s); err != nil {
				return fmt.Errorf("resetting sandbox %s after a failed run: %w", s.ns.name, err)
			}
		}
		both := Sample{WallNS: su.WallNS + td.WallNS, UserNS: su.UserNS + td.UserNS, SysNS: su.SysNS + td.SysNS, MaxRSSKiB: max(su.MaxRSSKiB, td.MaxRSSKiB)}
		if su.Err != "" || td.Err != "" {
			both.Err = strings.TrimSpace(su.Err + " " + td.Err)
		}
		res.Setup.Samples = append(res.Setup.Samples, su)
		res.Teardown.Samples = append(res.Teardown.Samples, td)
		res.Both.Samples = append(res.Both.Samples, both)
		return nil
	})
	return out, err
}

// rotate calls fn(i) for each i in [0, n), rounds times, rotating which
// goes first every round: round r starts with r mod n. It stops at fn's
// first error, and with ctx's error once ctx is done (checked before every
// call).
func rotate(ctx context.Context, rounds, n int, fn func(i int) error) error {
	for round := range rounds {
		for k := range n {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn((round + k) % n); err != nil {
				return err
			}
		}
	}
	return nil
}

// check runs verify, outside any timing, when s (a run of what) succeeded,
// and makes its failure s's error: "what exited 0 but: ...". A nil verify
// checks nothing.
func check(s *Sample, what string, verify func() error) {
	if s.Err != "" || verify == nil {
		return
	}
	if err := verify(); err != nil {
		s.Err = fmt.Sprintf("%s exited 0 but: %v", what, err)
	}
}

// wantExit makes s, a run of what that is expected to exit with status want
// (not 0), a success when it did and a failure when it exited 0; want 0
// leaves s alone.
func wantExit(s *Sample, what string, want int) {
	switch {
	case want == 0:
	case s.Err != "" && strings.Contains(s.Err, fmt.Sprintf("exit status %d", want)):
		s.Err = ""
	case s.Err == "":
		s.Err = fmt.Sprintf("%s exited 0, want %d", what, want)
	}
}

// resetSandbox removes whatever a failed run left in s: netbridge's record
// (netbridge teardown is idempotent) and any link or ingress qdisc left.
func (r *runner) resetSandbox(ctx context.Context, s *sandbox) error {
	td := run(ctx, r.impl(implNetbridge).teardown(s), nil)
	var errs []error
	if td.Err != "" {
		errs = append(errs, errors.New(td.Err))
	}
	if err := s.reset(); err != nil {
		errs = append(errs, err)
	}
	if err := s.clean(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// parallelResult is one implementation's parallel runs for a number of
// sandboxes: the wall time of each whole parallel setup and teardown, the
// per-sandbox cost ((setup+teardown)/N) and the errors (failed processes
// and failed checks).
type parallelResult struct {
	Impl       string   `json:"impl"`
	Sandboxes  int      `json:"sandboxes"`
	SetupNS    []int64  `json:"setup_wall_ns"`
	TeardownNS []int64  `json:"teardown_wall_ns"`
	Errors     int      `json:"errors"`
	FirstErr   string   `json:"first_error,omitempty"`
	Procs      []Sample `json:"processes"`
}

// perSandbox returns the per-round (setup+teardown)/N wall times.
func (p *parallelResult) perSandbox() []float64 {
	var out []float64
	for i := range p.SetupNS {
		out = append(out, float64(p.SetupNS[i]+p.TeardownNS[i])/float64(p.Sandboxes))
	}
	return out
}

func int64s(xs []int64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(x)
	}
	return out
}

// measureParallel runs, for rounds rounds and each implementation in turn
// (rotating), the setup of every sandbox in sbs at once, one process each,
// then their teardown at once, and times each whole phase.
func measureParallel(ctx context.Context, r *runner, sbs []*sandbox, names []string, rounds int) (map[string]*parallelResult, error) {
	out := map[string]*parallelResult{}
	for _, n := range names {
		out[n] = &parallelResult{Impl: n, Sandboxes: len(sbs)}
	}
	phase := func(mk func(*sandbox) *exec.Cmd) (time.Duration, []Sample) {
		samples := make([]Sample, len(sbs))
		var wg sync.WaitGroup
		start := time.Now()
		for i, s := range sbs {
			wg.Go(func() { samples[i] = run(ctx, mk(s), nil) })
		}
		wg.Wait()
		return time.Since(start), samples
	}
	err := rotate(ctx, rounds, len(names), func(k int) error {
		name := names[k]
		im := r.impl(name)
		res := out[name]
		suWall, su := phase(im.setup)
		failed := map[int]bool{}
		for i, s := range sbs {
			check(&su[i], name+" setup", s.wired)
		}
		tdWall, td := phase(im.teardown)
		for i, s := range sbs {
			check(&td[i], name+" teardown", s.clean)
			for _, x := range []Sample{su[i], td[i]} {
				if x.Err != "" {
					res.Errors++
					failed[i] = true
					if res.FirstErr == "" {
						res.FirstErr = x.Err
					}
				}
			}
		}
		for i := range failed {
			if err := r.resetSandbox(ctx, sbs[i]); err != nil {
				return fmt.Errorf("resetting sandbox %s after a failed run: %w", sbs[i].ns.name, err)
			}
		}
		res.SetupNS = append(res.SetupNS, suWall.Nanoseconds())
		res.TeardownNS = append(res.TeardownNS, tdWall.Nanoseconds())
		res.Procs = append(res.Procs, su...)
		res.Procs = append(res.Procs, td...)
		return nil
	})
	return out, err
}

// measureCommands runs each command runs times, rotating their order, and
// returns one series per command. A command is expected to exit with
// status want[i].
func measureCommands(ctx context.Context, names []string, cmds []func() *exec.Cmd, want []int, runs int) ([]*Series, error) {
	out := make([]*Series, len(cmds))
	for i := range cmds {
		out[i] = &Series{Name: names[i]}
	}
	err := rotate(ctx, runs, len(cmds), func(i int) error {
		s := run(ctx, cmds[i](), nil)
		wantExit(&s, names[i], want[i])
		out[i].Samples = append(out[i].Samples, s)
		return nil
	})
	return out, err
}
