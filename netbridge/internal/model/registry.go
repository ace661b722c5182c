package model

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/netbridge/netbridge/pkg/probe"
	"github.com/netbridge/netbridge/pkg/tcredirect"
	"github.com/netbridge/netbridge/sandbox"
)

// Registry holds the models by name.
type Registry struct {
	byName map[sandbox.Model]Model
}

// NewRegistry returns the registry of models ms.
func NewRegistry(ms ...Model) *Registry {
	r := &Registry{byName: map[sandbox.Model]Model{}}
	for _, m := range ms {
		r.byName[m.Name()] = m
	}
	return r
}

// Get returns the model called name, as a record names it (passthrough
// included), and whether there is one.
func (r *Registry) Get(name sandbox.Model) (Model, bool) {
	m, ok := r.byName[name]
	return m, ok
}

// Lookup returns the model a request asks for by name (ModelTCFilter when
// empty; not auto, which Choose resolves per interface).
func (r *Registry) Lookup(name sandbox.Model) (Model, error) {
	if name == "" {
		name = sandbox.ModelTCFilter
	}
	if m, ok := r.byName[name]; ok && slices.Contains(sandbox.Models, name) {
		return m, nil
	}
	return nil, fmt.Errorf("%w: unknown model %q (choose one of %s)", sandbox.ErrInvalidConfig, name, modelList(sandbox.Models))
}

// modelList names models in a message: "a, b, c".
func modelList(ms []sandbox.Model) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}

// Chooser picks the model of each interface for a request.
type Chooser struct {
	r         *Registry
	requested sandbox.Model
	features  probe.Features // probed lazily for auto
	probeErr  error
	probed    bool
}

// Chooser returns the chooser of the models of a request for model
// requested (sandbox.ModelAuto: per interface).
func (r *Registry) Chooser(requested sandbox.Model) *Chooser {
	return &Chooser{r: r, requested: requested}
}

// WithFeatures makes c choose for a kernel with features f instead of
// probing the kernel.
func (c *Chooser) WithFeatures(f probe.Features, err error) *Chooser {
	c.features, c.probeErr, c.probed = f, err, true
	return c
}

// Probed reports whether c has probed the kernel.
func (c *Chooser) Probed() bool { return c.probed }

func (c *Chooser) probe() (probe.Features, error) {
	if !c.probed {
		c.features, c.probeErr = probe.Run()
		c.probed = true
	}
	return c.features, c.probeErr
}

// Supports reports whether the requested model (for auto: any model) can
// carry ifc.
func (c *Chooser) Supports(ifc *sandbox.Interface) error {
	name := c.requested
	if name == sandbox.ModelAuto {
		name = sandbox.ModelTCFilter // tcfilter carries every kind any model does
	}
	m, err := c.r.Lookup(name)
	if err != nil {
		return err
	}
	return Carries(m, ifc)
}

// Choose returns the model for ifc and, when it chose it, why: an existing
// tap is passed through, auto picks the first of tcfilter, bridge and
// macvtap that the kernel and the interface's kind let work.
func (c *Chooser) Choose(ifc *sandbox.Interface) (Model, string, error) {
	if Kind(ifc.Kind) == KindTuntap {
		m, _ := c.r.Get(sandbox.ModelPassthrough)
		return m, "an existing tap: handed to the guest as it is", nil
	}
	if c.requested != sandbox.ModelAuto {
		m, err := c.r.Lookup(c.requested)
		return m, "", err
	}
	f, err := c.probe()
	if err != nil {
		return nil, "", fmt.Errorf("probing the kernel for model auto: %w", err)
	}
	if missing := f.Missing(probe.Tun); len(missing) > 0 {
		return nil, "", fmt.Errorf("no model can work: the kernel has no %s", strings.Join(missing, ", "))
	}
	tc, _ := c.r.Get(sandbox.ModelTCFilter)
	tcMissing := tc.Missing(f)
	if len(tcMissing) == 0 {
		c, _ := tcredirect.Preferred(func(c tcredirect.Classifier) bool { return f.Has(string(c)) })
		return tc, "auto: the kernel has ingress, mirred and " + string(c), nil
	}
	if Kind(ifc.Kind) != KindVeth {
		return nil, "", fmt.Errorf("model auto: only tcfilter can carry %s %q, and the kernel lacks %s for it", ifc.Kind, ifc.Name, strings.Join(tcMissing, ", "))
	}
	if m, _ := c.r.Get(sandbox.ModelBridge); len(m.Missing(f)) == 0 {
		return m, "auto: no tc redirect (missing " + strings.Join(tcMissing, ", ") + "), so a bridge", nil
	}
	if m, _ := c.r.Get(sandbox.ModelMacvtap); len(m.Missing(f)) == 0 {
		return m, "auto: neither tc redirect (missing " + strings.Join(tcMissing, ", ") + ") nor bridge, so a macvtap", nil
	}
	return nil, "", fmt.Errorf("model auto: the kernel lacks %s (tcfilter), bridge and macvtap", strings.Join(tcMissing, ", "))
}

// ErrMissingFeature reports that the kernel lacks a feature the model
// needs; it is the cause of a *MissingFeatureError.
var ErrMissingFeature = errors.New("missing kernel feature")

// MissingFeatureError reports that a model cannot work on this kernel: it
// names the features it lacks and the models that work (a hint a caller
// phrases as its own option: a flag, a configuration key).
type MissingFeatureError struct {
	// Model is the model that cannot work.
	Model sandbox.Model
	// Missing are the kernel features it lacks.
	Missing []string
	// Works are the models that work on this kernel; none when empty.
	Works []sandbox.Model
	// Err is the kernel's answer.
	Err error
}

func (e *MissingFeatureError) Error() string {
	works := "no model works on this kernel"
	if len(e.Works) > 0 {
		works = "models that work: " + modelList(e.Works)
	}
	return fmt.Sprintf("%s: model %s cannot work: this kernel lacks %s (see netbridge probe); %s: %v", ErrMissingFeature, e.Model, strings.Join(e.Missing, ", "), works, e.Err)
}

// Unwrap returns ErrMissingFeature and the kernel's answer.
func (e *MissingFeatureError) Unwrap() []error { return []error{ErrMissingFeature, e.Err} }

// Explain turns an error of wiring with model m that says the kernel lacks
// something (ENOENT or EOPNOTSUPP from creating a qdisc, filter or link)
// into a *MissingFeatureError that names the missing feature and the
// models that work, by probing the kernel. Other errors, and errors the
// probe cannot explain, are returned as they are.
func (r *Registry) Explain(err error, m Model) error {
	if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EOPNOTSUPP) {
		return err
	}
	f, perr := probe.Run()
	if perr != nil {
		return err
	}
	missing := m.Missing(f)
	if len(missing) == 0 {
		return err
	}
	e := &MissingFeatureError{Model: m.Name(), Missing: missing, Err: err}
	for _, name := range []sandbox.Model{sandbox.ModelTCFilter, sandbox.ModelBridge, sandbox.ModelMacvtap} {
		if w, ok := r.Get(name); ok && len(w.Missing(f)) == 0 {
			e.Works = append(e.Works, name)
		}
	}
	return e
}
