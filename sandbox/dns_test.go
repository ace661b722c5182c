package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestDNSFromCNIResult(t *testing.T) {
	for _, c := range []struct{ name, result, want string }{
		{"1.0.0", `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"198.51.100.2/24"}],"dns":{"nameservers":["198.51.100.53","2001:db8::53"],"domain":"pod.example","search":["svc.example","example"],"options":["ndots:5"]}}`,
			"[198.51.100.53 2001:db8::53] pod.example [svc.example example] [ndots:5]"},
		{"0.4.0 without dns", `{"cniVersion":"0.4.0","ips":[{"version":"4","address":"198.51.100.2/24"}]}`, "[]  [] []"},
		{"0.3.1 Cilium style", `{"cniVersion":"0.3.1","ips":[{"version":"4","address":"198.51.100.2/32"}],"dns":{"nameservers":["192.0.2.10"]}}`, "[192.0.2.10]  [] []"},
	} {
		d, err := DNSFromCNIResult([]byte(c.result))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := fmt.Sprint(d.Nameservers, " ", d.Domain, " ", d.Search, " ", d.Options); got != c.want {
			t.Errorf("%s: DNS = %s, want %s", c.name, got, c.want)
		}
	}
	for _, bad := range []string{`{`, `{"dns":{"nameservers":["not-an-ip"]}}`, `{"dns":{"nameservers":"x"}}`} {
		if _, err := DNSFromCNIResult([]byte(bad)); err == nil {
			t.Errorf("DNSFromCNIResult(%s) succeeded", bad)
		}
	}
}

func TestDNSFromCNICache(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, "results"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "results", name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("podnet-sb1-eth0", `{"kind":"cniCacheV1","containerId":"sb1","result":{"cniVersion":"1.0.0","dns":{"nameservers":["198.51.100.53"],"search":["a.example"]}}}`)
	write("multus-net-sb1-net1", `{"kind":"cniCacheV1","containerId":"sb1","result":{"cniVersion":"1.0.0","dns":{"nameservers":["198.51.100.53","203.0.113.53"],"domain":"b.example","search":["b.example"]}}}`)
	write("podnet-other-sb1-x-eth0", `{"kind":"cniCacheV1","containerId":"other-sb1-x","result":{"dns":{"nameservers":["192.0.2.99"]}}}`)
	write("podnet-sb2-eth0", `{"kind":"cniCacheV1","containerId":"sb2","result":{"dns":{"nameservers":["192.0.2.2"]}}}`)
	d, err := DNSFromCNICache(dir, "sb1")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(d.Nameservers, d.Domain, d.Search); got != "[198.51.100.53 203.0.113.53]b.example[b.example a.example]" {
		t.Errorf("merged DNS = %s", got)
	}
	if d, err := DNSFromCNICache(t.TempDir(), "sb1"); err != nil || !d.IsZero() {
		t.Errorf("an empty cache gave %+v, %v", d, err)
	}
	write("broken-sb3-eth0", `{`)
	if _, err := DNSFromCNICache(dir, "sb3"); err == nil {
		t.Error("a broken cache file gave no error")
	}
}
