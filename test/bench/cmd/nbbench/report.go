package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// Target is one of the targets with what was measured.
type Target struct {
	Name     string `json:"name"`
	Want     string `json:"want"`
	Measured string `json:"measured"`
	// Result is "pass", "miss", or "n/a" when it could not be measured.
	Result string `json:"result"`
}

func pass(ok bool) string {
	if ok {
		return "pass"
	}
	return "miss"
}

// med returns the median wall time of a series, or NaN.
func med(s *Series) float64 {
	if s == nil {
		return nan
	}
	return median(s.walls())
}

func pairSeries(raw *Raw, nics int, impl, phase string) *Series {
	p := raw.NICs[nics][impl]
	if p == nil {
		return nil
	}
	switch phase {
	case "setup":
		return &p.Setup
	case "teardown":
		return &p.Teardown
	}
	return &p.Both
}

func pairMed(raw *Raw, nics int, impl, phase string) float64 {
	return med(pairSeries(raw, nics, impl, phase))
}

// maxRSS returns the largest peak RSS (KiB) of a series' samples, or 0.
func maxRSS(s *Series) int64 {
	var m int64
	if s == nil {
		return 0
	}
	for _, x := range s.Samples {
		m = max(m, x.MaxRSSKiB)
	}
	return m
}

// ratioTarget makes a target from a ratio that must be at most (le) or at
// least (!le) limit.
func ratioTarget(name, want string, num, den, limit float64, le bool, detail string) Target {
	t := Target{Name: name, Want: want, Result: "n/a", Measured: "not measured"}
	if math.IsNaN(num) || math.IsNaN(den) || den == 0 {
		return t
	}
	r := num / den
	t.Measured = fmt.Sprintf("%.2fx (%s)", r, detail)
	if le {
		t.Result = pass(r <= limit)
	} else {
		t.Result = pass(r >= limit)
	}
	return t
}

// rssLimitKiB is the peak RSS target, 20 MiB.
const rssLimitKiB = 20 * 1024

// targets compares each of the targets with the measurements.
func targets(raw *Raw) []Target {
	var ts []Target
	nbSetup, flSetup, shSetup := pairMed(raw, 1, implNetbridge, "setup"), pairMed(raw, 1, implFloor, "setup"), pairMed(raw, 1, implShell, "setup")
	ts = append(ts,
		ratioTarget("1 NIC setup as a process vs floor", "≤ 1.2x floor", nbSetup, flSetup, 1.2, true,
			fmt.Sprintf("%s vs %s", fmtDur(nbSetup), fmtDur(flSetup))),
		ratioTarget("1 NIC setup as a process vs shell", "≥ 2.5x faster", shSetup, nbSetup, 2.5, false,
			fmt.Sprintf("shell %s vs %s", fmtDur(shSetup), fmtDur(nbSetup))))
	lib, ok1 := findBench(raw.GoBench, "BenchmarkInProcess/setup/library", "ns/op")
	fl, ok2 := findBench(raw.GoBench, "BenchmarkInProcess/setup/floor", "ns/op")
	if !ok1 || !ok2 {
		lib, fl = nan, nan
	}
	ts = append(ts, ratioTarget("library setup in process vs floor in process (1 NIC)", "≤ 1.5x floor", lib, fl, 1.5, true,
		fmt.Sprintf("%s vs %s", fmtDur(lib), fmtDur(fl))))
	td16, td1 := pairMed(raw, 16, implNetbridge, "teardown"), pairMed(raw, 1, implNetbridge, "teardown")
	ts = append(ts, ratioTarget("teardown of 16 NICs vs 1 (netbridge process)", "≤ 2x", td16, td1, 2, true,
		fmt.Sprintf("%s vs %s", fmtDur(td16), fmtDur(td1))))
	nb4, sh4 := pairMed(raw, 4, implNetbridge, "both"), pairMed(raw, 4, implShell, "both")
	ts = append(ts, ratioTarget("4 NICs setup+teardown as processes vs shell", "≥ 3x faster", sh4, nb4, 3, false,
		fmt.Sprintf("shell %s vs %s", fmtDur(sh4), fmtDur(nb4))))
	if p := raw.Parallel[50]; p != nil && p[implNetbridge] != nil {
		nb := p[implNetbridge]
		t := Target{Name: "50 parallel sandboxes as processes: errors", Want: "0", Measured: fmt.Sprint(nb.Errors), Result: pass(nb.Errors == 0)}
		if fl := p[implFloor]; fl != nil {
			t.Measured += fmt.Sprintf(" (floor: %d)", fl.Errors)
		}
		ts = append(ts, t)
		if fl := p[implFloor]; fl != nil {
			a, b := median(nb.perSandbox()), median(fl.perSandbox())
			ts = append(ts, ratioTarget("50 parallel sandboxes as processes: wall per sandbox vs floor", "≤ 1.2x floor", a, b, 1.2, true,
				fmt.Sprintf("%s vs %s", fmtDur(a), fmtDur(b))))
		}
	} else {
		ts = append(ts, Target{Name: "50 parallel sandboxes as processes", Want: "0 errors, ≤ 1.2x floor", Measured: "not measured", Result: "n/a"})
	}
	ts = append(ts, tcRedirectTargets(raw.TCRedirect)...)
	lib, ok1 = findBench(raw.GoBench, "BenchmarkParallel50/library", "ns/sandbox")
	fl, ok2 = findBench(raw.GoBench, "BenchmarkParallel50/floor", "ns/sandbox")
	if !ok1 || !ok2 {
		lib, fl = nan, nan
	}
	ts = append(ts, ratioTarget("50 parallel sandboxes in one process (library) vs floor", "≤ 2x floor", lib, fl, 2, true,
		fmt.Sprintf("%s vs %s per sandbox", fmtDur(lib), fmtDur(fl))))
	for _, c := range []struct {
		name string
		s    *Series
	}{
		{"peak RSS of netbridge setup (1 NIC)", raw.RSS["netbridge setup, 1 NIC"]},
		{"peak RSS of netbridge hook prestart (1 NIC)", raw.RSS["netbridge hook prestart, 1 NIC"]},
	} {
		t := Target{Name: c.name, Want: "≤ 20 MiB", Measured: "not measured", Result: "n/a"}
		if m := maxRSS(c.s); m > 0 {
			t.Measured = fmt.Sprintf("%s (max of %d runs)", fmtKiB(m), len(c.s.Samples))
			t.Result = pass(m <= rssLimitKiB)
		}
		ts = append(ts, t)
	}
	return ts
}

