package responder

import (
	"bytes"
	"net"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/insomniacslk/dhcp/rfc1035label"

	"github.com/netbridge/netbridge/pkg/ethframe"
)

// dhcp6HopLimit is the hop limit of DHCPv6 replies (link-local, so any
// value reaches the guest).
const dhcp6HopLimit = 64

// serverIDRule is what a DHCPv6 message type requires of the Server
// Identifier option (RFC 8415 section 16).
type serverIDRule int

const (
	serverIDAbsent   serverIDRule = iota // discard if present
	serverIDOurs                         // discard unless present and ours
	serverIDOptional                     // discard if present and not ours
)

// dhcp6 answers one DHCPv6 message (RFC 8415) from the guest.
func (r *Responder) dhcp6(p *plan, pkt ethframe.Packet) ([][]byte, outcome) {
	if !pkt.SrcIP.IsLinkLocalUnicast() {
		// Clients send from their link-local address; we send no Server
		// Unicast option, so nothing else is expected.
		return nil, unsupported
	}
	if len(pkt.Payload) > 0 && (pkt.Payload[0] == byte(dhcpv6.MessageTypeRelayForward) || pkt.Payload[0] == byte(dhcpv6.MessageTypeRelayReply)) {
		return nil, unsupported
	}
	msg, err := dhcpv6.MessageFromBytes(pkt.Payload)
	if err != nil {
		return nil, malformedMsg
	}
	if o, ok := acceptDHCPv6(p, msg); !ok {
		return nil, o
	}

	reply := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeReply, TransactionID: msg.TransactionID}
	if cid := msg.GetOneOption(dhcpv6.OptionClientID); cid != nil {
		reply.AddOption(cid)
	}
	reply.AddOption(dhcpv6.OptServerID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr(p.respMAC)}))
	config := true
	switch msg.MessageType {
	case dhcpv6.MessageTypeSolicit:
		if len(p.addrs6) == 0 {
			return nil, unsupported
		}
		if msg.GetOneOption(dhcpv6.OptionRapidCommit) != nil {
			reply.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionRapidCommit})
		} else {
			reply.MessageType = dhcpv6.MessageTypeAdvertise
			// The highest preference: the client need not wait for others.
			reply.AddOption(dhcpv6.OptPreference(255))
		}
		if !addIAs(p, msg, reply) {
			reply.AddOption(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoAddrsAvail, StatusMessage: "no addresses for these IAs"})
		}
	case dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRebind:
		addIAs(p, msg, reply)
	case dhcpv6.MessageTypeConfirm:
		config = false
		status, ok := confirm(p, msg)
		if !ok {
			return nil, unsupported
		}
		reply.AddOption(status)
	case dhcpv6.MessageTypeRelease, dhcpv6.MessageTypeDecline:
		config = false
		if msg.MessageType == dhcpv6.MessageTypeDecline {
			r.stats.Declined++
		}
		reply.AddOption(&dhcpv6.OptStatusCode{StatusCode: iana.StatusSuccess})
	case dhcpv6.MessageTypeInformationRequest:
		reply.AddOption(dhcpv6.OptInformationRefreshTime(p.lease))
	}
	if config {
		addDNS6(p, reply)
	}
	f, err := ethframe.UDP6(p.respMAC, p.mac, p.respLL, pkt.SrcIP.WithZone(""), dhcp6HopLimit, portDHCPv6Server, pkt.SrcPort, reply.ToBytes())
	if err != nil {
		return nil, unsupported
	}
	return [][]byte{f}, answered
}

// addIAs answers the client's identity associations: the first IA_NA gets
// every address of the NIC (and, on a renewal or rebinding, the addresses
// it listed that are no longer the NIC's with lifetime 0, RFC 8415
// 18.3.4); other IA_NAs, IA_TAs and IA_PDs get a status saying there is
// nothing for them. It reports whether any address was given.
func addIAs(p *plan, msg *dhcpv6.Message, reply *dhcpv6.Message) bool {
	given := false
	renewal := msg.MessageType == dhcpv6.MessageTypeRenew || msg.MessageType == dhcpv6.MessageTypeRebind
	for i, ia := range msg.Options.IANA() {
		out := &dhcpv6.OptIANA{IaId: ia.IaId}
		if i == 0 && len(p.addrs6) > 0 {
			out.T1, out.T2 = p.lease/2, p.lease*4/5
			for _, a := range p.addrs6 {
				out.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: a.Addr().AsSlice(), PreferredLifetime: p.lease, ValidLifetime: p.lease})
			}
			given = true
		} else if !renewal {
			out.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoAddrsAvail, StatusMessage: "the NIC's addresses are in another IA_NA"})
		}
		if renewal {
			for _, old := range ia.Options.Addresses() {
				a, ok := netip.AddrFromSlice(old.IPv6Addr)
				if !ok || (i == 0 && isAddr6(p, a)) {
					continue
				}
				out.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: old.IPv6Addr})
			}
			if i > 0 && msg.MessageType == dhcpv6.MessageTypeRenew {
				out.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoBinding, StatusMessage: "no addresses in this IA_NA"})
			}
		}
		reply.AddOption(out)
	}
	if msg.MessageType != dhcpv6.MessageTypeSolicit && len(p.addrs6) == 0 && len(msg.Options.IANA()) > 0 && !renewal {
		reply.AddOption(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoAddrsAvail, StatusMessage: "this NIC has no IPv6 address"})
	}
	for _, ia := range msg.Options.IATA() {
		reply.AddOption(&dhcpv6.OptIATA{IaId: ia.IaId, Options: dhcpv6.IdentityOptions{Options: dhcpv6.Options{
			&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoAddrsAvail, StatusMessage: "no temporary addresses"},
		}}})
	}
	for _, ia := range msg.Options.IAPD() {
		reply.AddOption(&dhcpv6.OptIAPD{IaId: ia.IaId, Options: dhcpv6.PDOptions{Options: dhcpv6.Options{
			&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoPrefixAvail, StatusMessage: "no prefix delegation"},
		}}})
	}
	return given
}

