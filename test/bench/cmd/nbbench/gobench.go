package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// GoBench is one line of `go test -bench` output.
type GoBench struct {
	Pkg     string             `json:"pkg"`
	Name    string             `json:"name"` // without the -GOMAXPROCS suffix
	Procs   int                `json:"procs"`
	N       int64              `json:"n"`
	Metrics map[string]float64 `json:"metrics"` // unit -> value: ns/op, B/op, allocs/op, ns/NIC...
	Units   []string           `json:"units"`   // the units in output order
}

// goBenchPkgs are the packages whose benchmarks the report shows.
var goBenchPkgs = []string{"./netbridge/", "./hypervisor/...", "./test/bench/..."}

// runGoBench runs the Go benchmarks of goBenchPkgs in the module at root,
// with the netbridge state on stateDir, and returns their parsed results
// and the raw output. The go command runs in its own process group, which
// is killed (by its id, the go command's pid) when ctx is cancelled.
func runGoBench(ctx context.Context, goCmd, root, stateDir, benchtime string, progress io.Writer) ([]GoBench, string, error) {
	args := []string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-count", "1"}
	if benchtime != "" {
		args = append(args, "-benchtime", benchtime)
	}
	args = append(args, goBenchPkgs...)
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "NETBRIDGE_BENCH_STATE_DIR="+stateDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The group holds the go command and the test binaries it runs.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(&out, progress)
	cmd.Stderr = cmd.Stdout
	err := cmd.Run()
	res := parseGoBench(out.String())
	if err != nil {
		return res, out.String(), fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return res, out.String(), nil
}

var procsSuffix = regexp.MustCompile(`-(\d+)$`)

// parseGoBench parses the benchmark lines of go test output, attributing
// each to the package named by the "pkg:" line before it.
func parseGoBench(out string) []GoBench {
	var res []GoBench
	pkg := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || len(f)%2 != 0 {
			continue // a benchmark's own log line, or a failure
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		b := GoBench{Pkg: pkg, Name: f[0], N: n, Metrics: map[string]float64{}}
		if m := procsSuffix.FindStringSubmatch(b.Name); m != nil {
			b.Procs, _ = strconv.Atoi(m[1])
			b.Name = strings.TrimSuffix(b.Name, m[0])
		}
		ok := true
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				ok = false
				break
			}
			b.Metrics[f[i+1]] = v
			b.Units = append(b.Units, f[i+1])
		}
		if ok {
			res = append(res, b)
		}
	}
	return res
}

// find returns the metric unit of the benchmark called name, and whether
// it was there.
func findBench(bs []GoBench, name, unit string) (float64, bool) {
	for _, b := range bs {
		if b.Name == name {
			v, ok := b.Metrics[unit]
			return v, ok
		}
	}
	return 0, false
}

// failureLines returns at most n lines of go test output that tell why it
// failed: compiler errors, panics, FAIL and --- FAIL lines.
func failureLines(out string, n int) []string {
	var res []string
	for _, line := range strings.Split(out, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "FAIL") || strings.HasPrefix(t, "--- FAIL") || strings.HasPrefix(t, "panic:") ||
			strings.HasPrefix(t, "#") || strings.Contains(t, ".go:") {
			res = append(res, line)
			if len(res) == n {
				break
			}
		}
	}
	return res
}
