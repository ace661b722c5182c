package netview

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/netbridge/netbridge/pkg/linkname"
	"github.com/netbridge/netbridge/pkg/state"
	"github.com/netbridge/netbridge/pkg/tcredirect"
	"github.com/netbridge/netbridge/sandbox"
)

// Select marks which links of v a request attaches (see SelectLinks); a
// named loopback is refused as such. st, when set, is where the owner of an
// interface wired for another sandbox is looked for; self is the sandbox
// asking ("": none, a netns is only looked at).
func (v *View) Select(names []string, supports func(*sandbox.Interface) error, st *state.Store, self string) error {
	for _, name := range names {
		if slices.Contains(v.loopbacks, name) {
			return fmt.Errorf("interface %q is the loopback interface of the netns, which stays there: netbridge attaches the interfaces CNI made (have: %s)", name, linkNames(v.Links))
		}
	}
	return selectWith(v.Links, names, supports, func(ifc *Link) error { return takenError(ifc, st, self) }, self != "")
}

// SelectLinks marks which links of ifs to attach: exactly the named ones,
// which must exist, be supported and not be wired for another sandbox, or
// else every supported interface with an address that netbridge did not
// create or wire.
func SelectLinks(ifs []Link, names []string, supports func(*sandbox.Interface) error) error {
	return selectWith(ifs, names, supports, func(ifc *Link) error { return takenError(ifc, nil, "") }, false)
}

// selectWith is SelectLinks, where taken returns the error of an
// interface wired for another sandbox. With refuseForeign (a sandbox is
// being wired, not a netns looked at), an interface it would attach whose
// filter priority someone else's filter holds is an error, not a skip.
func selectWith(ifs []Link, names []string, supports func(*sandbox.Interface) error, taken func(*Link) error, refuseForeign bool) error {
	byName := map[string]*Link{}
	for i := range ifs {
		byName[ifs[i].Name] = &ifs[i]
	}
	if len(names) > 0 {
		for i := range ifs {
			ifs[i].Reason = sandbox.ReasonNotNamed
		}
		for _, name := range names {
			ifc, ok := byName[name]
			if !ok {
				return fmt.Errorf("interface %q does not exist in the netns (have: %s)", name, linkNames(ifs))
			}
			if ifc.Owner != "" {
				return fmt.Errorf("interface %q was created by netbridge for sandbox %q; name the CNI interface instead", name, ifc.Owner)
			}
			if err := linkname.Check(name); err != nil {
				return fmt.Errorf("interface %w", err)
			}
			if len(ifc.wirings) > 0 {
				return taken(ifc)
			}
			if err := supports(&ifc.Interface); err != nil {
				return fmt.Errorf("interface %q: %w", name, err)
			}
			ifc.Attach, ifc.Reason = true, ""
		}
		return nil
	}
	for i := range ifs {
		ifc := &ifs[i]
		switch err := supports(&ifc.Interface); {
		case ifc.Owner != "":
			ifc.Reason = fmt.Sprintf("created by netbridge for sandbox %q", ifc.Owner)
		case linkname.Check(ifc.Name) != nil:
			ifc.Reason, ifc.Unsupported = "interface "+linkname.Check(ifc.Name).Error(), true
		case len(ifc.wirings) > 0:
			terr := taken(ifc)
			if refuseForeign && errors.Is(terr, tcredirect.ErrPriorityTaken) && err == nil && len(ifc.Addresses) > 0 {
				// Not another sandbox's: someone's filter holds the
				// priority of our redirects on an interface setup would
				// wire. Skipping it would leave the sandbox unwired
				// without a word; the user must free the priority.
				return terr
			}
			ifc.Reason, ifc.Unsupported = terr.Error(), true
		case err != nil:
			ifc.Reason, ifc.Unsupported = err.Error(), true
		case len(ifc.Addresses) == 0:
			ifc.Reason = "has no address"
		default:
			ifc.Attach = true
		}
	}
	return nil
}

func linkNames(ifs []Link) string {
	if len(ifs) == 0 {
		return "no links but lo"
	}
	var s []string
	for _, i := range ifs {
		s = append(s, linkname.Show(i.Name))
	}
	return strings.Join(s, ", ")
}
