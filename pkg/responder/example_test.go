package responder_test

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/netbridge/netbridge/pkg/ethframe"
	"github.com/netbridge/netbridge/pkg/responder"
)

// Example shows the shape of a frame loop: every frame the guest sends goes
// to Handle, every frame it returns goes back to the guest; Advertise runs
// on a timer. Here the guest's frame is a DHCPDISCOVER built in place.
func Example() {
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	r, err := responder.New(responder.Config{
		MAC:    mac,
		MTU:    1500,
		IPv4:   []netip.Prefix{netip.MustParsePrefix("10.1.0.5/24")},
		Routes: []responder.Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.1.0.1")}},
		DNS:    responder.DNS{Servers: []netip.Addr{netip.MustParseAddr("10.96.0.10")}},
	})
	if err != nil {
		panic(err)
	}

	discover, _ := dhcpv4.NewDiscovery(mac)
	frame, _ := ethframe.UDP4(mac, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		netip.IPv4Unspecified(), netip.MustParseAddr("255.255.255.255"), 68, 67, discover.ToBytes())

	for _, reply := range r.Handle(frame, time.Now()) {
		p, _ := ethframe.Parse(reply)
		offer, _ := dhcpv4.FromBytes(p.Payload)
		fmt.Println(offer.MessageType(), offer.YourIPAddr, "router", offer.Router()[0], "to", p.Dst)
	}
	// Output: OFFER 10.1.0.5 router 10.1.0.1 to 52:54:00:12:34:56
}
