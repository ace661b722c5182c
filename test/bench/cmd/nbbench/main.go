// Command nbbench is the driver of "make bench" (issue 8). It runs the Go
// benchmarks, times the netbridge CLI against the floor (nbfloor) and the
// shell baseline (baseline.sh) as processes, scales the number of NICs and
// of parallel sandboxes, measures the datapath, peak RSS and start-up time,
// and prints one markdown report on stdout, ending with the targets
// and whether each was met. Progress goes to stderr.
//
//	nbbench [-netbridge BIN -nbfloor BIN -netbridge-cni BIN] [-tc-redirect-tap BIN] [-baseline SCRIPT] [-json FILE] [flags]
//
// Without -netbridge, -nbfloor and -netbridge-cni it builds them itself,
// the way make bench does (CGO_ENABLED=0 go build -trimpath -ldflags '-s
// -w'). It needs root. With -tc-redirect-tap, the section "netbridge-cni
// vs tc-redirect-tap" measures the chained CNI plugin against that binary,
// which nothing here downloads; without it the report says it was not
// measured. To measure only that pair, in about a minute:
//
//	nbbench -only tcredirect -tc-redirect-tap BIN [-baseline-cni OLD]
//
// (-baseline-cni adds an earlier netbridge-cni build to the same rounds,
// to measure one change.)
//
// Every network namespace it makes is called /run/netns/nbbench-*, holds
// only documentation addresses and is removed on every way out, including
// SIGINT and SIGTERM; the namespace it runs in is never changed. Timings
// are reported, never asserted: a missed target is a "miss" in the report,
// not a failure.
package main

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

var nan = math.NaN()

// options are the command-line flags.
type options struct {
	netbridge, nbfloor, baseline string
	netbridgeCNI, tcRedirectTap  string
	baselineCNI                  string
	cniBin                       string
	jsonFile                     string
	stateBase                    string
	goCmd                        string
	rounds                       int
	roundsMany                   int
	parRounds                    int
	hookRounds                   int
	startupRuns                  int
	benchtime                    string
	datapath                     time.Duration
	timeout                      time.Duration
	skip                         string
	only                         string
}

// Section names for -skip.
var sections = []string{"gobench", "process", "scaling", "parallel", "resources", "datapath", "tcredirect"}

func main() {
	var o options
	flag.StringVar(&o.netbridge, "netbridge", "", "netbridge binary (default: build one)")
	flag.StringVar(&o.nbfloor, "nbfloor", "", "nbfloor binary (default: build one)")
	flag.StringVar(&o.netbridgeCNI, "netbridge-cni", "", "netbridge-cni binary, the chained CNI plugin (default: build one)")
	flag.StringVar(&o.tcRedirectTap, "tc-redirect-tap", "", "tc-redirect-tap binary to measure netbridge-cni against (default: none; that section then says so)")
	flag.StringVar(&o.baselineCNI, "baseline-cni", "", "another netbridge-cni build (before a change) measured in the same rounds as -netbridge-cni, in section 6")
	flag.StringVar(&o.cniBin, "cni-bin", "", "directory with the bridge and host-local CNI plugins (default: build them at go.mod's version)")
	flag.StringVar(&o.baseline, "baseline", "", "the shell baseline (default: test/bench/baseline.sh in the module)")
	flag.StringVar(&o.jsonFile, "json", "", "also write every raw number to this JSON file")
	flag.StringVar(&o.stateBase, "state-base", "", "directory on a tmpfs for netbridge's state (default: /run if tmpfs, else /dev/shm)")
	flag.StringVar(&o.goCmd, "go", "go", "the go command")
	flag.IntVar(&o.rounds, "rounds", 30, "rounds of setup+teardown as processes, 1 and 4 NICs")
	flag.IntVar(&o.roundsMany, "rounds-many", 10, "rounds with 16 NICs")
	flag.IntVar(&o.parRounds, "par-rounds", 5, "rounds of parallel setup+teardown of 1, 10 and 50 sandboxes")
	flag.IntVar(&o.hookRounds, "hook-rounds", 10, "rounds of netbridge hook prestart+poststop")
	flag.IntVar(&o.startupRuns, "startup-runs", 50, "runs of each start-up command")
	flag.StringVar(&o.benchtime, "benchtime", "", "go test -benchtime (default: go's, 1s)")
	flag.DurationVar(&o.datapath, "datapath", 3*time.Second, "duration of each datapath measurement (0 skips it)")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Minute, "give up (and clean up) after this long")
	flag.StringVar(&o.skip, "skip", "", "comma-separated sections to skip: "+strings.Join(sections, ", "))
	flag.StringVar(&o.only, "only", "", "comma-separated sections to run, skipping the others (same names as -skip)")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "nbbench: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	for name, v := range map[string]int{"rounds": o.rounds, "rounds-many": o.roundsMany, "par-rounds": o.parRounds, "hook-rounds": o.hookRounds, "startup-runs": o.startupRuns} {
		if v < 1 {
			fmt.Fprintf(os.Stderr, "nbbench: -%s %d: want at least 1\n", name, v)
			os.Exit(2)
		}
	}
	for flagName, list := range map[string]string{"skip": o.skip, "only": o.only} {
		for _, s := range strings.Split(list, ",") {
			if s != "" && !contains(sections, s) {
				fmt.Fprintf(os.Stderr, "nbbench: -%s: unknown section %q (have %s)\n", flagName, s, strings.Join(sections, ", "))
				os.Exit(2)
			}
		}
	}
	if o.only != "" {
		var skip []string
		for _, s := range sections {
			if !contains(strings.Split(o.only, ","), s) {
				skip = append(skip, s)
			}
		}
		o.skip = strings.Join(append(skip, o.skip), ",")
	}

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	// Signals cancel the run; cleanup then happens on the way out of run.
	// Later signals are absorbed too, so a second ^C cannot cut cleanup
	// short.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	interrupted := make(chan os.Signal, 1)
	go func() {
		for s := range sigs {
			select {
			case interrupted <- s:
				logf("%v: stopping; cleaning up", s)
			default:
				logf("%v: still cleaning up", s)
			}
			cancel()
		}
	}()

	err := runAll(ctx, o, os.Stdout)
	select {
	case s := <-interrupted:
		fmt.Fprintf(os.Stderr, "nbbench: interrupted by %v\n", s)
		os.Exit(130)
	default:
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "nbbench: %v\n", err)
		os.Exit(1)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

