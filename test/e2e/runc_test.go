package e2e

// End-to-end tests of `netbridge hook` as runc runs it: a real container
// (busybox sleeping) whose config.json carries netbridge as its prestart (or
// createRuntime) and poststop hook.

import (
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/test/fakeguest"
	"github.com/netbridge/netbridge/test/testnet"
)

const (
	// busyboxPath is where Debian's busybox-static installs the binary.
	busyboxPath = "/bin/busybox"
	// redirectPriority is the tc priority netbridge reserves for its
	// redirect filters (README, "tcfilter").
	redirectPriority = 20034
	// hookTimeout is the timeout (seconds) of every hook in config.json;
	// runc has no default and would wait forever for a stuck hook.
	hookTimeout = 30
	// runcTimeout bounds every runc command the tests run.
	runcTimeout = 90 * time.Second
)

// Environment of the test binary when runc runs it as the CNI stand-in
// hook (see TestMain and cniHookMain).
const (
	envHookRole = "NBTEST_HOOK"     // "cni": play the CNI plugin
	envNodeNS   = "NBTEST_NODE_NS"  // path of the node netns holding the veth end
	envLink     = "NBTEST_LINK"     // name of that veth end in the node netns
	envIfname   = "NBTEST_IFNAME"   // its name inside the container netns
	envAddrs    = "NBTEST_ADDRS"    // comma-separated CIDRs for it
	envGateways = "NBTEST_GATEWAYS" // comma-separated default gateways
	hookRoleCNI = "cni"
)

// requireTool skips the test when a host tool the runc tests need is
// missing, except under CI (CI set), where a skip would hide the whole
// suite: there it fails.
func requireTool(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...) + " (Debian: apt-get install -y runc busybox-static)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + "; CI is set, so this is a failure, not a skip")
	}
	t.Skip("skipping: " + msg)
}

// requireRuncTools returns the path of runc, after checking that runc and a
// static /bin/busybox are installed.
func requireRuncTools(t *testing.T) string {
	t.Helper()
	testnet.RequireRoot(t)
	runc, err := exec.LookPath("runc")
	if err != nil {
		requireTool(t, "runc is not installed: %v", err)
	}
	f, err := elf.Open(busyboxPath)
	if err != nil {
		requireTool(t, "%s is missing or not an ELF binary: %v", busyboxPath, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			requireTool(t, "%s is dynamically linked; the container rootfs needs the static busybox", busyboxPath)
		}
	}
	return runc
}

// runcCLI runs runc with a private state root, so the tests never see or
// touch the containers of the system's default root.
type runcCLI struct {
	bin, root string
}

func newRunc(t *testing.T, bin string) *runcCLI {
	return &runcCLI{bin: bin, root: t.TempDir()}
}

func (r *runcCLI) command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, r.bin, append([]string{"--root", r.root}, args...)...)
}

// output runs a runc command that hands no file to a container (anything
// but run/create) and returns its combined output.
func (r *runcCLI) output(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), runcTimeout)
	defer cancel()
	out, err := r.command(ctx, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("runc %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// runDetached runs `runc run -d` and registers the cleanup that kills and
// deletes the container whatever happened. The container inherits runc's
// stdio, so its output goes to files: a pipe would keep Wait blocked until
// the container exits.
func (r *runcCLI) runDetached(t *testing.T, bundle, id string) error {
	t.Helper()
	t.Cleanup(func() { r.destroy(t, id) })
	dir := t.TempDir()
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		return err
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		return err
	}
	defer stderr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), runcTimeout)
	defer cancel()
	cmd := r.command(ctx, "run", "-d", "--bundle", bundle, id)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(stderr.Name())
		return fmt.Errorf("runc run -d %s: %w\n%s", id, err, out)
	}
	return nil
}

