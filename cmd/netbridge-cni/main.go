// Command netbridge-cni is netbridge as a chained CNI plugin (type
// "netbridge"; install it as netbridge in the CNI bin directory). Listed
// after the plugin that creates a pod's interface, it connects that
// interface (CNI_IFNAME) to a tap for a VM sandbox and adds the tap to the
// result:
//
//	{"type": "netbridge", "model": "tcfilter", "queues": 1}
//
// ADD attaches the interface to the sandbox of CNI_CONTAINERID, DEL
// detaches it (idempotent, and a success when the netns or the prevResult
// is gone), CHECK verifies the wiring, STATUS says whether taps can be
// made, GC detaches the interfaces of this network the runtime no longer
// lists. It shares the state directory with the netbridge CLI, so
// `netbridge render --id CONTAINER_ID` prints the hypervisor arguments of
// what the plugin wired.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/netbridge/netbridge/netbridge"
	"github.com/netbridge/netbridge/pkg/linkname"
	"github.com/netbridge/netbridge/pkg/netns"
	"github.com/netbridge/netbridge/pkg/state"
	"github.com/netbridge/netbridge/pkg/tap"
	"github.com/netbridge/netbridge/sandbox"
)

// versionString is set at build time (-X main.versionString=...).
var versionString = "dev"

// specVersions are the CNI spec versions the plugin speaks.
var specVersions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// timeout bounds one call; the runtime's own deadline usually comes first,
// and SIGTERM rolls back as well.
const timeout = 60 * time.Second

func main() {
	// A call is one short sequence of netlink requests and file writes:
	// nothing runs in parallel, and a second P only makes the scheduler
	// start and wake threads to look for work (measured: 5-17% less CPU
	// per ADD and DEL with one, wall time no worse).
	runtime.GOMAXPROCS(1)
	skel.PluginMainFuncs(skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck, GC: cmdGC, Status: cmdStatus},
		specVersions, "netbridge "+versionString+": connects a pod's CNI interface to a tap for a VM sandbox")
}

// call is one plugin invocation: its configuration, the previous
// plugin's result (nil when none), a context bounded by timeout and
// SIGTERM, a logger that writes to conf.LogFile, and the library on the
// configuration's state directory, logging there too.
type call struct {
	conf *netConf
	prev *current.Result
	ctx  context.Context
	log  *slog.Logger
	lib  *netbridge.Manager
	done func()
}

func start(args *skel.CmdArgs) (*call, error) {
	conf, prev, err := parseConf(args.StdinData)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	ctx, stop := interruptible(ctx)
	c := &call{conf: conf, prev: prev, ctx: ctx, log: slog.New(slog.DiscardHandler), done: func() { stop(); cancel() }}
	if conf.LogFile != "" {
		f, err := os.OpenFile(conf.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			c.done()
			return nil, types.NewError(types.ErrIOFailure, "opening logFile", err.Error())
		}
		c.log = slog.New(slog.NewJSONHandler(f, nil)).With("cni_command", os.Getenv("CNI_COMMAND"),
			"network", conf.Name, "container", args.ContainerID, "ifname", args.IfName)
		c.done = func() { stop(); cancel(); f.Close() }
	}
	c.lib = netbridge.New(c.stateDir(), c.log)
	return c, nil
}

// stopSignals is where SIGTERM and SIGINT arrive, registered once per
// process and never unregistered: each registration and unregistration
// of a signal is a round trip with the runtime's signal-mask thread, and
// the process ends with the call (signal.NotifyContext did both per call).
var (
	stopSignals     chan os.Signal
	stopSignalsOnce sync.Once
)

