package responder

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/netbridge/netbridge/pkg/ethframe"
)

// UDP ports and ICMPv6 types the responder answers.
const (
	portDHCPv4Server = 67
	portDHCPv4Client = 68
	portDHCPv6Server = 547
	portDHCPv6Client = 546
	icmpRS           = 133
	icmpRA           = 134
)

// finalAdvertisements is how many router advertisements carry a withdrawn
// prefix, route, DNS server or router with lifetime 0 after a change
// (RFC 4861's MAX_FINAL_RTR_ADVERTISEMENTS).
const finalAdvertisements = 3

// initialAdvertisements is how many unsolicited advertisements come at
// InitialAdvertiseInterval after New or SetConfig (RFC 4861's
// MAX_INITIAL_RTR_ADVERTISEMENTS).
const initialAdvertisements = 3

// Stats counts what a Responder did with the frames it was given. Every
// frame passed to [Responder.Handle] is counted in Frames and in exactly one
// of the other counters except Replies and Declined.
type Stats struct {
	// Frames is the number of frames given to Handle.
	Frames uint64
	// NotConfig counts frames that are no configuration request: other
	// EtherTypes, protocols, ports or ICMPv6 types, IP fragments, frames
	// longer than ethframe.MaxFrame. The responder is meant to see only
	// requests, but ignores anything else it is given.
	NotConfig uint64
	// NotGuest counts frames whose Ethernet source, or DHCPv4 client
	// hardware address, is not the guest's MAC, and DHCPv4 requests whose
	// client identifier is an Ethernet address other than the guest's.
	NotGuest uint64
	// RateLimited counts requests dropped because the NIC sent more than
	// the rate allows.
	RateLimited uint64
	// Malformed counts truncated or inconsistent frames and messages.
	Malformed uint64
	// Unsupported counts well-formed requests the responder does not
	// answer: unknown or server-side message types, relayed messages,
	// requests meant for another server, DHCPv6 from a non-link-local
	// source, or requests it has nothing to answer with.
	Unsupported uint64
	// Answered counts requests that got a reply; Silent counts valid
	// requests that need none (DHCP RELEASE and DECLINE).
	Answered, Silent uint64
	// Replies is the number of frames returned by Handle and Advertise.
	Replies uint64
	// Declined counts DHCPv4 and DHCPv6 DECLINE messages: the guest found
	// the address it was given already in use on the network.
	Declined uint64
}

// outcome is how a handler disposed of a request.
type outcome int

const (
	answered outcome = iota
	silent
	notGuest
	malformedMsg
	unsupported
)

// Responder answers the configuration requests of one guest NIC: DHCPv4,
// DHCPv6 and IPv6 router solicitations, from a [Config]. It does no I/O:
// the caller gives it each frame the guest sent, with the current time,
// and sends the frames it returns to the guest. It is safe for concurrent
// use.
type Responder struct {
	mu       sync.Mutex
	p        *plan
	tokens   float64
	last     time.Time
	stats    Stats
	withdraw *plan        // the plan before the last SetConfig, while withdrawals are due
	finals   int          // router advertisements still to carry withdrawals
	servers4 []netip.Addr // DHCPv4 server identifiers used, newest first

	lastRA     time.Time // when Advertise last sent an advertisement
	initialRAs int       // advertisements Advertise sent since New or SetConfig
}

// maxServerIDs bounds how many past DHCPv4 server identifiers a Responder
// remembers (and so how many NAKs one request can get).
const maxServerIDs = 4

// noteServer4 makes s the newest server identifier.
func (r *Responder) noteServer4(s netip.Addr) {
	r.servers4 = slices.DeleteFunc(r.servers4, func(a netip.Addr) bool { return a == s })
	r.servers4 = append([]netip.Addr{s}, r.servers4...)
	if len(r.servers4) > maxServerIDs {
		r.servers4 = r.servers4[:maxServerIDs]
	}
}

// New returns a Responder for cfg, or an error wrapping
// [ErrInvalidConfig] saying what in cfg is wrong.
func New(cfg Config) (*Responder, error) {
	p, err := newPlan(cfg)
	if err != nil {
		return nil, fmt.Errorf("responder for guest NIC %s: %w", cfg.MAC, err)
	}
	r := &Responder{p: p, tokens: float64(p.burst)}
	r.noteServer4(p.server4)
	return r, nil
}