func isAddr6(p *plan, a netip.Addr) bool {
	for _, x := range p.addrs6 {
		if x.Addr() == a {
			return true
		}
	}
	return false
}

// confirm answers a CONFIRM (RFC 8415 18.3.3): Success when every address
// the client lists is on this link, NotOnLink otherwise; ok is false when
// there is nothing to check (no addresses listed, or none configured), in
// which case no reply is sent.
func confirm(p *plan, msg *dhcpv6.Message) (status *dhcpv6.OptStatusCode, ok bool) {
	if len(p.addrs6) == 0 {
		return nil, false
	}
	var addrs []*dhcpv6.OptIAAddress
	for _, ia := range msg.Options.IANA() {
		addrs = append(addrs, ia.Options.Addresses()...)
	}
	for _, ia := range msg.Options.IATA() {
		addrs = append(addrs, ia.Options.Addresses()...)
	}
	if len(addrs) == 0 {
		return nil, false
	}
	for _, o := range addrs {
		a, _ := netip.AddrFromSlice(o.IPv6Addr)
		onLink := false
		for _, x := range p.addrs6 {
			if x.Contains(a) {
				onLink = true
				break
			}
		}
		if !onLink {
			return &dhcpv6.OptStatusCode{StatusCode: iana.StatusNotOnLink, StatusMessage: a.String() + " is not on this link"}, true
		}
	}
	return &dhcpv6.OptStatusCode{StatusCode: iana.StatusSuccess}, true
}

// acceptDHCPv6 checks msg against the rules of RFC 8415 for the options a
// client must send or must not send with each message type, and the
// server identifier (ours, or none where none belongs). It returns the
// outcome to count and false for a message not to answer.
func acceptDHCPv6(p *plan, msg *dhcpv6.Message) (outcome, bool) {
	var rule serverIDRule
	clientIDRequired := true
	switch msg.MessageType {
	case dhcpv6.MessageTypeSolicit, dhcpv6.MessageTypeConfirm, dhcpv6.MessageTypeRebind:
		rule = serverIDAbsent
	case dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRelease, dhcpv6.MessageTypeDecline:
		rule = serverIDOurs
	case dhcpv6.MessageTypeInformationRequest:
		rule, clientIDRequired = serverIDOptional, false
		if len(msg.Options.Get(dhcpv6.OptionIANA)) > 0 || len(msg.Options.Get(dhcpv6.OptionIATA)) > 0 || len(msg.Options.Get(dhcpv6.OptionIAPD)) > 0 {
			return malformedMsg, false
		}
	default:
		return unsupported, false
	}
	if clientIDRequired && msg.GetOneOption(dhcpv6.OptionClientID) == nil {
		return malformedMsg, false
	}
	sid := msg.Options.ServerID()
	switch {
	case rule == serverIDAbsent && sid != nil:
		return malformedMsg, false
	case rule == serverIDOurs && sid == nil:
		return malformedMsg, false
	case sid != nil && !bytes.Equal(sid.ToBytes(), p.duid):
		// For another server: none other is on this link, but it is not ours
		// to answer.
		return unsupported, false
	}
	return answered, true
}

// addDNS6 adds the DNS servers and search domains of p to reply.
func addDNS6(p *plan, reply *dhcpv6.Message) {
	if len(p.dns6) > 0 {
		ips := make([]net.IP, len(p.dns6))
		for i, a := range p.dns6 {
			ips[i] = a.AsSlice()
		}
		reply.AddOption(dhcpv6.OptDNS(ips...))
	}
	if len(p.search) > 0 {
		reply.AddOption(dhcpv6.OptDomainSearchList(&rfc1035label.Labels{Labels: p.search}))
	}
}
