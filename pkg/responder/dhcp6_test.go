package responder

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

type iaView struct {
	id     byte
	t1, t2 time.Duration
	addrs  []string // "addr pref valid"
	status iana.StatusCode
}

func viewIAs(m *dhcpv6.Message) []iaView {
	var out []iaView
	for _, ia := range m.Options.IANA() {
		v := iaView{id: ia.IaId[3], t1: ia.T1, t2: ia.T2, status: iana.StatusSuccess}
		for _, a := range ia.Options.Addresses() {
			v.addrs = append(v.addrs, a.IPv6Addr.String()+" "+a.PreferredLifetime.String()+" "+a.ValidLifetime.String())
		}
		if s := ia.Options.Status(); s != nil {
			v.status = s.StatusCode
		}
		out = append(out, v)
	}
	return out
}

func status6(m *dhcpv6.Message) iana.StatusCode {
	if s := m.Options.Status(); s != nil {
		return s.StatusCode
	}
	return iana.StatusSuccess
}

func TestDHCPv6SolicitAdvertise(t *testing.T) {
	r := mustNew(t, bridgeConfig())
	p := one(t, r, r.Handle(dhcp6Req(t, dhcp6Msg(t, dhcpv6.MessageTypeSolicit, iaNA(7))), t0))
	if p.SrcIP != LinkLocalFromMAC(r.ResponderMAC()) || p.DstIP != guestLL || p.EtherType != 0x86dd {
		t.Errorf("ADVERTISE %s -> %s, want the responder's link-local -> the client's", p.SrcIP, p.DstIP)
	}
	m := decode6(t, p)
	if m.MessageType != dhcpv6.MessageTypeAdvertise || m.TransactionID != (dhcpv6.TransactionID{9, 8, 7}) {
		t.Fatalf("got %s xid %v", m.MessageType, m.TransactionID)
	}
	if m.Options.Preference() != 255 {
		t.Errorf("preference %d, want 255", m.Options.Preference())
	}
	if cid := m.Options.ClientID(); cid == nil || !cid.Equal(clientDUID) {
		t.Errorf("client id %v not echoed", cid)
	}
	sid, ok := m.Options.ServerID().(*dhcpv6.DUIDLL)
	if !ok || !bytes.Equal(sid.LinkLayerAddr, r.ResponderMAC()) {
		t.Errorf("server id %v, want a DUID-LL of the responder MAC", m.Options.ServerID())
	}
	ias := viewIAs(m)
	if len(ias) != 1 || ias[0].id != 7 || ias[0].t1 != 5*time.Minute || ias[0].t2 != 8*time.Minute ||
		strings.Join(ias[0].addrs, ",") != "fd00:1::5 10m0s 10m0s" {
		t.Errorf("IA_NA %+v", ias)
	}
	if dns := m.Options.DNS(); len(dns) != 1 || dns[0].String() != "fd00:96::a" {
		t.Errorf("DNS %v, want the IPv6 server only", dns)
	}
	if sl := m.Options.DomainSearchList(); sl == nil || strings.Join(sl.Labels, " ") != "default.svc.cluster.local svc.cluster.local cluster.local" {
		t.Errorf("domain list %v", sl)
	}
}

func TestDHCPv6RapidCommit(t *testing.T) {
	r := mustNew(t, bridgeConfig())
	rc := &dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionRapidCommit}
	m := decode6(t, one(t, r, r.Handle(dhcp6Req(t, dhcp6Msg(t, dhcpv6.MessageTypeSolicit, iaNA(1), rc)), t0)))
	if m.MessageType != dhcpv6.MessageTypeReply || m.GetOneOption(dhcpv6.OptionRapidCommit) == nil {
		t.Errorf("rapid-commit SOLICIT answered with %s (rapid commit %v)", m.MessageType, m.GetOneOption(dhcpv6.OptionRapidCommit))
	}
	if ias := viewIAs(m); len(ias) != 1 || len(ias[0].addrs) != 1 {
		t.Errorf("IA_NA %+v", ias)
	}
}

func TestDHCPv6SeveralAddressesAndIAs(t *testing.T) {
	c := bridgeConfig()
	c.IPv6 = append(c.IPv6, pfx("2001:db8:5::5/64"))
	r := mustNew(t, c)
	req := dhcp6Msg(t, dhcpv6.MessageTypeRequest, serverIDOf(r), iaNA(1), iaNA(2),
		&dhcpv6.OptIATA{IaId: [4]byte{0, 0, 0, 3}}, &dhcpv6.OptIAPD{IaId: [4]byte{0, 0, 0, 4}})
	m := decode6(t, one(t, r, r.Handle(dhcp6Req(t, req), t0)))
	ias := viewIAs(m)
	if len(ias) != 2 || len(ias[0].addrs) != 2 || ias[0].status != iana.StatusSuccess ||
		len(ias[1].addrs) != 0 || ias[1].status != iana.StatusNoAddrsAvail {
		t.Errorf("IA_NAs %+v: want both addresses in the first, NoAddrsAvail in the second", ias)
	}
	if ta := m.Options.OneIATA(); ta == nil || ta.Options.Status() == nil || ta.Options.Status().StatusCode != iana.StatusNoAddrsAvail {
		t.Errorf("IA_TA %v, want NoAddrsAvail", ta)
	}
	if pd := m.Options.OneIAPD(); pd == nil || pd.Options.Status() == nil || pd.Options.Status().StatusCode != iana.StatusNoPrefixAvail {
		t.Errorf("IA_PD %v, want NoPrefixAvail", pd)
	}
}

