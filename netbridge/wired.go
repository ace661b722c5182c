package netbridge

import (
	"github.com/netbridge/netbridge/netbridge/internal/netview"
	"github.com/netbridge/netbridge/pkg/tcredirect"
)

// ErrInterfaceTaken is the cause of a *TakenError: the interface is wired
// by netbridge for another sandbox already.
var ErrInterfaceTaken = netview.ErrInterfaceTaken

// TakenError reports an interface that netbridge wired for another sandbox
// (or for this one, through another state directory), and how to free it.
// It wraps ErrInterfaceTaken and ErrInvalidConfig: nothing was changed.
type TakenError = netview.TakenError

// ErrFilterPriorityTaken reports that the ingress qdisc of an interface
// holds a filter of someone else at netbridge's priority, which netbridge
// keeps for its redirect.
var ErrFilterPriorityTaken = tcredirect.ErrPriorityTaken
