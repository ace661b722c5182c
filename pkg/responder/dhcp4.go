package responder

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/insomniacslk/dhcp/rfc1035label"

	"github.com/netbridge/netbridge/pkg/ethframe"
)

// optionMSClasslessRoutes is option 249, the pre-standard spelling of
// option 121 that some older clients (and dhclient's default request list)
// still ask for; it is sent only to clients that request it.
const optionMSClasslessRoutes = 249

// minDHCPv4Size is the IP packet size every DHCPv4 client must accept
// (RFC 2131: 576 octets); a larger answer is sent only to clients whose
// maximum message size option allows it.
const minDHCPv4Size = 576

// dhcp4 answers one DHCPv4 request (RFC 2131).
func (r *Responder) dhcp4(p *plan, pkt ethframe.Packet) ([][]byte, outcome) {
	req, err := dhcpv4.FromBytes(pkt.Payload)
	if err != nil {
		return nil, malformedMsg
	}
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return nil, unsupported
	}
	if req.HWType != iana.HWTypeEthernet || !bytes.Equal(req.ClientHWAddr, p.mac) {
		return nil, notGuest
	}
	if cid := req.Options.Get(dhcpv4.OptionClientIdentifier); cid != nil {
		// A client identifier of type 1 (Ethernet) must be the guest's MAC.
		// Other types (RFC 4361 IAID+DUID, which systemd-networkd and dhcpcd
		// send by default, or opaque strings) name the client, not a link
		// address: the client hardware address above is what binds the
		// request to this NIC.
		if len(cid) == 0 {
			return nil, malformedMsg
		}
		if cid[0] == byte(iana.HWTypeEthernet) && !bytes.Equal(cid[1:], p.mac) {
			return nil, notGuest
		}
	}
	if ip := req.GatewayIPAddr; ip != nil && !ip.IsUnspecified() {
		// Relayed: the guest is on the link, never behind a relay.
		return nil, unsupported
	}
	mtBytes := req.Options.Get(dhcpv4.OptionDHCPMessageType)
	if len(mtBytes) != 1 {
		return nil, malformedMsg
	}
	ciaddr := addr4(req.ClientIPAddr)
	ours := p.addr4.IsValid()
	switch dhcpv4.MessageType(mtBytes[0]) {
	case dhcpv4.MessageTypeDiscover:
		if !ours {
			return nil, unsupported
		}
		return r.reply4(p, pkt, req, dhcpv4.MessageTypeOffer)
	case dhcpv4.MessageTypeRequest:
		server := addr4(req.ServerIdentifier())
		requested := addr4(req.RequestedIPAddress())
		var want netip.Addr
		switch {
		case server.IsValid():
			// SELECTING: the client chose an offer (ours, perhaps made
			// before a change of configuration).
			if !slices.Contains(r.servers4, server) {
				return nil, unsupported
			}
			want = requested
		case requested.IsValid():
			// INIT-REBOOT: the client checks an address it remembers.
			want = requested
		case ciaddr.IsValid():
			// RENEWING or REBINDING.
			want = ciaddr
		default:
			return nil, malformedMsg
		}
		if !ours || want != p.addr4.Addr() {
			return r.reply4(p, pkt, req, dhcpv4.MessageTypeNak)
		}
		return r.reply4(p, pkt, req, dhcpv4.MessageTypeAck)
	case dhcpv4.MessageTypeInform:
		if !ciaddr.IsValid() {
			return nil, malformedMsg
		}
		return r.reply4(p, pkt, req, dhcpv4.MessageTypeAck)
	case dhcpv4.MessageTypeRelease:
		return nil, silent
	case dhcpv4.MessageTypeDecline:
		r.stats.Declined++
		return nil, silent
	default:
		return nil, unsupported
	}
}

// addr4 converts a net.IP from a DHCPv4 message; unspecified or absent
// gives the zero Addr.
func addr4(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip.To4())
	if !ok || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

// reply4 builds the OFFER, ACK (to a REQUEST or an INFORM) or NAK for req.
// A NAK names the server the client asked (RFC 2131: clients ignore a NAK
// from another server): the one it sent a renewal to or named, else, for a
// broadcast rebinding or init-reboot, one NAK for each server identifier
// the responder has used, since the client may know any of them.
func (r *Responder) reply4(p *plan, pkt ethframe.Packet, req *dhcpv4.DHCPv4, mt dhcpv4.MessageType) ([][]byte, outcome) {
	servers := []netip.Addr{p.server4}
	if mt == dhcpv4.MessageTypeNak {
		switch sid := addr4(req.ServerIdentifier()); {
		case slices.Contains(r.servers4, pkt.DstIP):
			servers = []netip.Addr{pkt.DstIP}
		case slices.Contains(r.servers4, sid):
			servers = []netip.Addr{sid}
		default:
			servers = r.servers4
		}
	}
	var out [][]byte
	for _, server := range servers {
		f, err := r.message4(p, pkt, req, mt, server)
		if err != nil {
			return nil, unsupported
		}
		out = append(out, f)
	}
	return out, answered
}