// SetConfig replaces the configuration, for instance after an address or
// route changed in the pod. DHCP clients learn of it at their next renewal
// (a DHCPv4 renewal of an address that is no longer the NIC's is refused
// with a NAK, so the client starts over and gets the new one; a DHCPv6
// renewal gets the old addresses with lifetime 0 and the new ones). Call
// [Responder.Advertise] right after it: router advertisements carry
// changes at once, withdrawn prefixes, routes and DNS servers with lifetime
// 0. The guest MAC cannot change: a NIC with another MAC gets its own
// Responder.
func (r *Responder) SetConfig(cfg Config) error {
	p, err := newPlan(cfg)
	if err != nil {
		return fmt.Errorf("updating responder for guest NIC %s: %w", cfg.MAC, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !bytes.Equal(p.mac, r.p.mac) {
		return fmt.Errorf("updating responder for guest NIC %s: %w: the guest MAC cannot change to %s; make a new responder", r.p.mac, ErrInvalidConfig, p.mac)
	}
	if r.p.hasIPv6 {
		r.withdraw, r.finals = r.p, finalAdvertisements
	}
	r.p = p
	r.noteServer4(p.server4)
	r.initialRAs = 0
	if r.tokens > float64(p.burst) {
		r.tokens = float64(p.burst)
	}
	return nil
}

// Stats returns the counters so far.
func (r *Responder) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// ResponderMAC returns the Ethernet source address of the frames the
// responder sends.
func (r *Responder) ResponderMAC() net.HardwareAddr {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.p.respMAC)
}

// Handle takes one Ethernet frame (without FCS) the guest sent and returns
// the frames to send back to the guest, usually one, or none. now is the
// current time, used only for rate limiting. Handle never fails: a frame
// that is not a well-formed configuration request from the guest's MAC is
// dropped and counted in [Stats].
func (r *Responder) Handle(frame []byte, now time.Time) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Frames++
	p := r.p
	if len(frame) >= 12 && !bytes.Equal(frame[6:12], p.mac) {
		r.stats.NotGuest++
		return nil
	}
	pkt, err := ethframe.Parse(frame)
	if err != nil {
		if errors.Is(err, ethframe.ErrMalformed) {
			r.stats.Malformed++
		} else {
			r.stats.NotConfig++
		}
		return nil
	}
	var handler func(*plan, ethframe.Packet) ([][]byte, outcome)
	switch {
	case pkt.EtherType == ethframe.EtherTypeIPv4 && pkt.Proto == ethframe.ProtoUDP && pkt.DstPort == portDHCPv4Server:
		handler = r.dhcp4
	case pkt.EtherType == ethframe.EtherTypeIPv6 && pkt.Proto == ethframe.ProtoUDP && pkt.DstPort == portDHCPv6Server:
		handler = r.dhcp6
	case pkt.EtherType == ethframe.EtherTypeIPv6 && pkt.Proto == ethframe.ProtoICMPv6 && pkt.Payload[0] == icmpRS:
		handler = r.routerSolicitation
	default:
		r.stats.NotConfig++
		return nil
	}
	if !r.take(now) {
		r.stats.RateLimited++
		return nil
	}
	out, o := handler(p, pkt)
	switch o {
	case answered:
		r.stats.Answered++
	case silent:
		r.stats.Silent++
	case notGuest:
		r.stats.NotGuest++
	case malformedMsg:
		r.stats.Malformed++
	default:
		r.stats.Unsupported++
	}
	r.stats.Replies += uint64(len(out))
	return out
}

// Advertise returns the unsolicited router advertisement(s) due at now,
// and when to call it next: the caller sleeps until next (adding jitter if
// it likes) and calls it again, and also calls it right after
// [Responder.SetConfig], whatever next said, so a change reaches the guest
// at once. The first three after New or SetConfig come every
// [InitialAdvertiseInterval], later ones every [AdvertiseInterval];
// a call less than [MinDelayBetweenAdvertisements] after the previous
// advertisement returns nothing (RFC 4861 section 6.2.6) and next is when
// it may. Nothing is returned when the NIC has no IPv6 configuration and
// none to withdraw.
func (r *Responder) Advertise(now time.Time) (frames [][]byte, next time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.lastRA.IsZero() && !now.Before(r.lastRA) && now.Sub(r.lastRA) < MinDelayBetweenAdvertisements {
		return nil, r.lastRA.Add(MinDelayBetweenAdvertisements)
	}
	frames = r.advertisements(r.p, netip.IPv6LinkLocalAllNodes())
	if len(frames) == 0 {
		return nil, now.Add(AdvertiseInterval)
	}
	r.lastRA = now
	r.stats.Replies += uint64(len(frames))
	r.initialRAs++
	if r.initialRAs <= initialAdvertisements || r.finals > 0 {
		return frames, now.Add(InitialAdvertiseInterval)
	}
	return frames, now.Add(AdvertiseInterval)
}

// take reports whether a token is available at now, and spends it.
func (r *Responder) take(now time.Time) bool {
	p := r.p
	if !r.last.IsZero() && now.After(r.last) {
		r.tokens += now.Sub(r.last).Seconds() * float64(p.rate)
		if r.tokens > float64(p.burst) {
			r.tokens = float64(p.burst)
		}
	}
	if r.last.IsZero() || now.After(r.last) {
		r.last = now
	}
	if r.tokens < 1 {
		return false
	}
	r.tokens--
	return true
}
