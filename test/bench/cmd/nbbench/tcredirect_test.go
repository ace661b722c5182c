package main

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
)

// msSeries makes a series of wall times in ms; a negative one is a failure.
func msSeries(ms ...float64) Series {
	var s Series
	for _, m := range ms {
		x := Sample{WallNS: int64(math.Abs(m) * 1e6)}
		if m < 0 {
			x.Err = "failed"
		}
		s.Samples = append(s.Samples, x)
	}
	return s
}

// TestTCRedirectRatios: the ratio is the median of per-round ratios,
// rounds where either plugin failed left out; the targets are ADD ≤ 0.8x
// and DEL ≤ 1.0x; the section says when it was not measured.
func TestTCRedirectRatios(t *testing.T) {
	a, b := msSeries(10, 20, -5, 40), msSeries(5, 40, 5, 10)
	if got := roundRatios(&a, &b); len(got) != 3 || got[0] != 2 || got[1] != 0.5 || got[2] != 4 {
		t.Errorf("roundRatios = %v, want [2 0.5 4]", got)
	}
	tr := &TCRedirect{Plugins: map[string]*pairResult{
		chainNetbridge: {Setup: msSeries(7, 7, 7), Teardown: msSeries(20, 30, 20), Both: msSeries(27, 37, 27)},
		chainOther:     {Setup: msSeries(10, 10, 10), Teardown: msSeries(20, 20, 20), Both: msSeries(30, 30, 30)},
	}}
	ts := tcRedirectTargets(tr)
	if len(ts) != 2 || ts[0].Result != "pass" || !strings.HasPrefix(ts[0].Measured, "0.70x") || ts[1].Result != "pass" || !strings.HasPrefix(ts[1].Measured, "1.00x") {
		t.Errorf("targets %+v: want ADD 0.70x pass, DEL 1.00x pass", ts)
	}
	raw := &Raw{Rounds: map[string]int{"one_and_four_nics": 3}, TCRedirect: tr}
	var out bytes.Buffer
	p := func(format string, args ...any) {
		out.WriteString(strings.TrimSpace(fmt.Sprintf(format, args...)) + "\n")
	}
	renderTCRedirect(p, raw)
	if !strings.Contains(out.String(), "| ADD | 7.00 ms") || !strings.Contains(out.String(), "| 0.70x |") {
		t.Errorf("section:\n%s", out.String())
	}

	none := &TCRedirect{NotMeasured: "no tc-redirect-tap binary given"}
	out.Reset()
	renderTCRedirect(p, &Raw{TCRedirect: none})
	if !strings.Contains(out.String(), "Not measured: no tc-redirect-tap binary given") {
		t.Errorf("section without the binary:\n%s", out.String())
	}
	for _, tg := range tcRedirectTargets(none) {
		if tg.Result != "n/a" || !strings.Contains(tg.Measured, "not measured") {
			t.Errorf("target without the binary: %+v", tg)
		}
	}
}
