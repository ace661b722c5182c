package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/test/bench/floor"
	"github.com/netbridge/netbridge/test/testnet"
)

// Section "tcredirect": the chained CNI plugin netbridge-cni against
// tc-redirect-tap, the plugin Firecracker users chain after their
// interface plugin, by the method of issue 16: both chained after the
// same bridge plugin result in one pod netns, ADD then DEL with the ADD
// result as prevResult, as processes started the way a runtime starts
// them, alternating within every round; medians of the per-round ratios.
// The tc-redirect-tap binary is never fetched: the user gives it.

// Names of the two plugins in the section.
const (
	chainNetbridge = "netbridge-cni"
	chainOther     = "tc-redirect-tap"
	// chainBaseline is an earlier netbridge-cni build (-baseline-cni).
	chainBaseline = "netbridge-cni (baseline build)"
)

// chainContainerID is the CNI container id of the section's pod.
const chainContainerID = "nbbench-tcr"

// TCRedirect is the section's raw numbers: per plugin, ADD (Setup), DEL
// (Teardown) and their sum per round (Both), round i at index i of every
// series; the bridge result both were chained after; or why it was not
// measured.
type TCRedirect struct {
	NotMeasured  string                 `json:"not_measured,omitempty"`
	Conf         map[string]string      `json:"conf,omitempty"`
	BridgeResult json.RawMessage        `json:"bridge_result,omitempty"`
	Plugins      map[string]*pairResult `json:"plugins,omitempty"`
}

// chainPlugin is one plugin of the section: its binary and its
// configuration, without prevResult.
type chainPlugin struct {
	name, bin, conf string
}

// chainArgs is how the section calls the plugins: the CNI_* variables.
func chainEnv(command, netnsPath, cniPath string) []string {
	return append(os.Environ(), "CNI_COMMAND="+command, "CNI_CONTAINERID="+chainContainerID, "CNI_NETNS="+netnsPath,
		"CNI_IFNAME=eth0", "CNI_PATH="+cniPath)
}

// withPrev returns conf (a JSON object) with prevResult prev.
func withPrev(conf string, prev []byte) string {
	return strings.TrimSuffix(conf, "}") + `,"prevResult":` + string(prev) + "}"
}

// buildCNIPlugins builds the bridge and host-local plugins at the version
// go.mod pins (tool directives) into dir.
func buildCNIPlugins(ctx context.Context, goCmd, root, dir string) error {
	cmd := exec.CommandContext(ctx, goCmd, "build", "-o", dir+string(filepath.Separator),
		"github.com/containernetworking/plugins/plugins/main/bridge", "github.com/containernetworking/plugins/plugins/ipam/host-local")
	cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the bridge and host-local plugins: %w\n%s", err, out)
	}
	return nil
}

