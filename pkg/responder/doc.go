// Package responder serves one guest NIC its own network configuration by
// DHCPv4, DHCPv6 and IPv6 router advertisements, so a stock guest image
// whose DHCP client runs at boot ends with exactly what the CNI interface
// in the pod has: addresses and prefixes, routes, MTU and DNS.
//
// A [Responder] is pure: it takes one Ethernet frame the guest sent
// ([Responder.Handle]) and returns the frames to send back, or none; it
// opens no socket, starts no goroutine and reads the clock only through
// the time its caller passes. Whatever carries frames (a tap's file
// descriptor, a packet socket, a test) feeds it. It imports no other
// netbridge package but [github.com/netbridge/netbridge/pkg/ethframe].
//
// # Who is answered
//
// Only the guest: a frame whose Ethernet source is not [Config].MAC is
// dropped, so is a DHCPv4 request whose client hardware address is not that
// MAC or whose client identifier is an Ethernet address (type 1) other than
// it. Client identifiers of other types (RFC 4361 IAID+DUID, as
// systemd-networkd and dhcpcd send by default) and DHCPv6 DUIDs are
// accepted: they name the client, not the link, and the Ethernet source
// already binds the request to the NIC. Every reply's Ethernet destination
// is the guest's MAC, even when its IP destination is a broadcast or
// multicast address; its Ethernet source is [Config].ResponderMAC, a
// locally administered address no network knows. Requests are rate limited
// per NIC (a token bucket, [DefaultRate] per second, bursts of
// [DefaultBurst]); truncated, oversized, relayed or unknown messages are
// dropped and counted in [Stats].
//
// # DHCPv4
//
// DISCOVER gets an OFFER of the NIC's first IPv4 address; REQUEST in every
// client state (selecting, init-reboot, renewing, rebinding) gets an ACK
// when it asks for that address and a NAK otherwise, so a client that
// renews an address the NIC no longer has starts over and gets the new
// one. Clients ignore a NAK from a server other than theirs, so a NAK
// carries the server identifier the client used (the renewal's
// destination, or the one it names); a broadcast rebinding gets one NAK
// per server identifier the responder has used lately (after a gateway
// change the identifier changes with it). INFORM gets an ACK with the configuration and no lease; RELEASE and
// DECLINE get nothing (a DECLINE is counted: the address is in use
// elsewhere). Options: subnet mask (1), broadcast address (28), lease time
// (51) with T1 (58, half of it) and T2 (59, seven eighths), server
// identifier (54), router (3) only when the interface has a default route
// through a gateway, every route as classless static routes (121, with the
// default route, on-link routes with router 0.0.0.0, on-link routes first,
// and a host route to any gateway not otherwise reachable, as a /32
// address with an "onlink" gateway needs), the same as 249 to clients that
// ask for it, MTU (26), DNS servers (6), the first search domain as domain
// name (15) and all of them as domain search (119), the client identifier
// echoed (RFC 6842). A reply that would exceed the client's maximum
// message size (at least 576) leaves out 249, then 119.
//
// DHCP gives one address per client: a NIC with several IPv4 addresses gets
// the first by DHCP; the others must reach the guest another way (the
// guest network document). Resolver options (ndots and the like) have no
// DHCP or ND option and are not sent.
//
// The lease is [DefaultLeaseTime], 10 minutes: a client renews every 5
// minutes, so a change in the pod reaches the guest within 5 minutes, at
// the cost of one small exchange per NIC every 5 minutes; and a guest keeps
// its address through a responder outage of 5 to 10 minutes (a restart of
// the process that runs it). No standard pushes a change sooner to a stock
// client: FORCERENEW (RFC 3203) and DHCPv6 RECONFIGURE need authentication
// that clients do not set up; router advertisements, which do carry
// changes at once, are sent by [Responder.Advertise].
//
// # IPv6
//
// With the tcfilter model the guest's frames leave the pod's interface
// unchanged, so whatever router the guest learns must be one the CNI
// network really has: a next hop only the responder knew would be
// resolved by neighbour solicitations no one answers. So router
// advertisements name the real gateway:
//
//   - their IPv6 source is the real gateway's link-local address
//     ([Gateway].LinkLocal, learnt from the pod's routes — Calico-style
//     pods route through a link-local gateway already — or neighbour
//     table, or derived with [LinkLocalFromMAC] from its MAC and checked by
//     a neighbour solicitation), and their source link-layer address option
//     is the real gateway's MAC: the guest's default route is "via
//     fe80::gateway", its neighbour entry points at the gateway's MAC, and
//     its later neighbour solicitations for that address reach the real
//     gateway, which answers them itself;
//   - the router lifetime is non-zero only when the pod has an IPv6 default
//     route through that gateway; other routes through it become route
//     information options (RFC 4191; a Linux kernel takes them only when
//     accept_ra_rt_info_max_plen allows, user-space clients always), routes
//     through other gateways are not advertised;
//   - M is set, and each prefix of the NIC's addresses is advertised
//     on-link without the autonomous flag: the guest takes its addresses
//     from DHCPv6 only, exactly the CNI's, never one it would make up; O
//     is set, and RDNSS and DNSSL options carry DNS for clients that read
//     them; the MTU option carries the interface MTU;
//   - without a known gateway link-local address, advertisements come from
//     the responder's own link-local address (from [Config].ResponderMAC)
//     with router lifetime 0: the guest gets addresses, prefixes, MTU and
//     DNS, and no IPv6 default route rather than a broken one.
//
// A router solicitation is answered by unicast; [Responder.Advertise] makes
// the unsolicited ones and says when to call it again (three 16 s apart,
// then every [AdvertiseInterval], never two within 3 s: RFC 4861's
// timing); the caller also calls it right after [Responder.SetConfig].
// After a change, withdrawn prefixes, routes and DNS servers, or a whole
// router whose address changed, are advertised with lifetime 0 three
// times.
//
// DHCPv6 (RFC 8415) answers SOLICIT (ADVERTISE with preference 255, or
// REPLY at once with rapid commit), REQUEST, RENEW, REBIND (with the NIC's
// addresses in the client's first IA_NA, lifetimes [DefaultLeaseTime], T1
// half and T2 four fifths of it, and addresses the NIC no longer has with
// lifetime 0), CONFIRM (on-link or not), RELEASE, DECLINE and
// INFORMATION-REQUEST (DNS servers, domain list, information refresh time);
// IA_TA and IA_PD get NoAddrsAvail and NoPrefixAvail. The server DUID is a
// DUID-LL of the responder MAC, the same across restarts.
//
// If the real router also sends advertisements and they reach the guest,
// they come from the same link-local address, so the guest sees one
// router whose parameters are those of the last advertisement it got; a
// prefix it advertises as autonomous would give the guest one more
// address. Whatever carries frames should keep the real router's
// advertisements from the guest (and the guest's solicitations from the
// network), so the guest hears only the responder.
package responder
