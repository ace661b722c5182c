package sandbox

import (
	"net/netip"
	"testing"
)

// FuzzDNSFromCNIResult: any input either fails or gives valid, unmapped
// nameserver addresses, and never panics.
func FuzzDNSFromCNIResult(f *testing.F) {
	for _, s := range []string{
		`{"cniVersion":"1.0.0","dns":{"nameservers":["198.51.100.53","2001:db8::53"],"domain":"pod.example","search":["svc.example"],"options":["ndots:5"]}}`,
		`{"cniVersion":"0.3.1","dns":{"nameservers":["::ffff:192.0.2.10"]}}`,
		`{"dns":null}`, `{"dns":{"nameservers":[""]}}`, `{`, `null`, `[]`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DNSFromCNIResult(b)
		if err != nil {
			if !d.IsZero() {
				t.Errorf("error %v with a non-zero DNS %+v", err, d)
			}
			return
		}
		for _, a := range d.Nameservers {
			if !a.IsValid() || a.Is4In6() {
				t.Errorf("nameserver %v is invalid or IPv4-mapped", a)
			}
			if _, err := netip.ParseAddr(a.String()); err != nil {
				t.Errorf("nameserver %v does not round-trip: %v", a, err)
			}
		}
	})
}
