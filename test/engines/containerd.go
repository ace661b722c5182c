package engines

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netbridge/netbridge/test/testnet"
)

// SandboxImage is the name of the sandbox ("pause") image every
// containerd of these tests runs: busybox sleeping, imported from an OCI
// archive built by WriteImage.
const SandboxImage = "netbridge.test/sandbox:1"

// DebianCNIDir is where Debian's containernetworking-plugins installs the
// CNI plugins.
const DebianCNIDir = "/usr/lib/cni"

// crictlPackage is cri-tools' crictl, pinned by a tool directive in go.mod.
const crictlPackage = "sigs.k8s.io/cri-tools/cmd/crictl"

// Containerd is a containerd daemon with its CRI plugin, started for one
// test inside a network namespace of the test, with its own root, state,
// sockets, CNI configuration and bin directories.
type Containerd struct {
	t testing.TB
	// Dir holds everything of this daemon.
	Dir string
	// Socket is containerd's gRPC socket.
	Socket string
	// ConfDir is the CNI configuration directory the CRI plugin reads.
	ConfDir string
	// BinDir is its one CNI bin directory (containerd 1.6 takes one):
	// links to Debian's plugins, and extra plugins added by AddPlugin.
	BinDir string
	// CgroupParent is the cgroup the pods of this daemon go under.
	CgroupParent string
	// Log is containerd's log file.
	Log string

	node     ns.NetNS
	cmd      *exec.Cmd
	crictl   string
	crictlCf string
	mu       sync.Mutex
	netns    []string // pod netns paths seen, removed at cleanup (under mu)
	// madeRunDir is set when /run/containerd did not exist before this
	// daemon: its shims make their sockets in /run/containerd/s whatever
	// the configuration says, and the cleanup removes the empty tree.
	madeRunDir bool
}

// shimRunDir is where containerd 1.6's shims put their sockets.
const shimRunDir = "/run/containerd"

// RequireContainerd skips the test (fails it under CI) unless containerd,
// ctr, runc, Debian's CNI plugins and the static busybox are installed.
func RequireContainerd(t testing.TB) {
	t.Helper()
	require(t, "containerd", "ctr", "runc", "containerd-shim-runc-v2", filepath.Join(DebianCNIDir, "bridge"), filepath.Join(DebianCNIDir, "host-local"), BusyboxPath)
}

