package sandbox

import (
	"errors"
	"fmt"
)

// ErrInvalidConfig reports a configuration that cannot be used as given;
// nothing was changed. The CLI exits 2 on it.
var ErrInvalidConfig = errors.New("invalid configuration")

// ErrNoInterface reports a netns with no interface to attach (only the
// loopback, or none that setup would wire): a sandbox without a network,
// which a hook treats as nothing to do. It wraps ErrInvalidConfig.
var ErrNoInterface = fmt.Errorf("%w: no interface to attach", ErrInvalidConfig)
