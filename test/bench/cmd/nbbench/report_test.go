package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

const goTestOutput = `goos: linux
goarch: amd64
pkg: github.com/netbridge/netbridge/netbridge
cpu: AMD EPYC
BenchmarkSetupTeardown/model=tcfilter/nics=1-2         	      52	  28800977 ns/op	  28800977 ns/NIC	  210089 B/op	    1584 allocs/op
BenchmarkDiscover-2   	    4794	    299914 ns/op	   29006 B/op	     199 allocs/op
PASS
ok  	github.com/netbridge/netbridge/netbridge	20.1s
pkg: github.com/netbridge/netbridge/test/bench
BenchmarkInProcess/setup/library-2         	     302	   3969029 ns/op	  146083 B/op	    1082 allocs/op
BenchmarkInProcess/setup/floor-2           	     621	   2185618 ns/op	   25480 B/op	     278 allocs/op
BenchmarkParallel50/library-2                       	       3	 432142711 ns/op	   8642854 ns/sandbox	10485549 B/op	   78815 allocs/op
BenchmarkParallel50/floor-2                         	       9	 136402004 ns/op	   2728040 ns/sandbox	 2227772 B/op	   20608 allocs/op
--- FAIL: BenchmarkBroken
FAIL
`

func TestParseGoBench(t *testing.T) {
	bs := parseGoBench(goTestOutput)
	if len(bs) != 6 {
		t.Fatalf("parsed %d benchmarks, want 6: %+v", len(bs), bs)
	}
	b := bs[0]
	if b.Pkg != "github.com/netbridge/netbridge/netbridge" || b.Name != "BenchmarkSetupTeardown/model=tcfilter/nics=1" || b.Procs != 2 || b.N != 52 {
		t.Errorf("first benchmark = %+v", b)
	}
	if b.Metrics["ns/NIC"] != 28800977 || b.Metrics["allocs/op"] != 1584 || strings.Join(b.Units, ",") != "ns/op,ns/NIC,B/op,allocs/op" {
		t.Errorf("metrics = %v, units %v", b.Metrics, b.Units)
	}
	if v, ok := findBench(bs, "BenchmarkParallel50/floor", "ns/sandbox"); !ok || v != 2728040 {
		t.Errorf("findBench = %v, %v", v, ok)
	}
	if bs[2].Pkg != "github.com/netbridge/netbridge/test/bench" {
		t.Errorf("package of %s = %s", bs[2].Name, bs[2].Pkg)
	}
	if got := failureLines(goTestOutput, 10); len(got) != 2 {
		t.Errorf("failureLines = %q", got)
	}
}

func TestQuantile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	for q, want := range map[float64]float64{0: 1, 0.5: 3, 1: 5, 0.25: 2, 0.1: 1.4} {
		if got := quantile(xs, q); math.Abs(got-want) > 1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", q, got, want)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing is not NaN")
	}
	if got := median([]float64{1, 2, 3, 10}); got != 2.5 {
		t.Errorf("median = %v", got)
	}
}

func series(name string, walls ...int64) Series {
	s := Series{Name: name}
	for _, w := range walls {
		s.Samples = append(s.Samples, Sample{WallNS: w, MaxRSSKiB: 9000})
	}
	return s
}

// TestTargets checks a pass, a miss and an unmeasured target, and that the
// report renders them.
func TestTargets(t *testing.T) {
	raw := &Raw{
		GoBench: parseGoBench(goTestOutput),
		NICs: map[int]map[string]*pairResult{1: {
			implNetbridge: {Setup: series("nb", 11e6, 10e6, 12e6), Teardown: series("nb", 30e6), Both: series("nb", 41e6)},
			implFloor:     {Setup: series("fl", 9e6, 9e6), Teardown: series("fl", 29e6), Both: series("fl", 38e6)},
			implShell:     {Setup: series("sh", 100e6), Teardown: series("sh", 40e6), Both: series("sh", 140e6)},
		}},
		Hook: map[string]*Series{},
		RSS:  map[string]*Series{},
	}
	rss := series("netbridge setup, 1 NIC", 1, 2)
	raw.RSS[rss.Name] = &rss
	ts := targets(raw)
	byName := map[string]Target{}
	for _, tg := range ts {
		byName[tg.Name] = tg
	}
	for name, want := range map[string]string{
		"1 NIC setup as a process vs floor":                       "miss", // 11 ms / 9 ms = 1.22x > 1.2x
		"1 NIC setup as a process vs shell":                       "pass",
		"library setup in process vs floor in process (1 NIC)":    "miss",
		"teardown of 16 NICs vs 1 (netbridge process)":            "n/a",
		"50 parallel sandboxes in one process (library) vs floor": "miss",
		"peak RSS of netbridge setup (1 NIC)":                     "pass",
	} {
		if got := byName[name].Result; got != want {
			t.Errorf("%s: %s (%s), want %s", name, got, byName[name].Measured, want)
		}
	}
	raw.Targets = ts
	var buf bytes.Buffer
	if err := render(&buf, raw); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## 1. Go benchmarks", "| netbridge | SetupTeardown/model=tcfilter/nics=1 | 52 |", "## 2. One NIC", "| netbridge / floor | 1.22x |", "## Targets", "| 1.22x (11.00 ms vs 9.00 ms) | miss |"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, buf.String())
		}
	}
}