// destroy kills and force-deletes the container; "already gone" is fine.
func (r *runcCLI) destroy(t *testing.T, id string) {
	_, _ = r.output("kill", id, "KILL")
	out, err := r.output("delete", "--force", id)
	if err != nil && !strings.Contains(out, "does not exist") {
		t.Errorf("cleaning up container %s: %v", id, err)
	}
}

// runcState is the part of `runc state` the tests read.
type runcState struct {
	Pid    int    `json:"pid"`
	Status string `json:"status"`
}

func (r *runcCLI) state(id string) (runcState, error) {
	var st runcState
	out, err := r.output("state", id)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("runc state %s: %w\n%s", id, err, out)
	}
	return st, nil
}

// stop kills the container, waits until runc reports it stopped and deletes
// it, which runs the poststop hooks. It returns delete's output.
func (r *runcCLI) stop(t *testing.T, id string) string {
	t.Helper()
	if _, err := r.output("kill", id, "KILL"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := r.state(id)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status == "stopped" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s still %q 10s after SIGKILL", id, st.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, err := r.output("delete", id)
	if err != nil {
		t.Fatalf("deleting container %s (runs the poststop hook): %v", id, err)
	}
	return out
}

// containerID returns a runc container id (also the netbridge sandbox id)
// unique to this run, so that concurrent runs never share a cgroup name.
func containerID(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + "-" + hex.EncodeToString(b)
}

// hookFiles are where netbridge's hook keeps its records and log.
type hookFiles struct {
	stateDir, log string
	logShown      bool
}

// newHookFiles makes the hook's state dir and log, and shows the log at
// cleanup when the test failed before checkHookLog showed it.
func newHookFiles(t *testing.T) *hookFiles {
	f := &hookFiles{stateDir: t.TempDir(), log: filepath.Join(t.TempDir(), "hook.log")}
	t.Cleanup(func() {
		if t.Failed() && !f.logShown {
			data, err := os.ReadFile(f.log)
			t.Logf("hook log (%v):\n%s", err, data)
		}
	})
	return f
}

// netbridgeHook is the config.json entry running `netbridge hook STAGE`.
//
// Its env is set, and without PATH: runc gives a hook exactly its env list,
// but a hook without one (nil, and an empty list is dropped by omitempty)
// inherits runc's whole environment, which is not what a CRI runtime's
// hook sees. Every path is absolute.
func netbridgeHook(t *testing.T, stage string, f *hookFiles, extra ...string) specs.Hook {
	bin := netbridgeBinary(t)
	timeout := hookTimeout
	args := append([]string{"netbridge", "hook", stage, "--state-dir", f.stateDir, "--log-file", f.log, "--timeout", "20s"}, extra...)
	return specs.Hook{Path: bin, Args: args, Env: []string{"LC_ALL=C"}, Timeout: &timeout}
}

// newBundle assembles an OCI bundle in a temporary directory: a rootfs with
// the static busybox (and sh and sleep linked to it) and runc's default
// config.json, changed to run `busybox sleep 300` without a terminal and
// then edited by edit.
func newBundle(t *testing.T, runc string, edit func(*specs.Spec)) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "rootfs", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(busyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "busybox"), src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "sleep"} {
		if err := os.Symlink("busybox", filepath.Join(bin, applet)); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(runc, "spec", "--bundle", dir).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v\n%s", err, out)
	}
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatalf("parsing runc's config.json: %v", err)
	}
	if spec.Process == nil || spec.Linux == nil {
		t.Fatalf("runc spec gave no process or linux section:\n%s", data)
	}
	spec.Process.Args = []string{"/bin/busybox", "sleep", "300"}
	spec.Process.Terminal = false
	spec.Hooks = &specs.Hooks{}
	edit(&spec)
	if data, err = json.MarshalIndent(&spec, "", "\t"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// setNetworkNamespace makes the container join path, or have runc create a
// new network namespace when path is "".
func setNetworkNamespace(spec *specs.Spec, path string) {
	for i, n := range spec.Linux.Namespaces {
		if n.Type == specs.NetworkNamespace {
			spec.Linux.Namespaces[i].Path = path
			return
		}
	}
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: path})
}