var start = time.Now()

// logf prints a progress line on stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "nbbench [%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}

// Raw is every number the report is made of; -json writes it.
type Raw struct {
	Host            Host                               `json:"host"`
	Rounds          map[string]int                     `json:"rounds"`
	GoBench         []GoBench                          `json:"go_bench"`
	GoBenchErr      string                             `json:"go_bench_error,omitempty"`
	GoBenchFailures []string                           `json:"go_bench_failures,omitempty"`
	NICs            map[int]map[string]*pairResult     `json:"nics"`
	Parallel        map[int]map[string]*parallelResult `json:"parallel"`
	Hook            map[string]*Series                 `json:"hook"`
	RSS             map[string]*Series                 `json:"rss"`
	RSSMethod       string                             `json:"rss_method"`
	Startup         []*Series                          `json:"startup"`
	Datapath        []DatapathResult                   `json:"datapath"`
	DatapathErr     string                             `json:"datapath_error,omitempty"`
	TCRedirect      *TCRedirect                        `json:"tc_redirect_tap,omitempty"`
	SectionErrs     map[string]string                  `json:"section_errors,omitempty"`
	Targets         []Target                           `json:"targets"`
	WallSeconds     float64                            `json:"wall_seconds"`
	Skipped         []string                           `json:"skipped,omitempty"`
}

// Host describes the machine and the binaries.
type Host struct {
	Date       string             `json:"date"`
	Kernel     string             `json:"kernel"`
	CPUModel   string             `json:"cpu_model"`
	CPUs       int                `json:"cpus"`
	GoVersion  string             `json:"go_version"`
	LoadStart  string             `json:"loadavg_start"`
	LoadEnd    string             `json:"loadavg_end"`
	StateDir   string             `json:"state_dir"`
	StateDirFS string             `json:"state_dir_fs"`
	Binaries   map[string]BinInfo `json:"binaries"`
	BaselineSh string             `json:"baseline"`
}

// BinInfo is how a measured binary was built.
type BinInfo struct {
	Path      string `json:"path"`
	Size      int64  `json:"size"`
	GoVersion string `json:"go_version"`
	Build     string `json:"build"` // CGO_ENABLED, -trimpath, -ldflags as recorded in the binary
}