// message4 builds one reply of type mt to req from server.
func (r *Responder) message4(p *plan, pkt ethframe.Packet, req *dhcpv4.DHCPv4, mt dhcpv4.MessageType, server netip.Addr) ([]byte, error) {
	inform := mt == dhcpv4.MessageTypeAck && dhcpv4.MessageType(req.Options.Get(dhcpv4.OptionDHCPMessageType)[0]) == dhcpv4.MessageTypeInform
	resp := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        iana.HWTypeEthernet,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: net.IPv4zero,
		ClientHWAddr:  p.mac,
		Options:       dhcpv4.Options{},
	}
	resp.UpdateOption(dhcpv4.OptMessageType(mt))
	resp.UpdateOption(dhcpv4.OptServerIdentifier(server.AsSlice()))
	if cid := req.Options.Get(dhcpv4.OptionClientIdentifier); cid != nil {
		resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientIdentifier, cid)) // RFC 6842
	}
	if mt == dhcpv4.MessageTypeNak {
		resp.UpdateOption(dhcpv4.OptMessage(fmt.Sprintf("the address is not this NIC's (it is %s)", describe4(p))))
	} else {
		if inform {
			resp.ClientIPAddr = req.ClientIPAddr
		} else {
			if mt == dhcpv4.MessageTypeAck {
				resp.ClientIPAddr = req.ClientIPAddr
			}
			resp.YourIPAddr = p.addr4.Addr().AsSlice()
			resp.UpdateOption(dhcpv4.OptIPAddressLeaseTime(p.lease))
			resp.UpdateOption(dhcpv4.OptRenewTimeValue(p.lease / 2))
			resp.UpdateOption(dhcpv4.OptRebindingTimeValue(p.lease * 7 / 8))
			resp.UpdateOption(dhcpv4.OptSubnetMask(net.CIDRMask(p.addr4.Bits(), 32)))
			if p.addr4.Bits() <= 30 {
				resp.UpdateOption(dhcpv4.OptBroadcastAddress(broadcast4(p.addr4).AsSlice()))
			}
		}
		addConfigOptions4(p, req, resp)
	}

	// Where the reply goes (RFC 2131 section 4.1). Whatever the IP
	// destination, the Ethernet destination is the guest's MAC: the reply is
	// for this guest alone.
	dst := netip.AddrFrom4([4]byte{255, 255, 255, 255})
	switch {
	case mt == dhcpv4.MessageTypeNak:
	case addr4(req.ClientIPAddr).IsValid():
		dst = addr4(req.ClientIPAddr)
	case req.IsBroadcast():
	default:
		dst = p.addr4.Addr()
	}
	return ethframe.UDP4(p.respMAC, p.mac, server, dst, portDHCPv4Server, portDHCPv4Client, fitDHCPv4(req, resp))
}

// addConfigOptions4 adds what the NIC is configured with: router, classless
// routes, MTU, DNS and search domains.
func addConfigOptions4(p *plan, req, resp *dhcpv4.DHCPv4) {
	if p.router4.IsValid() {
		// Only for an interface that has a default route: a second NIC
		// without one must not give the guest a second default route.
		resp.UpdateOption(dhcpv4.OptRouter(p.router4.AsSlice()))
	}
	if len(p.routes4) > 0 {
		routes := make([]*dhcpv4.Route, 0, len(p.routes4))
		for _, rt := range p.routes4 {
			gw := net.IPv4zero
			if rt.Gateway.IsValid() {
				gw = rt.Gateway.AsSlice()
			}
			routes = append(routes, &dhcpv4.Route{
				Dest:   &net.IPNet{IP: rt.Dst.Addr().AsSlice(), Mask: net.CIDRMask(rt.Dst.Bits(), 32)},
				Router: gw,
			})
		}
		resp.UpdateOption(dhcpv4.OptClasslessStaticRoute(routes...))
		if slices.Contains(req.Options.Get(dhcpv4.OptionParameterRequestList), optionMSClasslessRoutes) {
			resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optionMSClasslessRoutes), dhcpv4.Routes(routes).ToBytes()))
		}
	}
	if p.mtu >= 68 {
		resp.UpdateOption(dhcpv4.Option{Code: dhcpv4.OptionInterfaceMTU, Value: dhcpv4.Uint16(p.mtu)})
	}
	if len(p.dns4) > 0 {
		ips := make([]net.IP, len(p.dns4))
		for i, a := range p.dns4 {
			ips[i] = a.AsSlice()
		}
		resp.UpdateOption(dhcpv4.OptDNS(ips...))
	}
	if len(p.search) > 0 {
		resp.UpdateOption(dhcpv4.OptDomainName(p.search[0]))
		resp.UpdateOption(dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: p.search}))
	}
}

// fitDHCPv4 marshals resp, leaving out the options a client can best do
// without (249, then the search list) if the message would exceed what the
// client accepts: its maximum message size option, at least 576.
func fitDHCPv4(req, resp *dhcpv4.DHCPv4) []byte {
	limit := minDHCPv4Size
	if m, err := req.MaxMessageSize(); err == nil && int(m) > limit {
		limit = int(m)
	}
	limit -= ethframe.IPv4HeaderLen + ethframe.UDPHeaderLen
	b := resp.ToBytes()
	for _, code := range []dhcpv4.OptionCode{dhcpv4.GenericOptionCode(optionMSClasslessRoutes), dhcpv4.OptionDNSDomainSearchList} {
		if len(b) <= limit {
			break
		}
		if resp.Options.Has(code) {
			resp.Options.Del(code)
			b = resp.ToBytes()
		}
	}
	return b
}

func broadcast4(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	n := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) | host
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

func describe4(p *plan) string {
	if !p.addr4.IsValid() {
		return "none"
	}
	return p.addr4.String()
}