// addPrestart appends hooks to the deprecated prestart stage, which is the
// one CRI runtimes and the netbridge contract use first.
func addPrestart(spec *specs.Spec, hooks ...specs.Hook) {
	//lint:ignore SA1019 prestart is deprecated but still what runtimes run and what netbridge supports
	spec.Hooks.Prestart = append(spec.Hooks.Prestart, hooks...)
}

// checkWired asserts what netbridge's setup leaves for ifname in n: a tap
// nb-<ifname> tagged netbridge:<id>, and on the ingress of interface and
// tap a filter at the reserved priority redirecting to the other's egress.
func checkWired(t *testing.T, n ns.NetNS, id, ifname string) {
	t.Helper()
	h, err := testnet.NewHandle(n)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ifc, err := h.LinkByName(ifname)
	if err != nil {
		t.Fatalf("%s in %s: %v", ifname, n.Path(), err)
	}
	tapName := "nb-" + ifname
	tap, err := h.LinkByName(tapName)
	if err != nil {
		t.Fatalf("tap %s in %s: %v", tapName, n.Path(), err)
	}
	if _, ok := tap.(*netlink.Tuntap); !ok {
		t.Errorf("%s is a %s link, want a tap", tapName, tap.Type())
	}
	if got, want := tap.Attrs().Alias, "netbridge:"+id; got != want {
		t.Errorf("%s alias %q, want %q", tapName, got, want)
	}
	if tap.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("%s is down", tapName)
	}
	for _, p := range [][2]netlink.Link{{ifc, tap}, {tap, ifc}} {
		if err := findRedirect(h, p[0], p[1]); err != nil {
			t.Error(err)
		}
	}
}

// findRedirect looks on from's ingress qdisc for a filter at the reserved
// priority whose mirred action redirects to the egress of to.
func findRedirect(h *netlink.Handle, from, to netlink.Link) error {
	qdiscs, err := h.QdiscList(from)
	if err != nil {
		return fmt.Errorf("listing qdiscs of %s: %w", from.Attrs().Name, err)
	}
	for _, q := range qdiscs {
		if q.Type() != "ingress" || q.Attrs().LinkIndex != from.Attrs().Index {
			continue
		}
		filters, err := h.FilterList(from, q.Attrs().Handle)
		if err != nil {
			return fmt.Errorf("listing ingress filters of %s: %w", from.Attrs().Name, err)
		}
		for _, f := range filters {
			if f.Attrs().Priority != redirectPriority {
				continue
			}
			var actions []netlink.Action
			switch v := f.(type) {
			case *netlink.U32:
				actions = v.Actions
			case *netlink.MatchAll:
				actions = v.Actions
			}
			for _, a := range actions {
				if m, ok := a.(*netlink.MirredAction); ok && m.MirredAction == netlink.TCA_EGRESS_REDIR && m.Ifindex == to.Attrs().Index {
					return nil
				}
			}
		}
		return fmt.Errorf("no filter at priority %d on the ingress of %s redirects to %s", redirectPriority, from.Attrs().Name, to.Attrs().Name)
	}
	return fmt.Errorf("%s has no ingress qdisc", from.Attrs().Name)
}

// guestThroughTap loads the hook's record, attaches a fake guest to the tap
// the way a VMM opens it by name, and pings through it both ways. The guest
// is closed before returning, so nothing of the test holds the tap.
func guestThroughTap(t *testing.T, node, pod ns.NetNS, f *hookFiles, id string, pairs ...[2]netip.Addr) {
	t.Helper()
	sb, err := netbridge.New(f.stateDir, nil).Load(context.Background(), id)
	if err != nil {
		t.Fatalf("the hook left no usable record: %v", err)
	}
	if len(sb.NICs) != 1 || sb.NICs[0].Name != "eth0" || sb.NICs[0].Tap != "nb-eth0" {
		t.Fatalf("recorded NICs %+v, want eth0 on nb-eth0", sb.NICs)
	}
	tap, err := fakeguest.OpenTap(pod, sb.NICs[0].Tap, true)
	if err != nil {
		t.Fatal(err)
	}
	g := startGuest(t, tap, sb.NICs[0])
	defer g.Close()
	pingBothWays(t, node, g, 0, pairs...)
}