// bridgeResult runs the bridge plugin's ADD for eth0 of pod, the plugin
// process inside node (where it makes its bridge), and returns its result.
func bridgeResult(ctx context.Context, cniBin, work string, node, pod *namedNS) ([]byte, error) {
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"nbbench-tcr","type":"bridge","bridge":"nbbr0","isGateway":true,"ipMasq":false,`+
		`"ipam":{"type":"host-local","ranges":[[{"subnet":"198.51.100.0/24","gateway":"198.51.100.1"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":%q}}`,
		filepath.Join(work, "host-local"))
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(cniBin, "bridge"))
	cmd.Env = chainEnv("ADD", pod.path, cniBin)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(conf), &stdout, &stderr
	if err := testnet.RunIn(node.netns, cmd); err != nil {
		return nil, err
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("bridge plugin ADD: %w: %s %s", err, stdout.String(), stderr.String())
	}
	return stdout.Bytes(), nil
}

// measureTCRedirect measures the section: rounds rounds, each running
// ADD then DEL of each plugin, the first plugin rotating. Every ADD is
// checked (a tap, redirected both ways with eth0) and every DEL (the pod
// as the bridge plugin left it), outside the timing.
func measureTCRedirect(ctx context.Context, w *world, work, cniBin, nbCNI, other, baseline string, rounds int) (*TCRedirect, error) {
	node, err := w.newNS()
	if err != nil {
		return nil, err
	}
	podNS, err := w.newNS()
	if err != nil {
		return nil, err
	}
	pod := &sandbox{id: chainContainerID, ns: podNS, ifnames: []string{"eth0"}}
	prev, err := bridgeResult(ctx, cniBin, work, node, podNS)
	if err != nil {
		return nil, err
	}
	stateDir := filepath.Join(work, "cni-state")
	plugins := []chainPlugin{
		{chainNetbridge, nbCNI, fmt.Sprintf(`{"cniVersion":"1.0.0","name":"nbbench-tcr","type":"netbridge","vmconf":true,"stateDir":%q}`, stateDir)},
		{chainOther, other, `{"cniVersion":"1.0.0","name":"nbbench-tcr","type":"tc-redirect-tap"}`},
	}
	if baseline != "" {
		plugins = append(plugins, chainPlugin{chainBaseline, baseline,
			fmt.Sprintf(`{"cniVersion":"1.0.0","name":"nbbench-tcr","type":"netbridge","vmconf":true,"stateDir":%q}`, stateDir+"-baseline")})
	}
	res := &TCRedirect{Conf: map[string]string{}, BridgeResult: prev, Plugins: map[string]*pairResult{}}
	for _, p := range plugins {
		res.Conf[p.name] = p.conf
		res.Plugins[p.name] = &pairResult{
			Setup:    Series{Name: p.name + "/ADD"},
			Teardown: Series{Name: p.name + "/DEL"},
			Both:     Series{Name: p.name + "/ADD+DEL"},
		}
	}
	if err := pod.clean(); err != nil {
		return nil, fmt.Errorf("the pod before any ADD: %w", err)
	}
	err = rotate(ctx, rounds, len(plugins), func(i int) error {
		p := plugins[i]
		r := res.Plugins[p.name]
		var out bytes.Buffer
		add := runOut(ctx, p.cmd("ADD", podNS.path, cniBin), strings.NewReader(withPrev(p.conf, prev)), &out)
		check(&add, p.name+" ADD", func() error { return chainWired(pod, out.Bytes()) })
		del := Sample{Err: "not run: ADD failed"}
		if add.Err == "" {
			del = run(ctx, p.cmd("DEL", podNS.path, cniBin), strings.NewReader(withPrev(p.conf, out.Bytes())))
			check(&del, p.name+" DEL", pod.clean)
		}
		both := Sample{WallNS: add.WallNS + del.WallNS, UserNS: add.UserNS + del.UserNS, SysNS: add.SysNS + del.SysNS, MaxRSSKiB: max(add.MaxRSSKiB, del.MaxRSSKiB)}
		if add.Err != "" || del.Err != "" {
			both.Err = strings.TrimSpace(add.Err + " " + del.Err)
			if err := resetChain(ctx, plugins, pod, cniBin); err != nil {
				return fmt.Errorf("resetting the pod after a failed %s round: %w", p.name, err)
			}
		}
		r.Setup.Samples = append(r.Setup.Samples, add)
		r.Teardown.Samples = append(r.Teardown.Samples, del)
		r.Both.Samples = append(r.Both.Samples, both)
		return nil
	})
	return res, err
}

// cmd is the plugin's process for CNI command command.
func (p chainPlugin) cmd(command, netnsPath, cniPath string) *exec.Cmd {
	c := exec.Command(p.bin)
	c.Env = chainEnv(command, netnsPath, cniPath)
	return c
}

// resetChain puts the pod back after a failed round: the DEL of every
// netbridge-cni build without prevResult (idempotent; it forgets
// netbridge's record), then every link but lo and eth0, and eth0's
// ingress qdisc, removed.
func resetChain(ctx context.Context, plugins []chainPlugin, pod *sandbox, cniBin string) error {
	var errs []error
	for _, p := range plugins {
		if p.name == chainOther {
			continue
		}
		if s := run(ctx, p.cmd("DEL", pod.ns.path, cniBin), strings.NewReader(p.conf)); s.Err != "" {
			errs = append(errs, errors.New(s.Err))
		}
	}
	if err := pod.reset(); err != nil {
		errs = append(errs, err)
	}
	if err := pod.clean(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// chainWired checks, outside any timing, that an ADD whose result is out
// wired eth0 of pod to a tap: the result names the tap (an interface in
// the pod's netns other than eth0), the tap is up, and each of the two
// has an ingress filter redirecting to the other.
func chainWired(pod *sandbox, out []byte) error {
	var res struct {
		Interfaces []struct{ Name, Sandbox string } `json:"interfaces"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return fmt.Errorf("the ADD result does not parse: %w: %s", err, out)
	}
	tapName := ""
	for _, i := range res.Interfaces {
		if i.Sandbox == pod.ns.path && i.Name != "eth0" {
			tapName = i.Name
		}
	}
	if tapName == "" {
		return fmt.Errorf("the ADD result names no tap in %s: %s", pod.ns.path, out)
	}
	link, err := pod.ns.h.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("looking up eth0: %w", err)
	}
	tap, err := pod.ns.h.LinkByName(tapName)
	if err != nil {
		return fmt.Errorf("no tap %s: %w", tapName, err)
	}
	if _, ok := tap.(*netlink.Tuntap); !ok || tap.Attrs().Flags&unix.IFF_UP == 0 {
		return fmt.Errorf("%s is a %s link, up=%v; want a tap that is up", tapName, tap.Type(), tap.Attrs().Flags&unix.IFF_UP != 0)
	}
	for _, dir := range [][2]netlink.Link{{link, tap}, {tap, link}} {
		fs, err := pod.ns.h.FilterList(dir[0], netlink.MakeHandle(0xffff, 0))
		if err != nil {
			return fmt.Errorf("listing the ingress filters of %s: %w", dir[0].Attrs().Name, err)
		}
		found := false
		for _, f := range fs {
			found = found || floor.RedirectTarget(f) == dir[1].Attrs().Index
		}
		if !found {
			return fmt.Errorf("no redirect %s -> %s", dir[0].Attrs().Name, dir[1].Attrs().Name)
		}
	}
	return nil
}

// roundRatios returns, for every round where both a and b succeeded, the
// ratio of a's wall time to b's.
func roundRatios(a, b *Series) []float64 {
	var out []float64
	for i := range min(len(a.Samples), len(b.Samples)) {
		x, y := a.Samples[i], b.Samples[i]
		if x.Err == "" && y.Err == "" && y.WallNS > 0 {
			out = append(out, float64(x.WallNS)/float64(y.WallNS))
		}
	}
	return out
}

// tcRedirectPhases are the section's phases: the key of pairPhase, and
// the label.
var tcRedirectPhases = [][2]string{{"setup", "ADD"}, {"teardown", "DEL"}, {"both", "ADD+DEL"}}

// pairPhase returns the series of phase ("setup", "teardown", "both").
func pairPhase(p *pairResult, phase string) *Series {
	switch phase {
	case "setup":
		return &p.Setup
	case "teardown":
		return &p.Teardown
	}
	return &p.Both
}

// tcRedirectRatio is the median of the per-round ratios netbridge-cni /
// tc-redirect-tap of phase, and the number of rounds it is made of.
func tcRedirectRatio(t *TCRedirect, phase string) (float64, int) {
	nb, other := t.Plugins[chainNetbridge], t.Plugins[chainOther]
	if nb == nil || other == nil {
		return nan, 0
	}
	rs := roundRatios(pairPhase(nb, phase), pairPhase(other, phase))
	return median(rs), len(rs)
}

// tcRedirectTargets are issue 16's targets: ADD at most 0.8x and DEL at
// most 1.0x tc-redirect-tap's, as medians of per-round ratios.
func tcRedirectTargets(t *TCRedirect) []Target {
	var ts []Target
	for _, c := range []struct {
		phase, label string
		limit        float64
	}{{"setup", "ADD", 0.8}, {"teardown", "DEL", 1.0}} {
		tg := Target{Name: "netbridge-cni " + c.label + " vs tc-redirect-tap (median of per-round ratios)", Want: fmt.Sprintf("≤ %.1fx", c.limit), Result: "n/a", Measured: "not measured"}
		switch {
		case t == nil:
		case t.NotMeasured != "":
			tg.Measured = "not measured (section 6 says why)"
		default:
			r, n := tcRedirectRatio(t, c.phase)
			if n > 0 {
				tg.Measured = fmt.Sprintf("%.2fx (%s vs %s, %d rounds)", r, fmtDur(med(pairPhase(t.Plugins[chainNetbridge], c.phase))), fmtDur(med(pairPhase(t.Plugins[chainOther], c.phase))), n)
				tg.Result = pass(r <= c.limit)
			}
		}
		ts = append(ts, tg)
	}
	return ts
}

// renderTCRedirect writes section 6.
func renderTCRedirect(p func(string, ...any), raw *Raw) {
	t := raw.TCRedirect
	p("")
	p("## 6. netbridge-cni vs tc-redirect-tap")
	p("")
	if t.NotMeasured != "" {
		p("Not measured: %s.", t.NotMeasured)
		return
	}
	p("Both chained after the same bridge plugin result (IPv4, host-local) for eth0 of one pod netns, as processes started as a runtime starts them (CNI_* variables, configuration with prevResult on stdin): ADD, then DEL with the ADD's result as prevResult; the two alternate within every round, the first rotating; %d rounds. Every ADD is checked (its result names a tap that is up and redirected both ways with eth0) and every DEL (the pod as the bridge plugin left it: lo and eth0, no ingress qdisc), outside the timing. netbridge-cni runs with `\"vmconf\": true`, the drop-in configuration; neither gets CNI_ARGS (taps nb-eth0 and tap0).", raw.Rounds["one_and_four_nics"])
	p("")
	p("| phase | netbridge-cni | tc-redirect-tap | ratio: median of per-round ratios | ratio of medians | CPU netbridge-cni | CPU tc-redirect-tap |")
	p("|---|--:|--:|--:|--:|--:|--:|")
	nb, other := t.Plugins[chainNetbridge], t.Plugins[chainOther]
	for _, ph := range tcRedirectPhases {
		r, _ := tcRedirectRatio(t, ph[0])
		a, b := pairPhase(nb, ph[0]), pairPhase(other, ph[0])
		ratio := "n/a"
		if !math.IsNaN(r) {
			ratio = fmt.Sprintf("%.2fx", r)
		}
		p("| %s | %s | %s | %s | %s | %s | %s |", ph[1], spread(a), spread(b), ratio, fmtRatio(med(a), med(b)), cpu(a), cpu(b))
	}
	if base := t.Plugins[chainBaseline]; base != nil {
		p("")
		p("The netbridge-cni build against the baseline build (-baseline-cni), in the same rounds:")
		p("")
		p("| phase | netbridge-cni | baseline build | ratio: median of per-round ratios | CPU netbridge-cni | CPU baseline build |")
		p("|---|--:|--:|--:|--:|--:|")
		for _, ph := range tcRedirectPhases {
			a, b := pairPhase(nb, ph[0]), pairPhase(base, ph[0])
			p("| %s | %s | %s | %s | %s | %s |", ph[1], spread(a), spread(b), fmtRatio(median(roundRatios(a, b)), 1), cpu(a), cpu(b))
		}
	}
	for _, name := range []string{chainNetbridge, chainOther, chainBaseline} {
		if t.Plugins[name] == nil {
			continue
		}
		for _, s := range []*Series{&t.Plugins[name].Setup, &t.Plugins[name].Teardown} {
			if e := s.firstErr(); e != "" {
				p("")
				p("First error (%s, %d failed): `%s`", s.Name, s.errors(), oneLine(e))
			}
		}
	}
}
