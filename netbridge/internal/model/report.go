package model

import (
	"strings"

	"github.com/netbridge/netbridge/pkg/probe"
	"github.com/netbridge/netbridge/pkg/tcredirect"
	"github.com/netbridge/netbridge/sandbox"
)

// Available says whether a model works with the probed kernel.
type Available struct {
	Model sandbox.Model `json:"model"`
	Works bool          `json:"works"`
	// Detail names the missing features, or what auto would pick.
	Detail string `json:"detail,omitempty"`
}

// Report says, for each model a caller may ask for, whether the kernel
// features f let it work, and what auto picks.
func (r *Registry) Report(f probe.Features) []Available {
	avail := func(name sandbox.Model) Available {
		m, _ := r.Get(name)
		if missing := m.Missing(f); len(missing) > 0 {
			// In a list of what is missing, neither classifier is there.
			detail := strings.ReplaceAll(strings.Join(missing, ", "), NoClassifier, "u32 and matchall")
			return Available{Model: name, Detail: "missing " + detail}
		}
		return Available{Model: name, Works: true}
	}
	tc := avail(sandbox.ModelTCFilter)
	if tc.Works {
		c, _ := tcredirect.Preferred(func(c tcredirect.Classifier) bool { return f.Has(string(c)) })
		tc.Detail = "classifier " + string(c)
	}
	br := avail(sandbox.ModelBridge)
	mvt := avail(sandbox.ModelMacvtap)
	auto := Available{Model: sandbox.ModelAuto, Works: true}
	switch {
	case tc.Works:
		auto.Detail = "picks tcfilter"
	case br.Works:
		auto.Detail = "picks bridge for veth; macvlan and ipvlan need tcfilter"
	case mvt.Works:
		auto.Detail = "picks macvtap for veth; macvlan and ipvlan need tcfilter"
	default:
		auto = Available{Model: sandbox.ModelAuto, Detail: "no model works"}
	}
	return []Available{tc, br, mvt, avail(sandbox.ModelNone), auto}
}