// runAll runs every section and prints the report. Everything it creates
// (namespaces, state, binaries it built) is removed before it returns.
func runAll(ctx context.Context, o options, stdout io.Writer) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it creates network namespaces, taps and tc filters (never in the namespace it runs in)")
	}
	skip := map[string]bool{}
	for _, s := range strings.Split(o.skip, ",") {
		skip[s] = s != ""
	}
	raw := &Raw{
		Rounds:      map[string]int{"one_and_four_nics": o.rounds, "sixteen_nics": o.roundsMany, "parallel": o.parRounds, "hook": o.hookRounds, "startup": o.startupRuns},
		NICs:        map[int]map[string]*pairResult{},
		Parallel:    map[int]map[string]*parallelResult{},
		Hook:        map[string]*Series{},
		RSS:         map[string]*Series{},
		SectionErrs: map[string]string{},
	}
	for _, s := range sections {
		if skip[s] {
			raw.Skipped = append(raw.Skipped, s)
		}
	}
	root, err := moduleRoot(ctx, o.goCmd)
	if err != nil {
		return err
	}
	if o.baseline == "" {
		o.baseline = filepath.Join(root, "test", "bench", "baseline.sh")
	}
	if raw.Host, err = hostInfo(ctx, o.goCmd); err != nil {
		return err
	}
	raw.Host.BaselineSh = o.baseline

	base, fsName, err := tmpfsBase(o.stateBase)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp(base, "nbbench-")
	if err != nil {
		return fmt.Errorf("creating the work directory: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(work); rerr != nil {
			err = errors.Join(err, fmt.Errorf("removing %s: %w", work, rerr))
		}
	}()
	raw.Host.StateDir, raw.Host.StateDirFS = work, fsName
	logf("work directory %s (%s)", work, fsName)

	// The CLI and the floor serve the process sections, netbridge-cni
	// and the bridge plugin the tcredirect section.
	procs := !skip["process"] || !skip["scaling"] || !skip["parallel"] || !skip["resources"]
	chain := !skip["tcredirect"] && o.tcRedirectTap != ""
	binDir, err := os.MkdirTemp("", "nbbench-bin-")
	if err != nil {
		return fmt.Errorf("creating a directory for the binaries: %w", err)
	}
	defer os.RemoveAll(binDir)
	{
		for _, b := range []struct {
			path *string
			pkg  string
			need bool
		}{{&o.netbridge, "./cmd/netbridge", procs}, {&o.nbfloor, "./test/bench/cmd/nbfloor", procs}, {&o.netbridgeCNI, "./cmd/netbridge-cni", chain}} {
			if *b.path != "" || !b.need {
				continue
			}
			*b.path = filepath.Join(binDir, filepath.Base(b.pkg))
			logf("building %s", b.pkg)
			cmd := exec.CommandContext(ctx, o.goCmd, "build", "-trimpath", "-ldflags", "-s -w", "-o", *b.path, b.pkg)
			cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("building %s: %w\n%s", b.pkg, err, out)
			}
		}
	}
	if chain && o.cniBin == "" {
		o.cniBin = filepath.Join(binDir, "cni")
		logf("building the bridge and host-local CNI plugins")
		if err := buildCNIPlugins(ctx, o.goCmd, root, o.cniBin); err != nil {
			return err
		}
	}
	raw.Host.Binaries = map[string]BinInfo{}
	for name, p := range map[string]string{"netbridge": o.netbridge, "nbfloor": o.nbfloor, chainNetbridge: o.netbridgeCNI, chainOther: o.tcRedirectTap, chainBaseline: o.baselineCNI} {
		if p == "" {
			continue
		}
		bi, err := binInfo(p)
		if err != nil {
			return err
		}
		raw.Host.Binaries[name] = bi
	}
	if procs {
		for _, p := range []string{o.netbridge, o.nbfloor, o.baseline} {
			if _, err := os.Stat(p); err != nil {
				return fmt.Errorf("checking %s: %w", p, err)
			}
		}
	}

	w := &world{}
	defer func() {
		if derr := w.destroy(); derr != nil {
			err = errors.Join(err, fmt.Errorf("removing the benchmark namespaces: %w", derr))
		}
	}()
	r := &runner{netbridge: o.netbridge, nbfloor: o.nbfloor, baseline: o.baseline, stateDir: filepath.Join(work, "state")}

	// Processes first, on a quiet machine; the Go benchmarks and the
	// datapath after.
	if err := processSections(ctx, o, skip, w, r, work, raw); err != nil {
		if ctx.Err() != nil {
			return err
		}
		raw.SectionErrs["process"] = err.Error()
		logf("process sections: %v", err)
	}
	if derr := w.destroy(); derr != nil {
		return fmt.Errorf("removing the benchmark namespaces: %w", derr)
	}
	if !skip["tcredirect"] {
		if !chain {
			raw.TCRedirect = &TCRedirect{NotMeasured: "no tc-redirect-tap binary given (make bench TCREDIRECTTAP=PATH, or nbbench -tc-redirect-tap PATH); nothing in the project downloads it"}
		} else {
			logf("netbridge-cni vs tc-redirect-tap, %d rounds", o.rounds)
			raw.TCRedirect, err = measureTCRedirect(ctx, w, work, o.cniBin, o.netbridgeCNI, o.tcRedirectTap, o.baselineCNI, o.rounds)
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				raw.SectionErrs["tcredirect"] = err.Error()
				logf("tcredirect section: %v", err)
			}
			if derr := w.destroy(); derr != nil {
				return fmt.Errorf("removing the benchmark namespaces: %w", derr)
			}
		}
	}

	if !skip["gobench"] {
		logf("Go benchmarks (go test -bench over %s)", strings.Join(goBenchPkgs, " "))
		gbDir := filepath.Join(work, "gobench")
		if err := os.Mkdir(gbDir, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", gbDir, err)
		}
		progress := prefixWriter(os.Stderr, "  go test: ")
		var out string
		raw.GoBench, out, err = runGoBench(ctx, o.goCmd, root, gbDir, o.benchtime, progress)
		progress.Close()
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			raw.GoBenchErr = err.Error()
			raw.GoBenchFailures = failureLines(out, 30)
		}
	}
	if !skip["datapath"] && o.datapath > 0 {
		logf("datapath, %v per path", o.datapath)
		raw.Datapath, err = runDatapath(ctx, o.datapath)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			raw.DatapathErr = err.Error()
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	raw.WallSeconds = time.Since(start).Seconds()
	raw.Host.LoadEnd = loadavg()
	raw.Targets = targets(raw)
	if err := render(stdout, raw); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	if o.jsonFile != "" {
		b, err := json.MarshalIndent(raw, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding the raw numbers: %w", err)
		}
		if err := os.WriteFile(o.jsonFile, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", o.jsonFile, err)
		}
	}
	logf("done")
	return nil
}