func TestDHCPv6ServerIdentifierRules(t *testing.T) {
	r := mustNew(t, bridgeConfig())
	other := dhcpv6.OptServerID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: otherMAC})
	for _, tc := range []struct {
		name string
		msg  *dhcpv6.Message
		want dhcpv6.MessageType // 0: dropped
	}{
		{"request ours", dhcp6Msg(t, dhcpv6.MessageTypeRequest, serverIDOf(r), iaNA(1)), dhcpv6.MessageTypeReply},
		{"request another server", dhcp6Msg(t, dhcpv6.MessageTypeRequest, other, iaNA(1)), 0},
		{"request no server id", dhcp6Msg(t, dhcpv6.MessageTypeRequest, iaNA(1)), 0},
		{"renew another server", dhcp6Msg(t, dhcpv6.MessageTypeRenew, other, iaNA(1)), 0},
		{"solicit with server id", dhcp6Msg(t, dhcpv6.MessageTypeSolicit, serverIDOf(r), iaNA(1)), 0},
		{"rebind with server id", dhcp6Msg(t, dhcpv6.MessageTypeRebind, serverIDOf(r), iaNA(1)), 0},
		{"release ours", dhcp6Msg(t, dhcpv6.MessageTypeRelease, serverIDOf(r), iaNA(1, "fd00:1::5")), dhcpv6.MessageTypeReply},
		{"release no server id", dhcp6Msg(t, dhcpv6.MessageTypeRelease, iaNA(1, "fd00:1::5")), 0},
		{"information-request", dhcp6Msg(t, dhcpv6.MessageTypeInformationRequest), dhcpv6.MessageTypeReply},
		{"information-request ours", dhcp6Msg(t, dhcpv6.MessageTypeInformationRequest, serverIDOf(r)), dhcpv6.MessageTypeReply},
		{"information-request another", dhcp6Msg(t, dhcpv6.MessageTypeInformationRequest, other), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := r.Handle(dhcp6Req(t, tc.msg), t0)
			if tc.want == 0 {
				none(t, out)
				return
			}
			if m := decode6(t, one(t, r, out)); m.MessageType != tc.want {
				t.Errorf("got %s, want %s", m.MessageType, tc.want)
			}
		})
	}
}

// TestDHCPv6RenewAfterChange checks that a renewal after SetConfig returns
// the old address with lifetime 0 and the new one, and that a rebinding
// does the same.
func TestDHCPv6RenewAfterChange(t *testing.T) {
	c := bridgeConfig()
	r := mustNew(t, c)
	renew := dhcp6Msg(t, dhcpv6.MessageTypeRenew, serverIDOf(r), iaNA(1, "fd00:1::5"))
	if ias := viewIAs(decode6(t, one(t, r, r.Handle(dhcp6Req(t, renew), t0)))); len(ias) != 1 || strings.Join(ias[0].addrs, ",") != "fd00:1::5 10m0s 10m0s" {
		t.Fatalf("renewal before the change: %+v", ias)
	}
	c.IPv6 = []netip.Prefix{pfx("fd00:2::9/64")}
	if err := r.SetConfig(c); err != nil {
		t.Fatal(err)
	}
	for _, msg := range []*dhcpv6.Message{renew, dhcp6Msg(t, dhcpv6.MessageTypeRebind, iaNA(1, "fd00:1::5"))} {
		ias := viewIAs(decode6(t, one(t, r, r.Handle(dhcp6Req(t, msg), t0))))
		if len(ias) != 1 || strings.Join(ias[0].addrs, ",") != "fd00:2::9 10m0s 10m0s,fd00:1::5 0s 0s" {
			t.Errorf("%s after the change: %+v", msg.MessageType, ias)
		}
	}
	// No address left: the old one gets lifetime 0.
	c.IPv6 = nil
	if err := r.SetConfig(c); err != nil {
		t.Fatal(err)
	}
	ias := viewIAs(decode6(t, one(t, r, r.Handle(dhcp6Req(t, renew), t0))))
	if len(ias) != 1 || strings.Join(ias[0].addrs, ",") != "fd00:1::5 0s 0s" {
		t.Errorf("renewal with no address: %+v", ias)
	}
	// And a SOLICIT is not answered.
	none(t, r.Handle(dhcp6Req(t, dhcp6Msg(t, dhcpv6.MessageTypeSolicit, iaNA(1))), t0))
}