// StartContainerd starts containerd inside node (a namespace the test
// made; the host's mount namespace is kept, so that the pod netns mounts
// it makes under /run/netns are visible) with the CNI configuration files
// of conf (file name -> content) in its conf dir, imports the sandbox
// image and returns the running daemon. Every pod is removed and
// containerd stopped in t.Cleanup, with what they leave behind.
func StartContainerd(t testing.TB, node ns.NetNS, conf map[string]string) *Containerd {
	t.Helper()
	RequireContainerd(t)
	c := &Containerd{t: t, node: node}
	c.crictl = Build(t, crictlPackage, "crictl")
	c.Dir = shortTempDir(t, "nbctd-")
	c.Socket = filepath.Join(c.Dir, "containerd.sock")
	c.ConfDir = filepath.Join(c.Dir, "cni-conf")
	c.BinDir = filepath.Join(c.Dir, "cni-bin")
	c.Log = filepath.Join(c.Dir, "containerd.log")
	c.CgroupParent = "/nbtest-" + randomHex(6)
	for _, d := range []string{c.ConfDir, c.BinDir, filepath.Join(c.Dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	plugins, err := filepath.Glob(filepath.Join(DebianCNIDir, "*"))
	if err != nil || len(plugins) == 0 {
		t.Fatalf("no CNI plugins in %s", DebianCNIDir)
	}
	for _, p := range plugins {
		if err := os.Symlink(p, filepath.Join(c.BinDir, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range conf {
		c.WriteConf(name, body)
	}
	cfg := filepath.Join(c.Dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(c.config()), 0o644); err != nil {
		t.Fatal(err)
	}
	c.crictlCf = filepath.Join(c.Dir, "crictl.yaml")
	crictlConf := fmt.Sprintf("runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 60\n", c.Socket, c.Socket)
	if err := os.WriteFile(c.crictlCf, []byte(crictlConf), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(shimRunDir); os.IsNotExist(err) {
		c.madeRunDir = true
	}
	t.Cleanup(c.cleanup)
	c.start(cfg)
	c.importImage()
	return c
}

// config returns containerd's configuration (version 2, as 1.6 reads it).
func (c *Containerd) config() string {
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[debug]
  address = %[5]q
[plugins."io.containerd.internal.v1.opt"]
  path = %[6]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[7]q
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %[8]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[9]q
    conf_dir = %[10]q
    max_conf_num = 1
`, filepath.Join(c.Dir, "root"), filepath.Join(c.Dir, "state"), c.Socket, filepath.Join(c.Dir, "ttrpc.sock"),
		filepath.Join(c.Dir, "debug.sock"), filepath.Join(c.Dir, "opt"), SandboxImage, filepath.Join(c.Dir, "runc"),
		c.BinDir, c.ConfDir)
}

// start runs containerd inside the node netns, in a session of its own,
// and waits for its socket to answer.
func (c *Containerd) start(cfg string) {
	t := c.t
	log, err := os.Create(c.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	c.cmd = exec.Command("nsenter", "--net="+c.node.Path(), "containerd", "--config", cfg, "--log-level", "info")
	c.cmd.Stdout, c.cmd.Stderr = log, log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting containerd: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := c.Ctr("version"); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not answer on %s within 60 s; its log:\n%s", c.Socket, c.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// importImage imports the sandbox image from an OCI archive.
func (c *Containerd) importImage() {
	archive := filepath.Join(c.Dir, "sandbox.tar")
	if err := WriteImage(archive, SandboxImage, []string{"/bin/sleep", "86400"}); err != nil {
		c.t.Fatalf("building the sandbox image: %v", err)
	}
	if out, err := c.Ctr("-n", "k8s.io", "images", "import", "--no-unpack", archive); err != nil {
		c.t.Fatalf("importing the sandbox image: %v\n%s", err, out)
	}
	// The CRI plugin learns of the image from an event, a moment later; a
	// pod run before would make it try to pull the image (no registry).
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.Crictl("inspecti", SandboxImage)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the CRI plugin does not see the imported sandbox image: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WriteConf writes a CNI configuration file into the conf dir,
// atomically (the CRI plugin watches the directory).
func (c *Containerd) WriteConf(name, body string) {
	tmp := filepath.Join(c.Dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.ConfDir, name)); err != nil {
		c.t.Fatal(err)
	}
}

// AddPlugin links the binary at path into the CNI bin dir as name.
func (c *Containerd) AddPlugin(name, path string) {
	dst := filepath.Join(c.BinDir, name)
	_ = os.Remove(dst)
	if err := os.Symlink(path, dst); err != nil {
		c.t.Fatal(err)
	}
}

// Ctr runs ctr against this daemon and returns its combined output.
func (c *Containerd) Ctr(args ...string) (string, error) {
	cmd := exec.Command("ctr", append([]string{"--address", c.Socket}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Crictl runs crictl against this daemon and returns its stdout; the error
// carries its stderr.
func (c *Containerd) Crictl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.crictl, append([]string{"--config", c.crictlCf}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("crictl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// PodConfig is what RunPod asks the CRI for.
type PodConfig struct {
	Name        string
	Annotations map[string]string
	// Sysctls are set in the pod; an unknown one makes the sandbox
	// container fail to start after CNI ADD ran.
	Sysctls map[string]string
	// RuntimeHandler is crictl's --runtime, empty for the default.
	RuntimeHandler string
}

// Pod is a pod sandbox that RunPod started.
type Pod struct {
	ID    string
	Netns string // the path of its network namespace
}

// RunPod runs a pod sandbox (crictl runp) and returns it with its netns
// path, read from crictl inspectp.
func (c *Containerd) RunPod(p PodConfig) (*Pod, error) {
	file, err := c.writePodConfig(p)
	if err != nil {
		return nil, err
	}
	args := []string{"runp"}
	if p.RuntimeHandler != "" {
		args = append(args, "--runtime", p.RuntimeHandler)
	}
	out, err := c.Crictl(append(args, file)...)
	if err != nil {
		return nil, err
	}
	pod := &Pod{ID: strings.TrimSpace(out)}
	pod.Netns, err = c.podNetns(pod.ID)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.netns = append(c.netns, pod.Netns)
	c.mu.Unlock()
	return pod, nil
}

func (c *Containerd) writePodConfig(p PodConfig) (string, error) {
	linux := map[string]any{"cgroup_parent": c.CgroupParent}
	if len(p.Sysctls) > 0 {
		linux["sysctls"] = p.Sysctls
	}
	cfg := map[string]any{
		"metadata":      map[string]any{"name": p.Name, "namespace": "default", "uid": p.Name + "-" + randomHex(4), "attempt": 0},
		"log_directory": filepath.Join(c.Dir, "logs", p.Name),
		"linux":         linux,
		"annotations":   p.Annotations,
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	file := filepath.Join(c.Dir, "pod-"+p.Name+"-"+randomHex(3)+".json")
	return file, os.WriteFile(file, b, 0o644)
}

// podNetns returns the path of pod id's network namespace.
func (c *Containerd) podNetns(id string) (string, error) {
	out, err := c.Crictl("inspectp", id)
	if err != nil {
		return "", err
	}
	var v struct {
		Info struct {
			RuntimeSpec struct {
				Linux struct {
					Namespaces []struct {
						Type string `json:"type"`
						Path string `json:"path"`
					} `json:"namespaces"`
				} `json:"linux"`
			} `json:"runtimeSpec"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return "", fmt.Errorf("decoding crictl inspectp %s: %w", id, err)
	}
	for _, n := range v.Info.RuntimeSpec.Linux.Namespaces {
		if n.Type == "network" && n.Path != "" {
			return n.Path, nil
		}
	}
	return "", fmt.Errorf("pod %s has no network namespace path in crictl inspectp", id)
}

// StopPod stops and removes pod id (crictl stopp, rmp): containerd runs
// CNI DEL on each.
func (c *Containerd) StopPod(id string) error {
	if _, err := c.Crictl("stopp", id); err != nil {
		return err
	}
	_, err := c.Crictl("rmp", id)
	return err
}

// Pods returns the ids of the pods containerd knows.
func (c *Containerd) Pods() ([]string, error) {
	out, err := c.Crictl("pods", "-q")
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// tail returns the end of containerd's log.
func (c *Containerd) tail() string {
	b, _ := os.ReadFile(c.Log)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// cleanup removes every pod, stops containerd and its shims, and removes
// what they left outside Dir: pod netns mounts, cgroups, CNI's cache.
func (c *Containerd) cleanup() {
	t := c.t
	if c.cmd != nil && c.cmd.Process != nil {
		if ids, err := c.Pods(); err == nil {
			for _, id := range ids {
				if err := c.StopPod(id); err != nil {
					t.Errorf("cleanup: removing pod %s: %v", id, err)
				}
			}
		}
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = c.cmd.Process.Kill()
			<-done
		}
	}
	// The shims outlive containerd; ours carry our socket in -address.
	for _, pid := range processesWith("-address", c.Socket) {
		killTree(pid)
		waitGone(pid, 5*time.Second)
	}
	for _, p := range c.netns {
		if _, err := os.Lstat(p); err == nil {
			_ = syscall.Unmount(p, syscall.MNT_DETACH)
			if err := os.Remove(p); err != nil {
				t.Errorf("cleanup: removing pod netns %s: %v", p, err)
			}
		}
	}
	removeCgroup(t, c.CgroupParent)
	if c.madeRunDir {
		// Only empty directories go: a socket left there is another daemon's.
		_ = os.Remove(filepath.Join(shimRunDir, "s"))
		_ = os.Remove(shimRunDir)
	}
	if b, err := os.ReadFile(c.Log); err == nil && t.Failed() {
		t.Logf("containerd log (end):\n%s", tailOf(b, 6000))
	}
}

func tailOf(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Node returns a fresh namespace for a daemon, with testnet.NewNS.
func Node(t testing.TB) ns.NetNS { return testnet.NewNS(t) }

// Chain returns the plugin types of the network containerd's CRI uses for
// eth0, as it loaded them (crictl info), comma-separated.
func (c *Containerd) Chain() (string, error) {
	out, err := c.Crictl("info")
	if err != nil {
		return "", err
	}
	var v struct {
		CNIConfig struct {
			Networks []struct {
				IFName string
				Config struct {
					Plugins []struct {
						Network struct {
							Type string `json:"type"`
						}
					}
				}
			}
		} `json:"cniconfig"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return "", fmt.Errorf("decoding crictl info: %w", err)
	}
	for _, n := range v.CNIConfig.Networks {
		if n.IFName != "eth0" {
			continue
		}
		var types []string
		for _, p := range n.Config.Plugins {
			types = append(types, p.Network.Type)
		}
		return strings.Join(types, ","), nil
	}
	return "", nil
}

// WaitChain waits until containerd has loaded a network configuration
// whose plugin types are want (comma-separated): it reloads its conf dir
// shortly after a change.
func (c *Containerd) WaitChain(want string) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := c.Chain()
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("containerd's network chain is %q (%v), want %q", got, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