// processSections measures sections 2, 3 and 5 with processes.
func processSections(ctx context.Context, o options, skip map[string]bool, w *world, r *runner, work string, raw *Raw) error {
	if skip["process"] && skip["scaling"] && skip["parallel"] && skip["resources"] {
		return nil
	}
	node, err := w.newNS()
	if err != nil {
		return err
	}
	var one *sandbox
	if !skip["process"] || !skip["scaling"] || !skip["resources"] {
		if one, err = w.newSandbox(node, "nbbench-1nic", "a", 1); err != nil {
			return err
		}
	}
	if !skip["resources"] {
		logf("start-up: netbridge version, nbfloor (usage), /bin/true, %d runs each", o.startupRuns)
		raw.Startup, err = measureCommands(ctx,
			[]string{"netbridge version", "nbfloor (no arguments: usage)", "/bin/true"},
			[]func() *exec.Cmd{
				func() *exec.Cmd { return exec.Command(r.netbridge, "version") },
				func() *exec.Cmd { return exec.Command(r.nbfloor) },
				func() *exec.Cmd { return exec.Command("/bin/true") },
			},
			[]int{0, 2, 0}, o.startupRuns)
		if err != nil {
			return err
		}
	}
	if !skip["process"] || !skip["scaling"] || !skip["resources"] {
		names := []string{implNetbridge, implFloor, implShell}
		if !skip["process"] {
			names = append(names, implShellExec)
		}
		logf("1 NIC: %s, %d rounds", strings.Join(names, ", "), o.rounds)
		if raw.NICs[1], err = measurePairs(ctx, r, one, names, o.rounds, "nics=1"); err != nil {
			return err
		}
	}
	var sixteen *sandbox
	if !skip["scaling"] || !skip["resources"] {
		if sixteen, err = w.newSandbox(node, "nbbench-16nic", "n16_", 16); err != nil {
			return err
		}
	}
	if !skip["scaling"] {
		for _, n := range []int{4, 16} {
			rounds := o.rounds
			sb := sixteen
			if n == 4 {
				if sb, err = w.newSandbox(node, "nbbench-4nic", "n4_", 4); err != nil {
					return err
				}
			} else {
				rounds = o.roundsMany
			}
			logf("%d NICs: netbridge, floor, shell, %d rounds", n, rounds)
			if raw.NICs[n], err = measurePairs(ctx, r, sb, []string{implNetbridge, implFloor, implShell}, rounds, fmt.Sprintf("nics=%d", n)); err != nil {
				return err
			}
		}
	}
	if !skip["resources"] {
		state, err := hookInput(one, work)
		if err != nil {
			return err
		}
		logf("hook prestart/poststop, %d rounds", o.hookRounds)
		if err := measureHook(ctx, r, one, state, o.hookRounds, raw); err != nil {
			return err
		}
		logf("peak RSS, %d rounds", o.hookRounds)
		raw.RSS, raw.RSSMethod, err = measureRSS(ctx, rssItems(ctx, r, one, sixteen, state), o.hookRounds, work)
		if err != nil {
			return err
		}
	}
	if !skip["parallel"] {
		var pods []*sandbox
		for i := range 50 {
			sb, err := w.newSandbox(node, fmt.Sprintf("nbbench-par%d", i), fmt.Sprintf("p%d_", i), 1)
			if err != nil {
				return err
			}
			pods = append(pods, sb)
		}
		for _, n := range []int{1, 10, 50} {
			logf("%d sandboxes in parallel: netbridge, floor, %d rounds", n, o.parRounds)
			if raw.Parallel[n], err = measureParallel(ctx, r, pods[:n], []string{implNetbridge, implFloor}, o.parRounds); err != nil {
				return err
			}
		}
	}
	return nil
}

