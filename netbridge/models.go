package netbridge

import (
	"strings"

	"github.com/netbridge/netbridge/netbridge/internal/model"
	"github.com/netbridge/netbridge/netbridge/internal/model/bridge"
	"github.com/netbridge/netbridge/netbridge/internal/model/macvtap"
	"github.com/netbridge/netbridge/netbridge/internal/model/none"
	"github.com/netbridge/netbridge/netbridge/internal/model/passthrough"
	"github.com/netbridge/netbridge/netbridge/internal/model/tcfilter"
	"github.com/netbridge/netbridge/pkg/probe"
	"github.com/netbridge/netbridge/pkg/tcredirect"
	"github.com/netbridge/netbridge/sandbox"
)

// models are the interworking models, one line each.
var models = model.NewRegistry(
	tcfilter.Model{},
	bridge.Model{},
	macvtap.Model{},
	none.Model{},
	passthrough.Model{},
)

// ModelAvailable says whether a model works with the probed kernel.
type ModelAvailable struct {
	Model sandbox.Model `json:"model"`
	Works bool          `json:"works"`
	// Detail names the missing features, or what auto would pick.
	Detail string `json:"detail,omitempty"`
}

// ModelSupport reports, for each model, whether the kernel features f
// let it work.
func ModelSupport(f probe.Features) []ModelAvailable {
	avail := func(name sandbox.Model) ModelAvailable {
		m, _ := models.Get(name)
		if missing := m.Missing(f); len(missing) > 0 {
			// In a list of what is missing, neither classifier is there.
			detail := strings.ReplaceAll(strings.Join(missing, ", "), tcfilter.NoClassifier, "u32 and matchall")
			return ModelAvailable{Model: name, Detail: "missing " + detail}
		}
		return ModelAvailable{Model: name, Works: true}
	}
	tc := avail(sandbox.ModelTCFilter)
	if tc.Works {
		c, _ := tcredirect.Preferred(func(c tcredirect.Classifier) bool { return f.Has(string(c)) })
		tc.Detail = "classifier " + string(c)
	}
	br := avail(sandbox.ModelBridge)
	mvt := avail(sandbox.ModelMacvtap)
	auto := ModelAvailable{Model: sandbox.ModelAuto, Works: true}
	switch {
	case tc.Works:
		auto.Detail = "picks tcfilter"
	case br.Works:
		auto.Detail = "picks bridge for veth; macvlan and ipvlan need tcfilter"
	case mvt.Works:
		auto.Detail = "picks macvtap for veth; macvlan and ipvlan need tcfilter"
	default:
		auto = ModelAvailable{Model: sandbox.ModelAuto, Detail: "no model works"}
	}
	return []ModelAvailable{tc, br, mvt, avail(sandbox.ModelNone), auto}
}