// interruptible returns ctx canceled as well when the process gets SIGTERM
// or SIGINT, so that an ADD rolls back what it made, and the function that
// releases it. A signal that arrives with no call running is kept for the
// next one.
func interruptible(ctx context.Context) (context.Context, context.CancelFunc) {
	stopSignalsOnce.Do(func() {
		stopSignals = make(chan os.Signal, 1)
		signal.Notify(stopSignals, syscall.SIGTERM, syscall.SIGINT)
	})
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case sig := <-stopSignals:
			if ctx.Err() != nil {
				// Released already: the signal is the next call's.
				select {
				case stopSignals <- sig:
				default:
				}
				return
			}
			cancel(fmt.Errorf("%w: got %v", context.Canceled, sig))
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// stateDir is the state directory of the call: the configuration's
// stateDir, else $NETBRIDGE_STATE_DIR, else the default.
func (c *call) stateDir() string { return state.Dir(c.conf.StateDir) }

// with makes fn a skel command: the call is started from args and ended
// after fn.
func with(fn func(c *call, args *skel.CmdArgs) error) func(*skel.CmdArgs) error {
	return func(args *skel.CmdArgs) error {
		c, err := start(args)
		if err != nil {
			return err
		}
		defer c.done()
		if sel, known := c.conf.selects(); !sel {
			if !known {
				c.warnNoAnnotations()
			}
			err = passThrough(c, args, fn)
		} else {
			err = fn(c, args)
		}
		if err != nil {
			// The runtime shows the error once, if at all: the log keeps it.
			c.log.Error("failed", "error", err.Error(), "netns", args.Netns)
		}
		return err
	}
}

// passThrough serves a pod the podAnnotation selector does not select:
// ADD returns the previous result unchanged and CHECK does nothing; DEL
// still detaches, which changes nothing unless the pod was selected when
// it was added (its annotations changed since), so that DEL always
// converges. GC and STATUS concern the whole network and run as usual.
func passThrough(c *call, args *skel.CmdArgs, fn func(*call, *skel.CmdArgs) error) error {
	switch os.Getenv("CNI_COMMAND") {
	case "ADD":
		c.log.Info("pod not selected; passing the result through", "podAnnotation", c.conf.PodAnnotation)
		if c.prev == nil {
			return types.NewError(types.ErrInvalidNetworkConfig, errNoPrevResult.Error(), "")
		}
		return types.PrintResult(c.prev, c.conf.CNIVersion)
	case "CHECK":
		return nil
	}
	return fn(c, args)
}

// The plugin's commands, as skel calls them.
var (
	cmdAdd    = with(add)
	cmdDel    = with(del)
	cmdCheck  = with(check)
	cmdGC     = with(gc)
	cmdStatus = with(status)
)

func add(c *call, args *skel.CmdArgs) error {
	conf, prev, ctx := c.conf, c.prev, c.ctx
	if prev == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, errNoPrevResult.Error(), "")
	}
	if args.Netns == "" {
		return types.NewError(types.ErrInvalidNetNS, "ADD needs CNI_NETNS", "")
	}
	cargs, err := parseCNIArgs(args.Args)
	if err != nil {
		return err
	}
	cargs.apply(conf)
	vmIP, err := conf.prepareVMConf(prev, args)
	if err != nil {
		return err
	}
	cfg, err := conf.config(args.ContainerID, args.Netns, args.IfName, prev)
	if err != nil {
		return err
	}
	sb, err := c.lib.Attach(ctx, cfg)
	if err != nil {
		return cniError(err)
	}
	for _, nic := range sb.NICs {
		if nic.Name == args.IfName {
			prev.Interfaces = append(prev.Interfaces, tapInterface(nic, args.Netns))
			if vmIP != nil {
				if err := c.appendVMConf(args, prev, nic, vmIP); err != nil {
					return err
				}
			}
			return types.PrintResult(prev, conf.CNIVersion)
		}
	}
	return types.NewError(types.ErrInternal, fmt.Sprintf("interface %q is not among the attached NICs of sandbox %q", args.IfName, args.ContainerID), "")
}

// tapInterface is the result's entry of nic's tap: the device the
// hypervisor opens, in the pod's netns. The guest's MAC is the CNI
// interface's own, already in the result.
func tapInterface(nic sandbox.NIC, netnsPath string) *current.Interface {
	return &current.Interface{Name: nic.Tap, Mac: nic.TapMAC.String(), Mtu: nic.MTU, Sandbox: netnsPath}
}

// del detaches the interface. The record says where the wiring is: DEL
// needs neither the netns (gone with its objects is fine) nor a
// prevResult. DEL must be able to succeed whatever happened before, or a
// runtime retries it forever: so it also succeeds, leaving things as they
// are and saying why in the log, when the sandbox was set up as a whole
// (by netbridge setup or the hook, which this plugin's ADD refuses: not
// DEL's to undo), when the interface name is not valid UTF-8 (ADD
// refuses it: nothing can be attached under it), and when the state
// directory has no record while the interface is still wired for this
// container (ADD was given another stateDir).
func del(c *call, args *skel.CmdArgs) error {
	ctx := c.ctx
	recorded, err := c.lib.DetachRecorded(ctx, args.ContainerID, args.IfName)
	switch {
	case errors.Is(err, netbridge.ErrModeConflict):
		c.log.Warn("DEL leaves the sandbox as it is: it was set up as a whole by netbridge setup or the OCI hook, not attached by this plugin; netbridge teardown of the sandbox id removes it", "state_dir", c.lib.Dir(), "error", err.Error())
		return nil
	case errors.Is(err, linkname.ErrNotUTF8):
		// ADD refuses such a name, so nothing is attached under it. (A
		// netbridge before this one recorded it with each bad byte turned
		// into U+FFFD: GC or teardown find that record.)
		c.log.Warn("DEL has nothing to do: the interface name is not valid UTF-8, which ADD refuses", "error", err.Error())
		return nil
	case err != nil:
		return cniError(err)
	}
	// Only a DEL whose state directory had nothing of the interface can
	// leave wiring behind (made under another stateDir): one that undid
	// the interface's steps has nothing left to look for.
	if !recorded && args.Netns != "" {
		stillWired(c, args)
	}
	return nil
}