// hookInput writes a bundle whose config.json names s's netns and returns
// the container state a runtime would pass the hook on stdin.
func hookInput(s *sandbox, work string) (string, error) {
	bundle := filepath.Join(work, "bundle")
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		return "", fmt.Errorf("creating the hook bundle: %w", err)
	}
	config := fmt.Sprintf(`{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"network","path":%q}]}}`, s.ns.path)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(config), 0o600); err != nil {
		return "", fmt.Errorf("writing the hook bundle: %w", err)
	}
	return fmt.Sprintf(`{"ociVersion":"1.2.0","id":%q,"status":"created","pid":0,"bundle":%q}`, s.id, bundle), nil
}

// hookCmd is `netbridge hook STAGE` with the driver's state directory.
func (r *runner) hookCmd(stage string) *exec.Cmd {
	return exec.Command(r.netbridge, "hook", stage, "--state-dir", r.stateDir)
}

// rssItems are the processes whose peak RSS section 5 reports.
func rssItems(ctx context.Context, r *runner, one, sixteen *sandbox, state string) []rssItem {
	nb, fl, sh := r.impl(implNetbridge), r.impl(implFloor), r.impl(implShell)
	pair := func(label, undoName string, im impl, s *sandbox) rssItem {
		return rssItem{
			label: label, cmd: func() *exec.Cmd { return im.setup(s) }, after: s.wired,
			undoName: undoName, undo: func() *exec.Cmd { return im.teardown(s) }, undoDone: s.clean,
			reset: func() error { return r.resetSandbox(ctx, s) },
		}
	}
	items := []rssItem{
		pair("netbridge setup, 1 NIC", "netbridge teardown, 1 NIC", nb, one),
		{
			label: "netbridge hook prestart, 1 NIC", cmd: func() *exec.Cmd { return r.hookCmd("prestart") }, stdin: state, after: one.wired,
			undoName: "netbridge hook poststop, 1 NIC", undo: func() *exec.Cmd { return r.hookCmd("poststop") }, undoIn: state, undoDone: one.clean,
			reset: func() error { return r.resetSandbox(ctx, one) },
		},
	}
	if sixteen != nil {
		items = append(items, pair("netbridge setup, 16 NICs", "netbridge teardown, 16 NICs", nb, sixteen))
	}
	return append(items,
		pair("nbfloor setup, 1 NIC", "nbfloor teardown, 1 NIC", fl, one),
		pair("baseline.sh setup, 1 NIC", "baseline.sh teardown, 1 NIC", sh, one),
		rssItem{label: "netbridge version", cmd: func() *exec.Cmd { return exec.Command(r.netbridge, "version") }},
		rssItem{label: "nbfloor (no arguments: usage)", cmd: func() *exec.Cmd { return exec.Command(r.nbfloor) }, wantExit: 2},
		rssItem{label: "/bin/true", cmd: func() *exec.Cmd { return exec.Command("/bin/true") }},
	)
}

