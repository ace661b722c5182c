package netbridge

import (
	"errors"
	"fmt"
	"strings"

	"github.com/netbridge/netbridge/netbridge/internal/model"
	"github.com/netbridge/netbridge/netbridge/internal/netview"
	"github.com/netbridge/netbridge/pkg/tcredirect"
	"github.com/netbridge/netbridge/sandbox"
)

// The errors of the API. A message says what failed and where; what a
// caller can do about it is in the error's type, which each caller phrases
// as its own options (the CLI as flags, the CNI plugin as configuration
// keys). The errors of a configuration that cannot be used as given wrap
// sandbox.ErrInvalidConfig: nothing was changed.

// ErrNotFound reports that no sandbox of that id is recorded.
var ErrNotFound = errors.New("no such sandbox")

// ErrModeConflict reports a sandbox wired in the other mode: Setup of a
// sandbox whose interfaces were attached one by one (Attach), or Attach or
// Detach of a sandbox set up as a whole (Setup). Nothing was changed. It
// wraps sandbox.ErrInvalidConfig.
var ErrModeConflict = fmt.Errorf("%w: setup as a whole and attach interface by interface do not mix", sandbox.ErrInvalidConfig)

// ErrStrict reports an interface with an address of a kind netbridge
// cannot carry, which Config.Strict refuses (without Strict it would be
// skipped with a warning). It wraps sandbox.ErrInvalidConfig.
var ErrStrict = fmt.Errorf("%w: an interface with an address that netbridge cannot carry, refused under Strict", sandbox.ErrInvalidConfig)

// ErrNoVhost reports that vhost-net was asked for (sandbox.VhostOn) on a
// kernel without /dev/vhost-net; vhost auto or off would do.
var ErrNoVhost = errors.New("vhost-net not available")

// ErrInterfaceTaken is the cause of a *TakenError: the interface is wired
// by netbridge for another sandbox already.
var ErrInterfaceTaken = netview.ErrInterfaceTaken

// TakenError reports an interface that netbridge wired for another sandbox
// (or for this one, through another state directory), and how to free it.
// It wraps ErrInterfaceTaken and sandbox.ErrInvalidConfig: nothing was
// changed.
type TakenError = netview.TakenError

// ErrFilterPriorityTaken reports that the ingress qdisc of an interface
// holds a filter of someone else at netbridge's priority, which netbridge
// keeps for its redirect.
var ErrFilterPriorityTaken = tcredirect.ErrPriorityTaken

// ErrMissingFeature reports that the kernel lacks a feature the model
// needs; it is the cause of a *MissingFeatureError.
var ErrMissingFeature = model.ErrMissingFeature

// MissingFeatureError reports that a model cannot work on this kernel: it
// names the features it lacks and, in Works, the models that work.
type MissingFeatureError = model.MissingFeatureError

// CheckError lists what is wrong with a sandbox's wiring.
type CheckError struct {
	ID       string
	Problems []string
}

func (e *CheckError) Error() string {
	return fmt.Sprintf("sandbox %q wiring is not intact: %s", e.ID, strings.Join(e.Problems, "; "))
}

// RecordError reports the record of sandbox ID that List could not read.
type RecordError struct {
	ID  string
	Err error
}

func (e *RecordError) Error() string { return e.Err.Error() }

// Unwrap returns the cause, such as state.ErrBadRecord.
func (e *RecordError) Unwrap() error { return e.Err }
