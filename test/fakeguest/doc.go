// Package fakeguest is a fake VM guest for netbridge's end-to-end tests. It
// plays the part of a VMM plus guest kernel on a tap device: it holds the
// tap's queue file(s), reads Ethernet frames (stripping the 10-byte
// virtio_net_hdr that taps opened with IFF_VNET_HDR prepend) and answers
//
//   - ARP requests for its IPv4 addresses,
//   - ICMP echo requests (IPv4 header options and Ethernet padding are
//     handled; checksums are verified and recomputed),
//   - IPv6 neighbour solicitations for its addresses, sent to the address
//     itself or to its solicited-node multicast group, with a solicited,
//     override neighbour advertisement carrying a target link-layer option,
//   - ICMPv6 echo requests (checksum over the IPv6 pseudo-header).
//
// It can also send frames of its own ([Guest.Send]) and ping
// ([Guest.Ping]), resolving its gateway with ARP or neighbour discovery,
// which proves that frames the guest sends reach the node. Counters
// ([Guest.Stats]) and optional recording of received frames
// ([WithRecord], [Guest.WaitFrame]) support assertions.
//
// Frames up to 65535 bytes are handled, enough for 9000-byte MTUs. The
// packet parsing and building code is pure and tested without root; the
// tests that use real taps need root and skip otherwise.
package fakeguest