// stillWired logs a warning when the interface is still wired for the
// container after a DEL that succeeded with nothing recorded: the wiring of an ADD whose
// stateDir was another than this DEL's, which DEL cannot undo (its record
// is in that directory). It goes with the netns; netbridge teardown with
// that state directory removes it before.
func stillWired(c *call, args *skel.CmdArgs) {
	ifs, err := netbridge.Discover(c.ctx, args.Netns, nil)
	if err != nil {
		return // the netns is gone, or cannot be read: nothing to say
	}
	for _, i := range ifs {
		if i.Name == args.IfName && i.WiredFor == args.ContainerID {
			c.log.Warn("DEL found no record of this interface in its state directory, but the interface is still wired by netbridge for this container: was ADD given another stateDir? DEL leaves that wiring in place (it goes with the netns); netbridge teardown with the state directory ADD used removes it",
				"state_dir", c.lib.Dir())
			return
		}
	}
}

func check(c *call, args *skel.CmdArgs) error {
	prev, ctx := c.prev, c.ctx
	if prev == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, errNoPrevResult.Error(), "")
	}
	if err := c.lib.CheckInterface(ctx, args.ContainerID, args.IfName); err != nil {
		return cniError(err)
	}
	sb, err := c.lib.Load(ctx, args.ContainerID)
	if err != nil {
		return cniError(err)
	}
	for _, nic := range sb.NICs {
		if nic.Name != args.IfName {
			continue
		}
		want := tapInterface(nic, args.Netns)
		for _, i := range prev.Interfaces {
			if i.Name == want.Name && i.Sandbox == want.Sandbox {
				if i.Mac != "" && i.Mac != want.Mac {
					return types.NewError(types.ErrInternal, fmt.Sprintf("tap %q has MAC %s, the result says %s", want.Name, want.Mac, i.Mac), "")
				}
				if c.conf.VMConf {
					if err := checkVMConf(prev, nic, args.ContainerID); err != nil {
						return types.NewError(types.ErrInternal, err.Error(), "")
					}
				}
				return nil
			}
		}
		return types.NewError(types.ErrInternal, fmt.Sprintf("the result has no interface %q in %s: it was not made by this netbridge ADD", want.Name, want.Sandbox), "")
	}
	return types.NewError(types.ErrInternal, fmt.Sprintf("interface %q of %q is not attached", args.IfName, args.ContainerID), "")
}

// status reports whether the plugin can attach: the tun device can be
// opened and the state directory written.
func status(c *call, _ *skel.CmdArgs) error {
	f, err := os.OpenFile(tap.CloneDevice, os.O_RDWR, 0)
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "no tun device", fmt.Sprintf("%v; load the tun module", err))
	}
	f.Close()
	if _, err := state.Open(c.lib.Dir()); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "state directory not usable", err.Error())
	}
	return nil
}

// gc detaches the interfaces of this network that the runtime's list
// of valid attachments no longer has. A GC without the list (no
// cni.dev/valid-attachments, nor the older cni.dev/attachments) detaches
// every interface of the network, live ones included, as the spec reads
// and as libcni does itself then (it DELs every attachment of the network
// it has cached); the log says so. A runtime that does not want that
// leaves GC out of the list ("disableGC": true).
func gc(c *call, args *skel.CmdArgs) error {
	conf, ctx := c.conf, c.ctx
	list, given := conf.validAttachments()
	if !given {
		c.log.Warn("GC without cni.dev/valid-attachments: every attachment of this network counts as stale and is detached, live ones included")
	}
	valid := map[types.GCAttachment]bool{}
	for _, a := range list {
		valid[a] = true
	}
	gone, err := c.lib.Collect(ctx, conf.Name, func(id, ifname string) bool {
		return valid[types.GCAttachment{ContainerID: id, IfName: ifname}]
	})
	if len(gone) > 0 {
		c.log.Info("collected", "attachments", gone)
	}
	if err != nil {
		return cniError(err)
	}
	return nil
}

// cniError maps a library error to a CNI error code, with what the
// network configuration can change about it as the details.
func cniError(err error) error {
	code := types.ErrInternal
	switch {
	case errors.Is(err, netns.ErrNotExist), errors.Is(err, netns.ErrNotNetns), errors.Is(err, netns.ErrHostNetns):
		code = types.ErrInvalidNetNS
	case errors.Is(err, sandbox.ErrInvalidConfig):
		code = types.ErrInvalidNetworkConfig
	case errors.Is(err, netbridge.ErrNotFound):
		code = types.ErrUnknownContainer
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		code = types.ErrTryAgainLater
	}
	return types.NewError(code, err.Error(), hint(err))
}

// hint says which keys of the network configuration do what the library's
// typed errors suggest, "" when none.
func hint(err error) string {
	var mf *netbridge.MissingFeatureError
	switch {
	case errors.As(err, &mf) && len(mf.Works) > 0:
		models := make([]string, len(mf.Works))
		for i, m := range mf.Works {
			models[i] = strconv.Quote(string(m))
		}
		return `set "model" to ` + strings.Join(models, " or ") + " in the network configuration"
	case errors.Is(err, netbridge.ErrNoVhost):
		return `set "vhost" to "auto" or "off" in the network configuration`
	}
	return ""
}
