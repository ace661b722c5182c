package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
)

// DNS is the resolver configuration the guest should use, as a CNI result
// carries it.
type DNS struct {
	Nameservers []netip.Addr `json:"nameservers,omitempty"`
	Domain      string       `json:"domain,omitempty"`
	Search      []string     `json:"search,omitempty"`
	Options     []string     `json:"options,omitempty"`
}

// IsZero reports whether d holds nothing.
func (d DNS) IsZero() bool {
	return len(d.Nameservers) == 0 && d.Domain == "" && len(d.Search) == 0 && len(d.Options) == 0
}

// merge adds o's entries that d lacks; d's domain wins.
func (d *DNS) merge(o DNS) {
	for _, n := range o.Nameservers {
		if !slices.Contains(d.Nameservers, n) {
			d.Nameservers = append(d.Nameservers, n)
		}
	}
	if d.Domain == "" {
		d.Domain = o.Domain
	}
	for _, s := range o.Search {
		if !slices.Contains(d.Search, s) {
			d.Search = append(d.Search, s)
		}
	}
	for _, s := range o.Options {
		if !slices.Contains(d.Options, s) {
			d.Options = append(d.Options, s)
		}
	}
}

// cniDNS is the dns member of a CNI result, in every spec version.
type cniDNS struct {
	Nameservers []string `json:"nameservers"`
	Domain      string   `json:"domain"`
	Search      []string `json:"search"`
	Options     []string `json:"options"`
}

func (c cniDNS) toDNS() (DNS, error) {
	d := DNS{Domain: c.Domain, Search: c.Search, Options: c.Options}
	for _, s := range c.Nameservers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return DNS{}, fmt.Errorf("nameserver %q: %w", s, err)
		}
		d.Nameservers = append(d.Nameservers, a.Unmap())
	}
	return d, nil
}

// DNSFromCNIResult returns the DNS of a CNI result (any spec version, as
// plugins print it and as CRI-O puts it in the io.kubernetes.cri-o.CNIResult
// annotation).
func DNSFromCNIResult(b []byte) (DNS, error) {
	var r struct {
		DNS cniDNS `json:"dns"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return DNS{}, fmt.Errorf("reading the DNS of a CNI result: %w", err)
	}
	return r.DNS.toDNS()
}

// DNSFromCNICache returns the DNS of every result libcni cached for the
// container id under dir (libcni's cache directory, /var/lib/cni by
// default, holding results/<network>-<id>-<ifname>), merged in file name
// order. No cached result is no error.
func DNSFromCNICache(dir, id string) (DNS, error) {
	var d DNS
	matches, err := filepath.Glob(filepath.Join(dir, "results", "*-"+id+"-*"))
	if err != nil {
		return d, err
	}
	sort.Strings(matches)
	var errs []error
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var c struct {
			ContainerID string `json:"containerId"`
			Result      struct {
				DNS cniDNS `json:"dns"`
			} `json:"result"`
		}
		if err := json.Unmarshal(b, &c); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m, err))
			continue
		}
		if c.ContainerID != "" && c.ContainerID != id {
			continue // a network or interface name containing "-<id>-"
		}
		one, err := c.Result.DNS.toDNS()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m, err))
			continue
		}
		d.merge(one)
	}
	if err := errors.Join(errs...); err != nil {
		return d, fmt.Errorf("reading libcni's cache in %s: %w", dir, err)
	}
	return d, nil
}
