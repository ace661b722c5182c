package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netbridge/netbridge/test/testnet"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &env{stdout: &out, stderr: &errb})
	return code, out.String(), errb.String()
}

func TestUsageErrorsExit2WithOneLine(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"setup"},
		{"setup", "--id", "x"},
		{"setup", "--netns", "/run/netns/nope-nb", "--id", "x", "--state-dir", dir},
		{"setup", "--netns", "/etc/hostname", "--id", "x", "--state-dir", dir},
		{"setup", "--netns", "/proc/self/ns/net", "--id", "x", "--state-dir", dir},
		{"setup", "--netns", "/proc/self/ns/net", "--id", "../x", "--state-dir", dir},
		{"setup", "--netns", "/proc/self/ns/net", "--id", "x", "--output", "yaml"},
		{"setup", "--netns", "/proc/self/ns/net", "--id", "x", "--queues", "many"},
		{"teardown"},
		{"teardown", "--id", "a/b", "--state-dir", dir},
		{"render", "--id", "x", "--for", "vmware", "--state-dir", dir},
		{"render", "--id", "x"},
		{"status", "--output", "xml", "--state-dir", dir},
		{"check", "--id", "x", "extra"},
	} {
		code, out, errs := runCLI(t, args...)
		if code != exitUsage {
			t.Errorf("netbridge %q exited %d, want 2 (stdout %q, stderr %q)", args, code, out, errs)
		}
		if len(args) > 0 && strings.Count(strings.TrimSpace(errs), "\n") > 0 && !strings.Contains(errs, "Usage") && !strings.Contains(errs, "flag provided") {
			t.Errorf("netbridge %q: error is not one line: %q", args, errs)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"help", "setup"}, {"setup", "--help"}} {
		code, out, _ := runCLI(t, args...)
		if code != exitOK || !strings.Contains(out, "Usage") {
			t.Errorf("netbridge %q = %d, %q; want 0 and usage", args, code, out)
		}
	}
	_, out, _ := runCLI(t, "help", "setup")
	for _, f := range []string{"-netns", "-id", "-model", "-queues", "-vhost", "-interfaces", "-output", "-state-dir"} {
		if !strings.Contains(out, f) {
			t.Errorf("setup help lacks %s", f)
		}
	}
	if code, out, _ := runCLI(t, "version"); code != 0 || !strings.HasPrefix(out, "netbridge ") {
		t.Errorf("version = %d %q", code, out)
	}
}

func TestOperationalErrorsExit1(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := runCLI(t, "check", "--id", "unknown", "--state-dir", dir); code != exitFail || !strings.Contains(errs, "no such sandbox") {
		t.Errorf("check of an unknown id = %d %q, want 1 and 'no such sandbox'", code, errs)
	}
	if code, _, errs := runCLI(t, "render", "--id", "unknown", "--for", "qemu", "--state-dir", dir); code != exitFail {
		t.Errorf("render of an unknown id = %d %q, want 1", code, errs)
	}
	if code, _, _ := runCLI(t, "teardown", "--id", "unknown", "--state-dir", dir); code != exitOK {
		t.Errorf("teardown of an unknown id = %d, want 0", code)
	}
}

