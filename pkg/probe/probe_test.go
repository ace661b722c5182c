package probe

import (
	"os"
	"testing"
)

func TestRunReportsEveryFeature(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("probing needs root")
	}
	f, err := Run()
	if err != nil {
		t.Fatal(err)
	}
	if len(f) != len(Names) {
		t.Fatalf("got %d results, want %d", len(f), len(Names))
	}
	for i, r := range f {
		if r.Name != Names[i] {
			t.Errorf("result %d is %q, want %q", i, r.Name, Names[i])
		}
		if r.Available == (r.Detail != "") {
			t.Errorf("%s: available=%v with detail %q", r.Name, r.Available, r.Detail)
		}
		t.Logf("%-10s %v %s", r.Name, r.Available, r.Detail)
	}
	// Every machine netbridge is tested on has these (see notes/vm-testing.md).
	if m := f.Missing(Tun, Ingress, U32, Mirred, Bridge); len(m) > 0 {
		t.Errorf("missing %v on a test machine", m)
	}
}

func TestFeaturesMissing(t *testing.T) {
	f := Features{{Name: Tun, Available: true}, {Name: Matchall, Detail: "no"}}
	if m := f.Missing(Tun, Matchall, Bridge); len(m) != 2 || m[0] != Matchall || m[1] != Bridge {
		t.Errorf("Missing = %v, want [matchall bridge]", m)
	}
}
