//go:build netbridge_testseam

package probe

import (
	"os"
	"slices"
	"strings"
)

// override reports the features named in NETBRIDGE_SEAM_PROBE_WITHOUT
// (comma-separated) as missing, to simulate a kernel without them.
func override(f Features) Features {
	without := strings.Split(os.Getenv("NETBRIDGE_SEAM_PROBE_WITHOUT"), ",")
	out := slices.Clone(f)
	for i, r := range out {
		if slices.Contains(without, r.Name) {
			out[i] = Result{Name: r.Name, Detail: "simulated: NETBRIDGE_SEAM_PROBE_WITHOUT"}
		}
	}
	return out
}
