// Package probe finds out which kernel features netbridge can use, by
// trying each one in a throwaway network namespace that disappears when the
// probe ends. The host namespace is never touched.
package probe

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/pkg/tap"
)

// Feature names, as reported by Run.
const (
	Tun      = "tun"
	VhostNet = "vhost-net"
	Ingress  = "ingress"
	Clsact   = "clsact"
	U32      = "u32"
	Matchall = "matchall"
	Mirred   = "mirred"
	Bridge   = "bridge"
	Macvtap  = "macvtap"
)

// Names lists every probed feature in report order.
var Names = []string{Tun, VhostNet, Ingress, Clsact, U32, Matchall, Mirred, Bridge, Macvtap}

// Result is one feature's outcome.
type Result struct {
	Name      string `json:"name"`
	Available bool   `json:"available"`
	// Detail says why a feature is unavailable (the kernel's error).
	Detail string `json:"detail,omitempty"`
}

// Features is the outcome of a probe, one Result per name in Names.
type Features []Result

// Has reports whether the named feature is available.
func (f Features) Has(name string) bool {
	for _, r := range f {
		if r.Name == name {
			return r.Available
		}
	}
	return false
}

// Missing returns the names among want that are not available.
func (f Features) Missing(want ...string) []string {
	var m []string
	for _, w := range want {
		if !f.Has(w) {
			m = append(m, w)
		}
	}
	return m
}

// VhostNetPath is the vhost-net device.
const VhostNetPath = "/dev/vhost-net"

// Run probes every feature. It needs CAP_NET_ADMIN and CAP_SYS_ADMIN (to
// create the throwaway namespace).
func Run() (Features, error) {
	type outcome struct {
		f   Features
		err error
	}
	ch := make(chan outcome, 1)
	go func() {
		// This thread enters a new namespace and is never unlocked: the Go
		// runtime ends it when the goroutine returns, and with it the
		// namespace, so nothing can leak into other goroutines.
		runtime.LockOSThread()
		f, err := runInNewNetns()
		ch <- outcome{f, err}
	}()
	o := <-ch
	if o.err != nil {
		return nil, o.err
	}
	return override(o.f), nil
}

func runInNewNetns() (Features, error) {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("creating a throwaway network namespace for the probe: %w (run as root)", err)
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("opening netlink in the probe namespace: %w", err)
	}
	defer h.Close()

	res := map[string]error{}
	res[VhostNet] = probeVhost()

	la := netlink.NewLinkAttrs()
	la.Name = "probe0"
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "probe1"}); err != nil {
		return nil, fmt.Errorf("creating a veth pair in the probe namespace: %w", err)
	}
	a, err := h.LinkByName("probe0")
	if err != nil {
		return nil, err
	}
	b, err := h.LinkByName("probe1")
	if err != nil {
		return nil, err
	}

	files, err := tap.Create(tap.Config{Name: "probetap0", VnetHdr: true})
	if err == nil {
		for _, f := range files {
			f.Close()
		}
	}
	res[Tun] = err
	probeTC(h, a, b, res)
	probeLinks(h, b, res)
	return report(res), nil
}

// probeTC tries the qdiscs, classifiers and action of tc: on link a, with
// link b as the redirect's target.
func probeTC(h *netlink.Handle, a, b netlink.Link, res map[string]error) {
	ingress := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: a.Attrs().Index, Parent: netlink.HANDLE_INGRESS, Handle: netlink.MakeHandle(0xffff, 0)}}
	res[Ingress] = h.QdiscAdd(ingress)

	clsact := &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: b.Attrs().Index, Parent: netlink.HANDLE_CLSACT, Handle: netlink.MakeHandle(0xffff, 0)}}
	res[Clsact] = h.QdiscAdd(clsact)

	if res[Ingress] != nil {
		for _, n := range []string{U32, Matchall, Mirred} {
			res[n] = fmt.Errorf("not probed: needs the ingress qdisc")
		}
		return
	}
	attrs := func(prio uint16) netlink.FilterAttrs {
		return netlink.FilterAttrs{LinkIndex: a.Attrs().Index, Parent: netlink.MakeHandle(0xffff, 0), Priority: prio, Protocol: unix.ETH_P_ALL}
	}
	// A filter with no action only sets a class id, which needs no
	// action module; mirred is then probed on whichever classifier works.
	classid := netlink.MakeHandle(1, 1)
	res[U32] = h.FilterAdd(&netlink.U32{FilterAttrs: attrs(1), ClassId: classid})
	res[Matchall] = h.FilterAdd(&netlink.MatchAll{FilterAttrs: attrs(2), ClassId: classid})
	mirred := netlink.NewMirredAction(b.Attrs().Index)
	switch {
	case res[U32] == nil:
		res[Mirred] = h.FilterAdd(&netlink.U32{FilterAttrs: attrs(3), Actions: []netlink.Action{mirred}})
	case res[Matchall] == nil:
		res[Mirred] = h.FilterAdd(&netlink.MatchAll{FilterAttrs: attrs(3), Actions: []netlink.Action{mirred}})
	default:
		res[Mirred] = fmt.Errorf("not probed: needs u32 or matchall")
	}
}

// probeLinks tries the link kinds netbridge creates: a bridge, and a
// macvtap on link b.
func probeLinks(h *netlink.Handle, b netlink.Link, res map[string]error) {
	bla := netlink.NewLinkAttrs()
	bla.Name = "probebr0"
	res[Bridge] = h.LinkAdd(&netlink.Bridge{LinkAttrs: bla})

	mla := netlink.NewLinkAttrs()
	mla.Name = "probemvt0"
	mla.ParentIndex = b.Attrs().Index
	res[Macvtap] = h.LinkAdd(&netlink.Macvtap{Macvlan: netlink.Macvlan{LinkAttrs: mla, Mode: netlink.MACVLAN_MODE_BRIDGE}})
}

// report turns the outcome of each probe into Features, in report order.
func report(res map[string]error) Features {
	out := make(Features, 0, len(Names))
	for _, n := range Names {
		r := Result{Name: n, Available: res[n] == nil}
		if err := res[n]; err != nil {
			r.Detail = err.Error()
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) {
				r.Detail += " (not built into this kernel, and no module loaded)"
			}
		}
		out = append(out, r)
	}
	return out
}

func probeVhost() error {
	f, err := os.OpenFile(VhostNetPath, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s does not exist (no vhost_net in this kernel)", VhostNetPath)
		}
		return err
	}
	return f.Close()
}