// checkTornDown asserts that the state dir holds no record any more.
func checkTornDown(t *testing.T, f *hookFiles, id string) {
	t.Helper()
	if _, err := netbridge.New(f.stateDir, nil).Load(context.Background(), id); !errors.Is(err, netbridge.ErrNotFound) {
		t.Errorf("after poststop, loading %s gives %v, want ErrNotFound", id, err)
	}
	if l, err := netbridge.New(f.stateDir, nil).List(context.Background()); err != nil || len(l) != 0 {
		t.Errorf("after poststop, the state dir lists %+v (err %v), want nothing", l, err)
	}
	records, _ := filepath.Glob(filepath.Join(f.stateDir, "*.json"))
	if len(records) != 0 {
		t.Errorf("after poststop, the state dir holds %v", records)
	}
}

// checkHookLog asserts that the hook logged each stage, and shows the log.
func checkHookLog(t *testing.T, f *hookFiles, stages ...string) {
	t.Helper()
	data, err := os.ReadFile(f.log)
	if err != nil {
		t.Errorf("hook log: %v", err)
		return
	}
	f.logShown = true
	t.Logf("hook log:\n%s", data)
	for _, s := range stages {
		// slog's text or JSON handler.
		if !strings.Contains(string(data), "stage="+s) && !strings.Contains(string(data), `"stage":"`+s+`"`) {
			t.Errorf("the hook log has no line for stage %s", s)
		}
	}
}

// teardownOnCleanup runs `netbridge teardown` at cleanup, after the
// container is gone, in case the test stopped before the poststop hook ran.
// Teardown is idempotent.
func teardownOnCleanup(t *testing.T, f *hookFiles, id string) {
	bin := netbridgeBinary(t)
	t.Cleanup(func() {
		if out, err := exec.Command(bin, "teardown", "--id", id, "--state-dir", f.stateDir).CombinedOutput(); err != nil {
			t.Errorf("netbridge teardown at cleanup: %v\n%s", err, out)
		}
	})
}

func sameFile(a, b string) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Stat(a, &sa); err != nil {
		return false, err
	}
	if err := unix.Stat(b, &sb); err != nil {
		return false, err
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}