// fmtDur formats nanoseconds.
func fmtDur(ns float64) string {
	switch {
	case math.IsNaN(ns):
		return "n/a"
	case ns < 1e3:
		return fmt.Sprintf("%.0f ns", ns)
	case ns < 1e6:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	case ns < 1e9:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	}
	return fmt.Sprintf("%.2f s", ns/1e9)
}

func fmtRatio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func fmtKiB(k int64) string {
	if k == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(k)/1024)
}

// fmtNum formats a benchmark metric compactly.
func fmtNum(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// spread is "median (p10–p90)" of a series' wall times.
func spread(s *Series) string {
	if s == nil {
		return "n/a"
	}
	w := s.walls()
	if len(w) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%s (%s–%s)", fmtDur(median(w)), fmtDur(quantile(w, 0.1)), fmtDur(quantile(w, 0.9)))
}

// cpu is the median user+sys CPU time of a series' successful samples.
func cpu(s *Series) string {
	if s == nil {
		return "n/a"
	}
	var xs []float64
	for _, x := range s.Samples {
		if x.Err == "" {
			xs = append(xs, float64(x.UserNS+x.SysNS))
		}
	}
	return fmtDur(median(xs))
}

// rssOrder is the order of the peak RSS table.
var rssOrder = []string{
	"netbridge setup, 1 NIC", "netbridge teardown, 1 NIC", "netbridge hook prestart, 1 NIC", "netbridge hook poststop, 1 NIC",
	"netbridge setup, 16 NICs", "netbridge teardown, 16 NICs", "nbfloor setup, 1 NIC", "nbfloor teardown, 1 NIC",
	"baseline.sh setup, 1 NIC", "baseline.sh teardown, 1 NIC", "netbridge version", "nbfloor (no arguments: usage)", "/bin/true",
}

var implLabels = map[string]string{
	implNetbridge: "netbridge",
	implFloor:     "floor (nbfloor)",
	implShell:     "shell (baseline.sh: ip -n / tc -n)",
	implShellExec: "shell (baseline.sh: ip netns exec)",
}

// render writes the markdown report.
func render(out io.Writer, raw *Raw) error {
	w := bufio.NewWriter(out)
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	h := raw.Host
	p("# netbridge benchmark report")
	p("")
	p("- Date: %s", h.Date)
	p("- Kernel: %s", h.Kernel)
	p("- CPU: %s, %d CPUs", h.CPUModel, h.CPUs)
	p("- Go: %s", h.GoVersion)
	p("- Load average (1, 5, 15 min): %s at the start, %s at the end", h.LoadStart, h.LoadEnd)
	for _, name := range []string{"netbridge", "nbfloor", chainNetbridge, chainOther} {
		if b, ok := h.Binaries[name]; ok {
			p("- %s binary: %.1f MiB, %s; build info: %s", name, float64(b.Size)/(1<<20), b.GoVersion, b.Build)
		}
	}
	p("- State directory (netbridge --state-dir, NETBRIDGE_BENCH_STATE_DIR): %s (%s)", h.StateDir, h.StateDirFS)
	p("- Rounds: %d (1 and 4 NICs), %d (16 NICs), %d (parallel), %d (hook), %d (start-up); whole run %.0f s", raw.Rounds["one_and_four_nics"], raw.Rounds["sixteen_nics"], raw.Rounds["parallel"], raw.Rounds["hook"], raw.Rounds["startup"], raw.WallSeconds)
	if len(raw.Skipped) > 0 {
		p("- Skipped sections: %s", strings.Join(raw.Skipped, ", "))
	}
	p("")
	p("Process times are wall times from fork to reaped exit, medians over the rounds, with p10–p90 in parentheses. Implementations alternate within every round (the first one rotates), in the same netns; every setup and teardown is checked (tap up, both redirect filters; then nothing left) outside the timing. Model tcfilter throughout; this kernel has u32, mirred and ingress but no matchall.")
	for sec, e := range raw.SectionErrs {
		p("")
		p("**Error in section %s:** %s", sec, e)
	}

	// 1. Go benchmarks.
	if !contains(raw.Skipped, "gobench") {
		p("")
		p("## 1. Go benchmarks")
		p("")
		p("`go test -run '^$' -bench . -benchmem -count 1 %s`, with `NETBRIDGE_BENCH_STATE_DIR` on the tmpfs above.", strings.Join(goBenchPkgs, " "))
	}
	if raw.GoBenchErr != "" {
		p("")
		p("**go test failed:** `%s` (the results it printed are below).", oneLine(raw.GoBenchErr))
		if len(raw.GoBenchFailures) > 0 {
			p("")
			p("~~~")
			for _, l := range raw.GoBenchFailures {
				p("%s", l)
			}
			p("~~~")
		}
	}
	if len(raw.GoBench) > 0 {
		p("")
		p("| package | benchmark | n | ns/op | time/op | other metrics | B/op | allocs/op |")
		p("|---|---|--:|--:|--:|---|--:|--:|")
		for _, b := range raw.GoBench {
			var extra []string
			for _, u := range b.Units {
				if u == "ns/op" || u == "B/op" || u == "allocs/op" {
					continue
				}
				v := b.Metrics[u]
				if strings.HasPrefix(u, "ns/") {
					extra = append(extra, fmt.Sprintf("%s %s (%s)", fmtNum(v), u, fmtDur(v)))
				} else {
					extra = append(extra, fmt.Sprintf("%s %s", fmtNum(v), u))
				}
			}
			p("| %s | %s | %d | %s | %s | %s | %s | %s |", shortPkg(b.Pkg), strings.TrimPrefix(b.Name, "Benchmark"), b.N,
				metric(b, "ns/op"), fmtDur(valueOr(b, "ns/op")), strings.Join(extra, ", "), metric(b, "B/op"), metric(b, "allocs/op"))
		}
	} else if !contains(raw.Skipped, "gobench") {
		p("")
		p("No benchmark results.")
	}

	// 2. One NIC as processes.
	if one := raw.NICs[1]; one != nil {
		p("")
		p("## 2. One NIC: netbridge vs floor vs shell, as processes")
		p("")
		p("`netbridge setup --id ID --netns PATH --model tcfilter --state-dir DIR` / `netbridge teardown`, against `nbfloor setup|teardown PATH eth0` and `baseline.sh setup|teardown NETNS eth0 nb-eth0`; %d rounds.", raw.Rounds["one_and_four_nics"])
		p("")
		p("| implementation | setup | teardown | setup+teardown | CPU setup (user+sys) | CPU teardown | errors |")
		p("|---|--:|--:|--:|--:|--:|--:|")
		for _, name := range []string{implNetbridge, implFloor, implShell, implShellExec} {
			r := one[name]
			if r == nil {
				continue
			}
			p("| %s | %s | %s | %s | %s | %s | %d |", implLabels[name], spread(&r.Setup), spread(&r.Teardown), spread(&r.Both),
				cpu(&r.Setup), cpu(&r.Teardown), r.Setup.errors()+r.Teardown.errors())
		}
		p("")
		p("| ratio of medians | setup | teardown | setup+teardown |")
		p("|---|--:|--:|--:|")
		row := func(label, a, b string) {
			var cells []string
			for _, ph := range []string{"setup", "teardown", "both"} {
				cells = append(cells, fmtRatio(pairMed(raw, 1, a, ph), pairMed(raw, 1, b, ph)))
			}
			p("| %s | %s |", label, strings.Join(cells, " | "))
		}
		row("netbridge / floor", implNetbridge, implFloor)
		row("shell / netbridge", implShell, implNetbridge)
		if one[implShellExec] != nil {
			row("shell (ip netns exec) / netbridge", implShellExec, implNetbridge)
		}
		reportErrors(p, one)
	}

	// 3. Scaling.
	if raw.NICs[4] != nil || raw.NICs[16] != nil {
		p("")
		p("## 3. Scaling")
		p("")
		p("### NICs in one sandbox, as processes")
		p("")
		p("Rounds: %d for 1 and 4 NICs, %d for 16.", raw.Rounds["one_and_four_nics"], raw.Rounds["sixteen_nics"])
		for _, ph := range []struct{ key, title string }{{"setup", "Setup"}, {"teardown", "Teardown"}, {"both", "Setup+teardown"}} {
			p("")
			p("%s:", ph.title)
			p("")
			p("| NICs | netbridge | floor | shell | netbridge per NIC | netbridge / floor | shell / netbridge | netbridge vs its 1 NIC |")
			p("|--:|--:|--:|--:|--:|--:|--:|--:|")
			for _, n := range []int{1, 4, 16} {
				if raw.NICs[n] == nil {
					continue
				}
				nb, fl, sh := pairMed(raw, n, implNetbridge, ph.key), pairMed(raw, n, implFloor, ph.key), pairMed(raw, n, implShell, ph.key)
				p("| %d | %s | %s | %s | %s | %s | %s | %s |", n, fmtDur(nb), fmtDur(fl), fmtDur(sh), fmtDur(nb/float64(n)),
					fmtRatio(nb, fl), fmtRatio(sh, nb), fmtRatio(nb, pairMed(raw, 1, implNetbridge, ph.key)))
			}
		}
		for _, n := range []int{4, 16} {
			if raw.NICs[n] != nil {
				reportErrors(p, raw.NICs[n])
			}
		}
	}
	if len(raw.Parallel) > 0 {
		p("")
		p("### Sandboxes in parallel, as processes")
		p("")
		p("N sandboxes (each its own netns with one veth NIC) set up at once, one process each, then torn down at once; wall time of each whole phase, median of %d rounds; per sandbox = (setup + teardown wall) / N. Errors count failed processes and failed checks.", raw.Rounds["parallel"])
		p("")
		p("| sandboxes | implementation | setup wall | teardown wall | per sandbox | netbridge / floor (per sandbox) | errors |")
		p("|--:|---|--:|--:|--:|--:|--:|")
		ns := make([]int, 0, len(raw.Parallel))
		for n := range raw.Parallel {
			ns = append(ns, n)
		}
		sort.Ints(ns)
		for _, n := range ns {
			for _, name := range []string{implNetbridge, implFloor} {
				r := raw.Parallel[n][name]
				if r == nil {
					continue
				}
				ratio := ""
				if fl := raw.Parallel[n][implFloor]; name == implNetbridge && fl != nil {
					ratio = fmtRatio(median(r.perSandbox()), median(fl.perSandbox()))
				}
				p("| %d | %s | %s | %s | %s | %s | %d |", n, implLabels[name], fmtDur(median(int64s(r.SetupNS))), fmtDur(median(int64s(r.TeardownNS))),
					fmtDur(median(r.perSandbox())), ratio, r.Errors)
			}
		}
		for _, n := range ns {
			for _, name := range []string{implNetbridge, implFloor} {
				if r := raw.Parallel[n][name]; r != nil && r.FirstErr != "" {
					p("")
					p("First error (%s, %d sandboxes): `%s`", name, n, oneLine(r.FirstErr))
				}
			}
		}
	}

	// 4. Datapath.
	if len(raw.Datapath) > 0 || raw.DatapathErr != "" {
		p("")
		p("## 4. Datapath")
		p("")
		p("From `test/bench/datapath` (`datapath.Run`): frames delivered from the node into the guest's tap queue per path, against a plain veth into a packet socket.")
		if raw.DatapathErr != "" {
			p("")
			p("**Error:** `%s`", oneLine(raw.DatapathErr))
		}
		if len(raw.Datapath) > 0 {
			p("")
			p("| path | frames | bytes | seconds | frames/s | Gbit/s | vs first path |")
			p("|---|--:|--:|--:|--:|--:|--:|")
			var ref float64
			for i, d := range raw.Datapath {
				fps := nan
				if d.Seconds > 0 {
					fps = float64(d.Frames) / d.Seconds
				}
				if i == 0 {
					ref = fps
				}
				p("| %s | %d | %d | %.2f | %.0f | %.2f | %s |", d.Path, d.Frames, d.Bytes, d.Seconds, fps, float64(d.Bytes)*8/d.Seconds/1e9, fmtRatio(fps, ref))
			}
		}
	}

	// 5. Resources.
	if len(raw.Startup) > 0 || len(raw.Hook) > 0 || len(raw.RSS) > 0 {
		p("")
		p("## 5. Peak RSS and start-up")
		if len(raw.RSS) > 0 {
			p("")
			p("Peak RSS by %s, %d runs each, alternating.", raw.RSSMethod, raw.Rounds["hook"])
			p("")
			p("| process | peak RSS median | peak RSS max | errors |")
			p("|---|--:|--:|--:|")
			for _, label := range rssOrder {
				r := raw.RSS[label]
				if r == nil {
					continue
				}
				var rss []float64
				for _, x := range r.Samples {
					if x.Err == "" {
						rss = append(rss, float64(x.MaxRSSKiB))
					}
				}
				p("| %s | %s | %s | %d |", label, fmtKiB(int64(median(rss))), fmtKiB(maxRSS(r)), r.errors())
			}
			firstErrors(p, raw.RSS, rssOrder, "")
		}
		if len(raw.Hook) > 0 {
			p("")
			p("The OCI hook as a runtime runs it (state on stdin, netns from the bundle's config.json), %d rounds:", raw.Rounds["hook"])
			p("")
			p("| process | wall | CPU (user+sys) | errors |")
			p("|---|--:|--:|--:|")
			for _, stage := range hookStages {
				if r := raw.Hook[stage]; r != nil {
					p("| netbridge hook %s, 1 NIC | %s | %s | %d |", stage, spread(r), cpu(r), r.errors())
				}
			}
			firstErrors(p, raw.Hook, hookStages, "hook ")
		}
		if len(raw.Startup) > 0 {
			p("")
			p("Start-up time (%d runs each, alternating):", raw.Rounds["startup"])
			p("")
			p("| command | median | min | p90 | errors |")
			p("|---|--:|--:|--:|--:|")
			for _, s := range raw.Startup {
				w := s.walls()
				p("| `%s` | %s | %s | %s | %d |", s.Name, fmtDur(median(w)), fmtDur(quantile(w, 0)), fmtDur(quantile(w, 0.9)), s.errors())
			}
		}
	}

	// 6. netbridge-cni vs tc-redirect-tap.
	if raw.TCRedirect != nil {
		renderTCRedirect(p, raw)
	}

	// Targets.
	p("")
	p("## Targets")
	p("")
	p("| target | wanted | measured | result |")
	p("|---|---|---|---|")
	for _, t := range raw.Targets {
		if len(raw.Skipped) > 0 && t.Result == "n/a" && t.Measured == "not measured" {
			continue // a skipped section's
		}
		p("| %s | %s | %s | %s |", t.Name, t.Want, t.Measured, t.Result)
	}
	return w.Flush()
}

// hookStages are the keys of Raw.Hook, in the order section 5 shows them.
var hookStages = []string{"prestart", "poststop"}

// firstErrors writes the first error of each series of m that has one, in
// the order of keys, as "First error (<prefix><key>): ...".
func firstErrors(p func(string, ...any), m map[string]*Series, keys []string, prefix string) {
	for _, k := range keys {
		if r := m[k]; r != nil && r.firstErr() != "" {
			p("")
			p("First error (%s%s): `%s`", prefix, k, oneLine(r.firstErr()))
		}
	}
}

func reportErrors(p func(string, ...any), m map[string]*pairResult) {
	for _, name := range []string{implNetbridge, implFloor, implShell, implShellExec} {
		r := m[name]
		if r == nil {
			continue
		}
		for _, s := range []*Series{&r.Setup, &r.Teardown} {
			if e := s.firstErr(); e != "" {
				p("")
				p("First error (%s, %d failed): `%s`", s.Name, s.errors(), oneLine(e))
			}
		}
	}
}

func metric(b GoBench, unit string) string {
	v, ok := b.Metrics[unit]
	if !ok {
		return ""
	}
	return fmtNum(v)
}

func valueOr(b GoBench, unit string) float64 {
	if v, ok := b.Metrics[unit]; ok {
		return v
	}
	return nan
}

func shortPkg(p string) string {
	return strings.TrimPrefix(p, "github.com/netbridge/netbridge/")
}

// oneLine flattens text for a table cell or inline code.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "`", "'")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}