func TestDHCPv6Confirm(t *testing.T) {
	r := mustNew(t, bridgeConfig())
	for _, tc := range []struct {
		name string
		ia   *dhcpv6.OptIANA
		want iana.StatusCode
		none bool
	}{
		{"on-link", iaNA(1, "fd00:1::5"), iana.StatusSuccess, false},
		{"on-link other address", iaNA(1, "fd00:1::77"), iana.StatusSuccess, false},
		{"moved", iaNA(1, "fd00:9::5"), iana.StatusNotOnLink, false},
		{"no addresses", iaNA(1), 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := r.Handle(dhcp6Req(t, dhcp6Msg(t, dhcpv6.MessageTypeConfirm, tc.ia)), t0)
			if tc.none {
				none(t, out)
				return
			}
			m := decode6(t, one(t, r, out))
			if m.MessageType != dhcpv6.MessageTypeReply || status6(m) != tc.want || len(m.Options.IANA()) != 0 {
				t.Errorf("got %s status %s, want Reply %s without IAs", m.MessageType, status6(m), tc.want)
			}
		})
	}
}

func TestDHCPv6ReleaseDeclineInformation(t *testing.T) {
	r := mustNew(t, bridgeConfig())
	m := decode6(t, one(t, r, r.Handle(dhcp6Req(t, dhcp6Msg(t, dhcpv6.MessageTypeDecline, serverIDOf(r), iaNA(1, "fd00:1::5"))), t0)))
	if m.MessageType != dhcpv6.MessageTypeReply || status6(m) != iana.StatusSuccess || m.Options.Status() == nil {
		t.Errorf("DECLINE answered %s status %v", m.MessageType, m.Options.Status())
	}
	if r.Stats().Declined != 1 {
		t.Errorf("stats %+v, want 1 declined", r.Stats())
	}
	m = decode6(t, one(t, r, r.Handle(dhcp6Req(t, dhcp6Msg(t, dhcpv6.MessageTypeInformationRequest)), t0)))
	if len(m.Options.DNS()) != 1 || m.Options.DomainSearchList() == nil || m.Options.InformationRefreshTime(0) != DefaultLeaseTime || len(m.Options.IANA()) != 0 {
		t.Errorf("INFORMATION-REQUEST reply: %s", m.Summary())
	}
	// An INFORMATION-REQUEST with an IA is malformed.
	none(t, r.Handle(dhcp6Req(t, dhcp6Msg(t, dhcpv6.MessageTypeInformationRequest, iaNA(1))), t0))
}

func TestDHCPv6BadInput(t *testing.T) {
	r := mustNew(t, bridgeConfig())
	sol := dhcp6Msg(t, dhcpv6.MessageTypeSolicit, iaNA(1)).ToBytes()
	noCID := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeSolicit, TransactionID: dhcpv6.TransactionID{1, 1, 1}}
	noCID.AddOption(iaNA(1))
	relay, err := dhcpv6.EncapsulateRelay(dhcp6Msg(t, dhcpv6.MessageTypeSolicit, iaNA(1)), dhcpv6.MessageTypeRelayForward, net.ParseIP("fd00::1"), net.ParseIP("fe80::1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		frame []byte
		want  string
	}{
		{"global source", dhcp6Frame(t, guestMAC, ip("fd00:1::5"), sol), "unsupported"},
		{"another MAC", dhcp6Frame(t, otherMAC, guestLL, sol), "notguest"},
		{"empty", dhcp6Frame(t, guestMAC, guestLL, nil), "malformed"},
		{"header only", dhcp6Frame(t, guestMAC, guestLL, sol[:4]), "malformed"},
		{"truncated option", dhcp6Frame(t, guestMAC, guestLL, sol[:len(sol)-3]), "malformed"},
		{"option length past the end", dhcp6Frame(t, guestMAC, guestLL, append(sol[:4:4], 0, 1, 0xff, 0xff, 1)), "malformed"},
		{"no client id", dhcp6Req(t, noCID), "malformed"},
		{"relay-forward", dhcp6Frame(t, guestMAC, guestLL, relay.ToBytes()), "unsupported"},
		{"advertise from the guest", dhcp6Req(t, dhcp6Msg(t, dhcpv6.MessageTypeAdvertise)), "unsupported"},
		{"reconfigure from the guest", dhcp6Req(t, dhcp6Msg(t, dhcpv6.MessageTypeReconfigure)), "unsupported"},
		{"unknown type", dhcp6Req(t, dhcp6Msg(t, dhcpv6.MessageType(200))), "unsupported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := r.Stats()
			none(t, r.Handle(tc.frame, t0))
			d := statsDelta(before, r.Stats())
			got := ""
			switch {
			case d.Malformed == 1:
				got = "malformed"
			case d.Unsupported == 1:
				got = "unsupported"
			case d.NotGuest == 1:
				got = "notguest"
			}
			if got != tc.want || d.Frames != 1 {
				t.Errorf("stats delta %+v, want one %s", d, tc.want)
			}
		})
	}
}