// measureHook runs `netbridge hook prestart` and `netbridge hook poststop`
// on s, the way a runtime does: the container state on stdin, the netns in
// the bundle's config.json.
func measureHook(ctx context.Context, r *runner, s *sandbox, state string, rounds int, raw *Raw) error {
	pre := &Series{Name: "hook prestart (1 NIC)"}
	post := &Series{Name: "hook poststop (1 NIC)"}
	for range rounds {
		if err := ctx.Err(); err != nil {
			return err
		}
		su := run(ctx, r.hookCmd("prestart"), strings.NewReader(state))
		check(&su, "hook prestart", s.wired)
		td := run(ctx, r.hookCmd("poststop"), strings.NewReader(state))
		check(&td, "hook poststop", s.clean)
		if su.Err != "" || td.Err != "" {
			if err := r.resetSandbox(ctx, s); err != nil {
				return fmt.Errorf("resetting sandbox %s after a failed hook: %w", s.ns.name, err)
			}
		}
		pre.Samples = append(pre.Samples, su)
		post.Samples = append(post.Samples, td)
	}
	raw.Hook["prestart"], raw.Hook["poststop"] = pre, post
	return nil
}

// moduleRoot returns the directory of the main module's go.mod.
func moduleRoot(ctx context.Context, goCmd string) (string, error) {
	out, err := exec.CommandContext(ctx, goCmd, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the netbridge module: run nbbench from the repository")
	}
	return filepath.Dir(gomod), nil
}

// tmpfsBase returns the directory for the netbridge state: dir if given,
// else /run if it is a tmpfs, else /dev/shm; and its file system's name.
func tmpfsBase(dir string) (string, string, error) {
	cands := []string{"/run", "/dev/shm"}
	if dir != "" {
		cands = []string{dir}
	}
	for _, d := range cands {
		var st unix.Statfs_t
		if err := unix.Statfs(d, &st); err != nil {
			if dir != "" {
				return "", "", fmt.Errorf("-state-base %s: %w", dir, err)
			}
			continue
		}
		fs := "not tmpfs"
		if st.Type == unix.TMPFS_MAGIC {
			fs = "tmpfs"
		}
		if dir != "" || fs == "tmpfs" {
			return d, fs, nil
		}
	}
	return "", "", errors.New("found no tmpfs (/run, /dev/shm) for the state; give one with -state-base")
}

// hostInfo describes the machine.
func hostInfo(ctx context.Context, goCmd string) (Host, error) {
	h := Host{Date: time.Now().UTC().Format("2006-01-02 15:04:05 MST"), CPUs: runtime.NumCPU()}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return h, fmt.Errorf("uname: %w", err)
	}
	h.Kernel = unix.ByteSliceToString(u.Release[:])
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	out, err := exec.CommandContext(ctx, goCmd, "env", "GOVERSION").Output()
	if err != nil {
		return h, fmt.Errorf("go env GOVERSION: %w", err)
	}
	h.GoVersion = strings.TrimSpace(string(out))
	h.LoadStart = loadavg()
	return h, nil
}

// loadavg returns the first three fields of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// binInfo reads how the binary at path was built from its build info.
func binInfo(path string) (BinInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return BinInfo{}, fmt.Errorf("checking %s: %w", path, err)
	}
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return BinInfo{}, fmt.Errorf("reading the build info of %s: %w", path, err)
	}
	var parts []string
	for _, s := range bi.Settings {
		switch s.Key {
		case "CGO_ENABLED", "-trimpath", "-ldflags", "-tags", "-race":
			parts = append(parts, fmt.Sprintf("%s=%s", s.Key, s.Value))
		}
	}
	// The go command does not record -ldflags with -trimpath; -s and -w
	// show as a missing symbol table and missing DWARF.
	f, err := elf.Open(path)
	if err != nil {
		return BinInfo{}, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	if f.Section(".symtab") == nil {
		parts = append(parts, "no symbol table (-s)")
	}
	if f.Section(".debug_info") == nil && f.Section(".zdebug_info") == nil {
		parts = append(parts, "no DWARF (-w)")
	}
	return BinInfo{Path: path, Size: fi.Size(), GoVersion: bi.GoVersion, Build: strings.Join(parts, " ")}, nil
}

// prefixWriter writes each line to w with a prefix, until closed.
func prefixWriter(w io.Writer, prefix string) io.WriteCloser {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(w, "%s%s\n", prefix, sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	return pw
}