func TestSetupJSONContract(t *testing.T) {
	node, pod := testnet.NewNS(t), testnet.NewNS(t)
	testnet.VethPair(t, node, pod, "veth0", "eth0", 0)
	testnet.AddAddr(t, node, "veth0", "198.51.100.1/24")
	testnet.AddAddr(t, pod, "eth0", "198.51.100.2/24")
	testnet.AddRoute(t, pod, "eth0", "0.0.0.0/0", "198.51.100.1")
	dir := t.TempDir()
	before := testnet.Snapshot(t, pod)

	code, out, errs := runCLI(t, "setup", "--netns", pod.Path(), "--id", "cli-1", "--state-dir", dir, "--output", "json")
	if code != 0 {
		t.Fatalf("setup = %d: %s", code, errs)
	}
	t.Cleanup(func() { runCLI(t, "teardown", "--id", "cli-1", "--state-dir", dir) })
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("setup --output json is not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"id", "netns", "model", "nics", "qemu", "kernel_cmdline"} {
		if _, ok := got[k]; !ok {
			t.Errorf("setup JSON lacks %q", k)
		}
	}
	nic := got["nics"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "kind", "tap", "guest_mac", "mtu", "queues", "addresses", "routes", "neighbors"} {
		if _, ok := nic[k]; !ok {
			t.Errorf("NIC JSON lacks %q", k)
		}
	}
	if got["kernel_cmdline"] != "ip=198.51.100.2::198.51.100.1:255.255.255.0::eth0:off" {
		t.Errorf("kernel_cmdline = %q", got["kernel_cmdline"])
	}
	qemu := got["qemu"].([]any)
	if len(qemu) != 4 || qemu[0] != "-netdev" || qemu[2] != "-device" {
		t.Errorf("qemu = %q", qemu)
	}

	for _, c := range []struct{ target, want string }{
		{"qemu", "-netdev tap,id=net-eth0,ifname=nb-eth0,script=no,downscript=no -device virtio-net-pci,id=nic-eth0"},
		{"kernel-cmdline", "ip=198.51.100.2::198.51.100.1:255.255.255.0::eth0:off"},
		{"guest-json", `"addresses": [`},
		{"guest-cmdline", "netbridge.nic="},
		{"qmp", `{"execute":"netdev_add","arguments":{"fds":"fd-eth0-0","id":"net-eth0","type":"tap"}}`},
		{"cloud-hypervisor", "--net tap=nb-eth0,mac="},
		{"firecracker", `"host_dev_name": "nb-eth0"`},
		{"cloud-init", "version: 2"},
	} {
		code, out, errs := runCLI(t, "render", "--id", "cli-1", "--for", c.target, "--state-dir", dir)
		if code != 0 || !strings.Contains(out, c.want) {
			t.Errorf("render --for %s = %d %q %q; want it to contain %q", c.target, code, out, errs, c.want)
		}
	}
	if code, out, _ := runCLI(t, "check", "--id", "cli-1", "--state-dir", dir); code != 0 || !strings.Contains(out, "intact") {
		t.Errorf("check = %d %q", code, out)
	}
	if code, out, _ := runCLI(t, "status", "--state-dir", dir); code != 0 || !strings.Contains(out, "cli-1: ready") {
		t.Errorf("status = %d %q", code, out)
	}
	if code, out, _ := runCLI(t, "status", "--id", "cli-1", "--output", "json", "--state-dir", dir); code != 0 || !strings.Contains(out, `"phase": "ready"`) {
		t.Errorf("status --output json = %d %q", code, out)
	}
	if code, out, _ := runCLI(t, "discover", "--netns", pod.Path(), "--output", "json"); code != 0 || !strings.Contains(out, `"nb-eth0"`) {
		t.Errorf("discover = %d %q", code, out)
	}
	testnet.Exec(t, pod, "ip", "link", "del", "nb-eth0")
	if code, out, _ := runCLI(t, "check", "--id", "cli-1", "--state-dir", dir); code != exitFail || !strings.Contains(out, "problem: nb-eth0") {
		t.Errorf("check of broken wiring = %d %q, want 1 and a problem line", code, out)
	}
	for range 2 {
		if code, _, errs := runCLI(t, "teardown", "--id", "cli-1", "--state-dir", dir); code != 0 {
			t.Fatalf("teardown = %d %s", code, errs)
		}
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("after teardown:\n%s", d)
	}
}

