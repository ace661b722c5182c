package model

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"

	"github.com/netbridge/netbridge/netbridge/internal/journal"
	"github.com/netbridge/netbridge/pkg/tap"
)

// TapStep names the job's tap, derives its MAC and returns the step that
// creates it, tags it as the sandbox's, gives it its MAC and MTU and brings
// it up. Once the step is done, TapMade finishes the NIC.
func TapStep(j *Job) (journal.Planned, error) {
	nic, k := j.NIC, j.Steps.Netns()
	nic.Tap = j.Names.Device(TapPrefix, nic.Name)
	if err := j.Names.Free(nic.Tap, nic.Name); err != nil {
		return journal.Planned{}, err
	}
	nic.TapMAC = j.Names.MAC(nic.Name, "tap")
	id := j.Names.ID()
	tmp := tmpTapName(id, nic.Tap)
	s := journal.Step{Op: journal.OpTap, Link: nic.Tap, Tmp: tmp}
	return j.Steps.Plan(journal.Planned{Step: s, Make: func() error {
		// A tap cannot be tagged when it is created: it is made under a
		// name of ours, then tagged and named in one request, so that a
		// link of its name is never ours untagged.
		fs, err := tap.Create(tap.Config{Name: tmp, Queues: nic.Queues, VnetHdr: true, Owner: j.Opts.TapOwner, Group: j.Opts.TapGroup, Persist: true})
		if err != nil {
			return err
		}
		link, err := k.H.LinkByName(tmp)
		if err != nil {
			CloseFiles(fs)
			_ = k.H.LinkDel(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: tmp}})
			return fmt.Errorf("looking up the new tap: %w", err)
		}
		nic.TapIndex = link.Attrs().Index
		settings := journal.LinkSettings{Alias: journal.OwnerTag(id), Group: journal.OwnerGroup(id), MAC: net.HardwareAddr(nic.TapMAC), MTU: nic.MTU, Up: true, Index: nic.TapIndex}
		if err := k.SetLink(nic.Tap, settings); err != nil {
			CloseFiles(fs)
			_ = k.H.LinkDel(link)
			return fmt.Errorf("configuring the new tap as %q: %w", nic.Tap, err)
		}
		nic.Files = fs // kept by TapMade only with HoldFDs
		return nil
	}, Made: func(s *journal.Step) { s.Ref = &journal.LinkRef{Index: nic.TapIndex, Kind: journal.KindTuntap} }}), nil
}

// tmpTapName is the name the tap called name of sandbox id is created
// under, before it is tagged: "nbt" and 12 hex digits of a hash of both,
// a name nobody else gives a link.
func tmpTapName(id, name string) string {
	sum := sha256.Sum256([]byte(id + "\x00" + name))
	return "nbt" + hex.EncodeToString(sum[:6])
}

// CreateTap creates the job's tap (TapStep) and finishes the NIC (TapMade).
func CreateTap(ctx context.Context, j *Job) error {
	s, err := TapStep(j)
	if err != nil {
		return err
	}
	if err := j.Steps.Do(ctx, s); err != nil {
		return err
	}
	return TapMade(j)
}

// TapMade finishes the NIC once its tap exists: it keeps the queues open
// (and opens vhost-net) when the caller holds fds, else closes them.
func TapMade(j *Job) error {
	nic := j.NIC
	if !j.Opts.HoldFDs {
		CloseFiles(nic.Files)
		nic.Files = nil
		return nil
	}
	if nic.Vhost {
		vf, err := OpenVhost(nic.Queues)
		if err != nil {
			return fmt.Errorf("tap %q: %w", nic.Tap, err)
		}
		nic.VhostFiles = vf
	}
	return nil
}
