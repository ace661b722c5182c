// Package guest renders the network configuration a guest needs to use the
// NICs of a wired sandbox: the kernel "ip=" boot parameter ([KernelIP]) and a
// JSON network document for a guest agent ([JSON], [ParseJSON]). It works on
// plain data and never touches the kernel.
package guest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/netbridge/netbridge/sandbox"
)

// ErrUnsupported is wrapped by the error [KernelIP] returns when the network
// of the chosen NIC cannot be expressed by the kernel ip= parameter without
// changing its meaning.
var ErrUnsupported = errors.New("not expressible with the kernel ip= parameter")

// KernelIP returns the kernel boot parameter
//
//	ip=<address>::<gateway>:<netmask>::eth<k>:off
//
// that statically configures, before any user space runs, the first NIC of
// nics that has an IPv4 address. k is that NIC's position in nics: the guest
// kernel names its NICs eth0, eth1, ... in probe order, which is the order of
// the hypervisor arguments rendered from the same list. The address is the
// NIC's first IPv4 address, the netmask its prefix length in dotted form, and
// the gateway that of the NIC's first IPv4 default route, empty when the NIC
// has no default route. No hostname or NTP fields are rendered, so without
// nameservers the parameter ends at ":off". KernelIP returns "" and no error when no NIC has
// an IPv4 address.
//
// The parameter is limited: it configures one interface, one IPv4 address and
// at most a default route, and needs CONFIG_IP_PNP in the guest kernel. MTU,
// further addresses and routes, IPv6, neighbour entries and other NICs are
// not configured; use the JSON document for those. The kernel refuses a
// gateway outside the address's subnet ("Gateway not on directly connected
// network"), as in Calico's /32 addresses with gateway 169.254.1.1, and cannot
// add a default route without a gateway; for those KernelIP returns an error
// wrapping [ErrUnsupported] rather than a parameter that would leave the guest
// without its default route.
//
// Nameservers, when given, fill the two DNS fields with the first two IPv4
// ones (the kernel takes no more, and no IPv6); the kernel only exports
// them in /proc/net/pnp, so the guest must link /etc/resolv.conf there.
func KernelIP(nics []sandbox.NIC, nameservers ...netip.Addr) (string, error) {
	for k := range nics {
		n := &nics[k]
		addr, ok, err := firstIPv4(n.Addresses)
		if err != nil {
			return "", fmt.Errorf("guest: kernel ip=: %s: %w", label(n, k), err)
		}
		if !ok {
			continue
		}
		gw, err := defaultGateway4(n.Routes)
		if err != nil {
			return "", fmt.Errorf("guest: kernel ip=: %s: %w", label(n, k), err)
		}
		gwText := ""
		if gw.IsValid() {
			if !addr.Masked().Contains(gw) {
				return "", fmt.Errorf("guest: kernel ip=: %s: gateway %s is outside %s, which the kernel refuses: %w", label(n, k), gw, addr, ErrUnsupported)
			}
			gwText = gw.String()
		}
		mask := net.IP(net.CIDRMask(addr.Bits(), 32)).String()
		param := "ip=" + addr.Addr().String() + "::" + gwText + ":" + mask + "::eth" + strconv.Itoa(k) + ":off"
		var dns []string
		for _, ns := range nameservers {
			if ns.Unmap().Is4() && len(dns) < 2 {
				dns = append(dns, ns.Unmap().String())
			}
		}
		if len(dns) > 0 {
			param += ":" + strings.Join(dns, ":")
		}
		return param, nil
	}
	return "", nil
}

// firstIPv4 returns the first IPv4 prefix of addrs.
func firstIPv4(addrs []netip.Prefix) (p netip.Prefix, ok bool, err error) {
	for j, a := range addrs {
		if !a.IsValid() {
			return netip.Prefix{}, false, fmt.Errorf("address %d is not a valid prefix", j)
		}
		if !a.Addr().Is4() {
			continue
		}
		if a.Bits() == 0 {
			// An empty netmask field means a classful mask to the kernel.
			return netip.Prefix{}, false, fmt.Errorf("address %s has a zero-length prefix: %w", a, ErrUnsupported)
		}
		return a, true, nil
	}
	return netip.Prefix{}, false, nil
}

// defaultGateway4 returns the gateway of the first IPv4 default route of
// routes, or the zero Addr when there is no such route.
func defaultGateway4(routes []sandbox.Route) (netip.Addr, error) {
	for _, r := range routes {
		if r.Dst != netip.PrefixFrom(netip.IPv4Unspecified(), 0) {
			continue
		}
		switch {
		case !r.Gw.IsValid():
			return netip.Addr{}, fmt.Errorf("IPv4 default route has no gateway (a device route): %w", ErrUnsupported)
		case !r.Gw.Is4():
			return netip.Addr{}, fmt.Errorf("IPv4 default route has the non-IPv4 gateway %s: %w", r.Gw, ErrUnsupported)
		}
		return r.Gw, nil
	}
	return netip.Addr{}, nil
}

// label names nics[i] in error messages.
func label(n *sandbox.NIC, i int) string {
	return fmt.Sprintf("NIC %d (%q)", i, n.Name)
}