// TestRuncHookNamedNetns is the CRI runtime case: the pod netns exists
// (bind-mounted, configured by CNI) before the container, config.json names
// it, and netbridge's prestart hook wires it; poststop undoes it exactly.
func TestRuncHookNamedNetns(t *testing.T) {
	runc := requireRuncTools(t)
	node, pod := topology(t, 0)
	before := testnet.Snapshot(t, pod)
	files := newHookFiles(t)
	id := containerID(t, "nbtest-named")
	bundle := newBundle(t, runc, func(s *specs.Spec) {
		setNetworkNamespace(s, pod.Path())
		addPrestart(s, netbridgeHook(t, "prestart", files, "--model", "tcfilter"))
		s.Hooks.Poststop = append(s.Hooks.Poststop, netbridgeHook(t, "poststop", files))
	})
	teardownOnCleanup(t, files, id)
	r := newRunc(t, runc)
	start := time.Now()
	if err := r.runDetached(t, bundle, id); err != nil {
		t.Fatal(err)
	}
	t.Logf("runc run -d with the prestart hook took %v", time.Since(start))

	st, err := r.state(id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != "running" {
		t.Fatalf("container status %q, want running", st.Status)
	}
	if same, err := sameFile(fmt.Sprintf("/proc/%d/ns/net", st.Pid), pod.Path()); err != nil || !same {
		t.Fatalf("the container does not run in the pod netns (same=%v, err=%v)", same, err)
	}
	checkWired(t, pod, id, "eth0")
	if sb, err := netbridge.New(files.stateDir, nil).Load(context.Background(), id); err == nil && sb.Netns != pod.Path() {
		t.Errorf("recorded netns %q, want the path config.json names, %q", sb.Netns, pod.Path())
	}
	guestThroughTap(t, node, pod, files, id, [2]netip.Addr{nodeV4, podV4}, [2]netip.Addr{nodeV6, podV6})

	r.stop(t, id)
	if d := testnet.Diff(before, testnet.Snapshot(t, pod)); d != "" {
		t.Errorf("pod netns after poststop:\n%s", d)
	}
	checkTornDown(t, files, id)
	checkHookLog(t, files, "prestart", "poststop")
}

// TestRuncHookNewNetns is the case where runc creates the container's
// network namespace itself (a network entry without a path): the hook must
// find it as /proc/<pid>/ns/net. A first prestart hook, this test binary,
// plays CNI and moves a veth end from the node netns into it; netbridge's
// hook runs after it, as a second prestart hook or as createRuntime.
func TestRuncHookNewNetns(t *testing.T) {
	runc := requireRuncTools(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, stage := range []string{"prestart", "createRuntime"} {
		t.Run(stage, func(t *testing.T) {
			node := testnet.NewNS(t)
			// Both ends start in the node netns; the CNI stand-in moves ceth0.
			testnet.VethPair(t, node, node, "veth0", "ceth0", 0)
			testnet.AddAddr(t, node, "veth0", "198.51.100.1/24")
			testnet.AddAddr(t, node, "veth0", "2001:db8:1::1/64")
			files := newHookFiles(t)
			id := containerID(t, "nbtest-new")
			timeout := hookTimeout
			cniHook := specs.Hook{
				Path: self,
				Args: []string{filepath.Base(self)},
				Env: []string{
					envHookRole + "=" + hookRoleCNI,
					envNodeNS + "=" + node.Path(),
					envLink + "=ceth0",
					envIfname + "=eth0",
					envAddrs + "=198.51.100.2/24,2001:db8:1::2/64",
					envGateways + "=198.51.100.1,2001:db8:1::1",
				},
				Timeout: &timeout,
			}
			bundle := newBundle(t, runc, func(s *specs.Spec) {
				setNetworkNamespace(s, "")
				addPrestart(s, cniHook)
				if stage == "prestart" {
					addPrestart(s, netbridgeHook(t, stage, files))
				} else {
					s.Hooks.CreateRuntime = append(s.Hooks.CreateRuntime, netbridgeHook(t, stage, files))
				}
				s.Hooks.Poststop = append(s.Hooks.Poststop, netbridgeHook(t, "poststop", files))
			})
			teardownOnCleanup(t, files, id)
			r := newRunc(t, runc)
			if err := r.runDetached(t, bundle, id); err != nil {
				t.Fatal(err)
			}
			st, err := r.state(id)
			if err != nil {
				t.Fatal(err)
			}
			podPath := fmt.Sprintf("/proc/%d/ns/net", st.Pid)
			// Everything holding the container's netns (this handle, the
			// guest's tap file, netlink sockets) is closed before the
			// container is killed, so the netns can die with it.
			func() {
				pod, err := ns.GetNS(podPath)
				if err != nil {
					t.Fatalf("opening the container's netns: %v", err)
				}
				defer pod.Close()
				checkWired(t, pod, id, "eth0")
				if sb, err := netbridge.New(files.stateDir, nil).Load(context.Background(), id); err == nil && sb.Netns != podPath {
					t.Errorf("recorded netns %q, want %q", sb.Netns, podPath)
				}
				guestThroughTap(t, node, pod, files, id, [2]netip.Addr{nodeV4, podV4}, [2]netip.Addr{nodeV6, podV6})
			}()
			if t.Failed() {
				return
			}

			r.stop(t, id)
			checkTornDown(t, files, id)
			checkHookLog(t, files, stage, "poststop")
			// The netns died with the container, taking eth0 and so its
			// peer: nothing (the hook included) kept it alive.
			deadline := time.Now().Add(10 * time.Second)
			h := testnet.Handle(t, node)
			for {
				if _, err := h.LinkByName("veth0"); err != nil {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("veth0 still exists 10s after the container was deleted: its peer's netns is still alive")
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// cniHookMain is the test binary's main when runc runs it as the CNI
// stand-in hook (NBTEST_HOOK=cni): it reads the container state from stdin
// and moves the node netns's veth end into /proc/<pid>/ns/net, configured
// the way a CNI plugin leaves it. Errors go to stderr, which runc includes
// in its own error.
func cniHookMain() int {
	if err := cniHook(os.Stdin); err != nil {
		fmt.Fprintf(os.Stderr, "netbridge e2e CNI stand-in hook: %v\n", err)
		return 1
	}
	return 0
}

func cniHook(stdin io.Reader) error {
	var st specs.State
	if err := json.NewDecoder(stdin).Decode(&st); err != nil {
		return fmt.Errorf("reading the state from stdin: %w", err)
	}
	if st.Pid <= 0 {
		return fmt.Errorf("the state of %q has no pid", st.ID)
	}
	link, ifname := os.Getenv(envLink), os.Getenv(envIfname)
	nodeNS, err := netns.GetFromPath(os.Getenv(envNodeNS))
	if err != nil {
		return fmt.Errorf("opening the node netns: %w", err)
	}
	defer nodeNS.Close()
	podPath := fmt.Sprintf("/proc/%d/ns/net", st.Pid)
	podNS, err := netns.GetFromPath(podPath)
	if err != nil {
		return fmt.Errorf("opening the container netns: %w", err)
	}
	defer podNS.Close()
	nh, err := netlink.NewHandleAt(nodeNS)
	if err != nil {
		return fmt.Errorf("netlink in the node netns: %w", err)
	}
	defer nh.Close()
	ph, err := netlink.NewHandleAt(podNS)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", podPath, err)
	}
	defer ph.Close()

	l, err := nh.LinkByName(link)
	if err != nil {
		return fmt.Errorf("%s in the node netns: %w", link, err)
	}
	if err := nh.LinkSetNsFd(l, int(podNS)); err != nil {
		return fmt.Errorf("moving %s into %s: %w", link, podPath, err)
	}
	if l, err = ph.LinkByName(link); err != nil {
		return fmt.Errorf("%s after the move: %w", link, err)
	}
	if err := ph.LinkSetName(l, ifname); err != nil {
		return fmt.Errorf("renaming %s to %s: %w", link, ifname, err)
	}
	for _, cidr := range strings.Split(os.Getenv(envAddrs), ",") {
		a, err := netlink.ParseAddr(cidr)
		if err != nil {
			return err
		}
		if a.IP.To4() == nil {
			a.Flags |= unix.IFA_F_NODAD
		}
		if err := ph.AddrAdd(l, a); err != nil {
			return fmt.Errorf("adding %s to %s: %w", cidr, ifname, err)
		}
	}
	if err := ph.LinkSetUp(l); err != nil {
		return fmt.Errorf("bringing %s up: %w", ifname, err)
	}
	for _, gw := range strings.Split(os.Getenv(envGateways), ",") {
		ip, err := netip.ParseAddr(gw)
		if err != nil {
			return err
		}
		bits := ip.BitLen()
		r := &netlink.Route{
			LinkIndex: l.Attrs().Index,
			Dst:       &net.IPNet{IP: make(net.IP, bits/8), Mask: net.CIDRMask(0, bits)},
			Gw:        ip.AsSlice(),
		}
		if err := ph.RouteAdd(r); err != nil {
			return fmt.Errorf("adding a default route via %s: %w", gw, err)
		}
	}
	return nil
}
