package guest

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/netbridge/netbridge/sandbox"
)

// CmdlineKey is the kernel command line key of Cmdline's parameters.
const CmdlineKey = "netbridge.nic"

// Cmdline returns kernel command line parameters that describe every NIC
// for a minimal guest init (a shell script) to apply, one parameter per
// NIC, in NIC order:
//
//	netbridge.nic=<guest MAC>,mtu=<MTU>[,addr=<CIDR>]...[,route=<dst>@<gw>[@<mtu>]]...[,neigh=<ip>@<mac>]...
//
// A default route is route=0.0.0.0/0@GW or route=::/0@GW; an on-link route
// has an empty gateway (route=DST@). The kernel ignores the parameters (the
// dotted key names no module it has), and a shell splits them with IFS=','
// and '@'. Unlike ip=, they carry IPv6, several addresses, routes with
// their MTU, static neighbours and every NIC. The kernel's command line is
// limited (2048 bytes on x86), which is a few dozen addresses.
func Cmdline(nics []sandbox.NIC) (string, error) {
	var params []string
	for k := range nics {
		n := &nics[k]
		if len(n.GuestMAC) != 6 {
			return "", fmt.Errorf("guest: command line: %s: guest MAC missing", label(n, k))
		}
		f := []string{n.GuestMAC.String()}
		if n.MTU > 0 {
			f = append(f, "mtu="+strconv.Itoa(n.MTU))
		}
		for _, a := range n.Addresses {
			f = append(f, "addr="+a.String())
		}
		for _, r := range n.Routes {
			gw := ""
			if r.Gw.IsValid() {
				gw = r.Gw.String()
			}
			rt := "route=" + r.Dst.String() + "@" + gw
			if r.MTU > 0 {
				rt += "@" + strconv.Itoa(r.MTU)
			}
			f = append(f, rt)
		}
		for _, nb := range n.Neighbors {
			f = append(f, "neigh="+nb.IP.String()+"@"+nb.MAC.String())
		}
		params = append(params, CmdlineKey+"="+strings.Join(f, ","))
	}
	return strings.Join(params, " "), nil
}