func TestProbe(t *testing.T) {
	testnet.RequireRoot(t)
	code, out, errs := runCLI(t, "probe", "--output", "json")
	if code != 0 {
		t.Fatalf("probe = %d %s", code, errs)
	}
	var got struct {
		Features []struct {
			Name      string `json:"name"`
			Available bool   `json:"available"`
		} `json:"features"`
		Models []struct {
			Model string `json:"model"`
			Works bool   `json:"works"`
		} `json:"models"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Features) != 9 || len(got.Models) == 0 || got.Models[0].Model != "tcfilter" || !got.Models[0].Works {
		t.Errorf("probe = %+v", got)
	}
}

func runCLIStdin(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb})
	return code, out.String(), errb.String()
}

func TestHookSetupAndPoststop(t *testing.T) {
	node, pod := testnet.NewNS(t), testnet.NewNS(t)
	testnet.VethPair(t, node, pod, "veth0", "eth0", 0)
	testnet.AddAddr(t, pod, "eth0", "198.51.100.2/24")
	before := testnet.Snapshot(t, pod)
	dir, bundle := t.TempDir(), t.TempDir()
	config := `{"annotations":{"io.kubernetes.cri.container-type":"sandbox","io.kubernetes.cri.sandbox-id":"hooksb"},
		"linux":{"namespaces":[{"type":"network","path":"` + pod.Path() + `"}]}}`
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(t.TempDir(), "hook.log")
	state := `{"ociVersion":"1.0.2-dev","id":"ctr1","status":"creating","pid":1,"bundle":"` + bundle + `"}`
	t.Cleanup(func() { runCLI(t, "teardown", "--id", "hooksb", "--state-dir", dir) })

	// A deadline that has passed: nothing is done, exit 1, one error line.
	code, _, errs := runCLIStdin(t, state, "hook", "prestart", "--state-dir", dir, "--timeout", "1ns")
	if code != exitFail || strings.Count(errs, "level=ERROR") != 1 || !strings.Contains(errs, "deadline") {
		t.Errorf("hook with an expired deadline = %d %q, want 1 and one ERROR line about the deadline", code, errs)
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("an expired hook changed the netns:\n%s", d)
	}

	for range 2 { // a hook called twice
		code, _, errs = runCLIStdin(t, state, "hook", "prestart", "--state-dir", dir, "--log-file", logFile)
		if code != 0 {
			t.Fatalf("hook prestart = %d: %s", code, errs)
		}
	}
	if !strings.Contains(errs, "already set up") {
		t.Errorf("second hook call did not say it had nothing to do: %q", errs)
	}
	if code, _, _ := runCLI(t, "check", "--id", "hooksb", "--state-dir", dir); code != 0 {
		t.Errorf("check after the hook = %d", code)
	}
	// poststop: no pid, status stopped.
	code, _, errs = runCLIStdin(t, `{"ociVersion":"1.0.2-dev","id":"ctr1","status":"stopped","bundle":"`+bundle+`"}`, "hook", "poststop", "--state-dir", dir, "--log-file", logFile)
	if code != 0 || !strings.Contains(errs, "torn down") {
		t.Fatalf("hook poststop = %d %q", code, errs)
	}
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("after poststop:\n%s", d)
	}
	log, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"stage=prestart", "msg=wired", "interface=eth0", "id=hooksb", "elapsed=", "stage=poststop", `msg="torn down"`} {
		if !strings.Contains(string(log), want) {
			t.Errorf("hook log lacks %q:\n%s", want, log)
		}
	}
	if code, _, errs := runCLIStdin(t, "{", "hook", "prestart", "--state-dir", dir); code != exitUsage || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
		t.Errorf("hook with malformed state = %d %q, want 2 and one line", code, errs)
	}
}

func TestModelsInTheCLI(t *testing.T) {
	node, pod := testnet.NewNS(t), testnet.NewNS(t)
	testnet.VethPair(t, node, pod, "veth0", "eth0", 0)
	testnet.AddAddr(t, pod, "eth0", "198.51.100.2/24")
	testnet.AddRoute(t, pod, "eth0", "0.0.0.0/0", "198.51.100.1")
	dir := t.TempDir()
	before := testnet.Snapshot(t, pod)

	code, out, errs := runCLI(t, "setup", "--netns", pod.Path(), "--id", "m-br", "--model", "bridge", "--state-dir", dir)
	if code != 0 {
		t.Fatalf("setup --model bridge = %d: %s", code, errs)
	}
	t.Cleanup(func() { runCLI(t, "teardown", "--id", "m-br", "--state-dir", dir) })
	if !strings.Contains(out, "ifname=nb-eth0") {
		t.Errorf("bridge setup output lacks the by-name QEMU arguments:\n%s", out)
	}
	_, pic, _ := runCLI(t, "status", "--id", "m-br", "--state-dir", dir)
	for _, want := range []string{"eth0 (veth", "└─ port of bridge nbr-eth0", "└─ nb-eth0 (tap", "└─ guest NIC 0 (virtio-net", "addresses moved to the guest", "via 198.51.100.1"} {
		if !strings.Contains(pic, want) {
			t.Errorf("status picture lacks %q:\n%s", want, pic)
		}
	}
	_, dot, _ := runCLI(t, "status", "--output", "dot", "--state-dir", dir)
	if !strings.HasPrefix(dot, "digraph netbridge {") || !strings.Contains(dot, `"m-br/eth0/br" [label="bridge nbr-eth0"`) || !strings.HasSuffix(dot, "}\n") || strings.Contains(dot, `\\n`) {
		t.Errorf("dot output:\n%s", dot)
	}
	runCLI(t, "teardown", "--id", "m-br", "--state-dir", dir)

	code, out, errs = runCLI(t, "setup", "--netns", pod.Path(), "--id", "m-mvt", "--model", "macvtap", "--output", "json", "--state-dir", dir)
	if code != 0 {
		t.Fatalf("setup --model macvtap = %d: %s", code, errs)
	}
	t.Cleanup(func() { runCLI(t, "teardown", "--id", "m-mvt", "--state-dir", dir) })
	var got struct {
		QEMU     []string `json:"qemu"`
		QEMUForm string   `json:"qemu_form"`
		NICs     []struct {
			Model, Tap, Device, HostMAC string
		} `json:"nics"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.QEMUForm != "fd" || len(got.QEMU) != 4 || got.QEMU[1] != "tap,id=net-eth0,fds=3" || got.NICs[0].Model != "macvtap" || !strings.HasPrefix(got.NICs[0].Device, dir) {
		t.Errorf("macvtap setup JSON = %+v", got)
	}
	code, out, errs = runCLI(t, "render", "--id", "m-mvt", "--for", "qemu", "--state-dir", dir)
	if code != 0 || !strings.Contains(out, "fds=3") || !strings.Contains(errs, "only be handed to QEMU as open file descriptors") {
		t.Errorf("render --for qemu of a macvtap = %d %q %q", code, out, errs)
	}
	runCLI(t, "teardown", "--id", "m-mvt", "--state-dir", dir)
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("after the bridge and macvtap teardowns:\n%s", d)
	}
	if code, _, errs := runCLI(t, "setup", "--netns", pod.Path(), "--id", "m-x", "--macvtap-mode", "vepa", "--state-dir", dir); code != exitUsage {
		t.Errorf("--macvtap-mode vepa = %d %q, want 2", code, errs)
	}
}
