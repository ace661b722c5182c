package netbridge

import (
	"github.com/netbridge/netbridge/netbridge/internal/model"
	"github.com/netbridge/netbridge/netbridge/internal/model/bridge"
	"github.com/netbridge/netbridge/netbridge/internal/model/macvtap"
	"github.com/netbridge/netbridge/netbridge/internal/model/none"
	"github.com/netbridge/netbridge/netbridge/internal/model/passthrough"
	"github.com/netbridge/netbridge/netbridge/internal/model/tcfilter"
	"github.com/netbridge/netbridge/pkg/probe"
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
type ModelAvailable = model.Available

// ModelSupport reports, for each model, whether the kernel features f
// let it work.
func ModelSupport(f probe.Features) []ModelAvailable { return models.Report(f) }
