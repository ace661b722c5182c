package guest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/netbridge/netbridge/sandbox"
	"github.com/netbridge/netbridge/test/golden"
)

// cloudInitSandboxes are the golden cases of CloudInit: those of KernelIP and
// JSON plus a macvtap NIC, a multiqueue vhost NIC (whose guest configuration
// is that of any NIC), a route without gateway and a dual-stack Calico NIC
// with a route MTU.
func cloudInitSandboxes(t testing.TB) map[string]sandbox.Sandbox {
	cases := sandboxes(t)
	base := cases["single_v4"]

	mv := base
	mv.NICs = []sandbox.NIC{base.NICs[0]}
	mv.NICs[0].Model, mv.NICs[0].Device, mv.NICs[0].Tap = "macvtap", "/run/netbridge/sandbox-1.dev/nbm-eth0", "nbm-eth0"
	cases["macvtap"] = mv

	mq := base
	mq.NICs = []sandbox.NIC{base.NICs[0]}
	mq.NICs[0].Queues, mq.NICs[0].Vhost = 4, true
	cases["multiqueue_4_vhost"] = mq

	calico := cases["calico"]
	n := calico.NICs[0]
	n.Addresses = prefixes("198.51.100.7/32", "2001:db8:7::7/128")
	n.Routes = []sandbox.Route{
		route("169.254.1.1/32", "", 0),
		route("0.0.0.0/0", "169.254.1.1", 1400),
		route("::/0", "fe80::ecee:eeff:feee:eeee", 1400),
		route("2001:db8:100::/64", "2001:db8:ffff::1", 0),
	}
	n.Neighbors = append(n.Neighbors, sandbox.Neighbor{IP: netip.MustParseAddr("fe80::ecee:eeff:feee:eeee"), MAC: n.Neighbors[0].MAC, Permanent: true})
	dev := base
	dev.NICs = []sandbox.NIC{base.NICs[0]}
	dev.NICs[0].Routes = append(dev.NICs[0].Routes, route("10.10.0.0/16", "", 0))
	cases["device_route"] = dev

	cases["dual_stack_calico_route_mtu"] = sandbox.Sandbox{ID: calico.ID, Netns: calico.Netns, Model: calico.Model, NICs: []sandbox.NIC{n}}
	return cases
}

// wantCloudInit builds the structure the rendered document must parse to,
// from the sandbox, independently of the renderer.
func wantCloudInit(s sandbox.Sandbox) map[string]any {
	ethernets := map[string]any{}
	for k, n := range s.NICs {
		name := "eth" + strconv.Itoa(k)
		e := map[string]any{
			"match":    map[string]any{"macaddress": n.GuestMAC.String()},
			"set-name": name,
		}
		if n.MTU > 0 {
			e["mtu"] = n.MTU
		}
		var addrs []any
		for _, a := range n.Addresses {
			addrs = append(addrs, a.String())
		}
		if addrs != nil {
			e["addresses"] = addrs
		}
		// Gateways outside every address of the NIC (IPv6 link-local ones
		// excepted) are reached on-link.
		onLink := func(gw netip.Addr) bool {
			for _, a := range n.Addresses {
				if a.Masked().Contains(gw) {
					return false
				}
			}
			return !(gw.Is6() && gw.IsLinkLocalUnicast())
		}
		var routes []any
		for _, r := range n.Routes {
			m := map[string]any{"to": r.Dst.String()}
			if r.Gw.IsValid() {
				m["via"] = r.Gw.String()
				if onLink(r.Gw) {
					m["on-link"] = true
				}
			} else {
				// A host route to an on-link gateway is left out.
				gateway := false
				for _, o := range n.Routes {
					gateway = gateway || o.Gw.IsValid() && onLink(o.Gw) && netip.PrefixFrom(o.Gw, o.Gw.BitLen()) == r.Dst
				}
				if gateway && r.MTU == 0 {
					continue
				}
				m["scope"] = "link"
			}
			if r.MTU > 0 {
				m["mtu"] = r.MTU
			}
			routes = append(routes, m)
		}
		if routes != nil {
			e["routes"] = routes
		}
		ethernets[name] = e
	}
	return map[string]any{"version": 2, "ethernets": ethernets}
}

func TestCloudInitGolden(t *testing.T) {
	for name, s := range cloudInitSandboxes(t) {
		t.Run(name, func(t *testing.T) {
			got, err := CloudInit(s)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, "cloudinit_"+name, got)
			parsed := parseYAML(t, string(got))
			if want := wantCloudInit(s); !reflect.DeepEqual(parsed, want) {
				t.Errorf("document parses to\n%v\nwant\n%v", parsed, want)
			}
			// Deterministic: a second rendering is identical.
			if again, err := CloudInit(s); err != nil || string(again) != string(got) {
				t.Errorf("second rendering differs: %v", err)
			}
		})
	}
}

// TestCloudInitCalico spells out the Calico case: the /32 address, the
// default route marked on-link, neither the link route to the gateway (which
// on-link stands for) nor the neighbour; and a device route that is not to
// an on-link gateway kept with scope link.
func TestCloudInitCalico(t *testing.T) {
	s := cloudInitSandboxes(t)["calico"]
	s.NICs[0].Routes = append(s.NICs[0].Routes, route("10.10.0.0/16", "", 0), route("169.254.1.2/32", "", 0))
	got, err := CloudInit(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`      - "198.51.100.7/32"`,
		"      - to: \"0.0.0.0/0\"\n        via: \"169.254.1.1\"\n        on-link: true\n",
		"      - to: \"10.10.0.0/16\"\n        scope: \"link\"\n",
		"      - to: \"169.254.1.2/32\"\n        scope: \"link\"\n",
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("document lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"169.254.1.1/32", "ee:ee:ee:ee:ee:ee"} {
		if strings.Contains(string(got), unwanted) {
			t.Errorf("document carries %s:\n%s", unwanted, got)
		}
	}
	if parsed, want := parseYAML(t, string(got)), wantCloudInit(s); !reflect.DeepEqual(parsed, want) {
		t.Errorf("document parses to\n%v\nwant\n%v", parsed, want)
	}
}

func TestCloudInitErrors(t *testing.T) {
	base := func() sandbox.NIC {
		return sandbox.NIC{
			Name:      "net1",
			GuestMAC:  mac(t, "02:42:c0:00:02:0b"),
			MTU:       1500,
			Addresses: prefixes("192.0.2.11/24"),
			Routes:    []sandbox.Route{route("0.0.0.0/0", "192.0.2.1", 0)},
		}
	}
	tests := []struct {
		name string
		edit func(n *sandbox.NIC)
		want string
	}{
		{"same MAC as eth0 (ipvlan)", func(n *sandbox.NIC) { n.GuestMAC = mac(t, "02:42:c0:00:02:0a") }, `also that of NIC 0 ("eth0")`},
		{"missing MAC", func(n *sandbox.NIC) { n.GuestMAC = nil }, "guest MAC missing"},
		{"short MAC", func(n *sandbox.NIC) { n.GuestMAC = n.GuestMAC[:3] }, "not a 6-byte"},
		{"multicast MAC", func(n *sandbox.NIC) { n.GuestMAC = mac(t, "33:33:00:00:00:01") }, "multicast"},
		{"MTU", func(n *sandbox.NIC) { n.MTU = 70000 }, "MTU 70000 out of range"},
		{"invalid address", func(n *sandbox.NIC) { n.Addresses = append(n.Addresses, netip.Prefix{}) }, "address 1 is not a valid prefix"},
		{"unspecified address", func(n *sandbox.NIC) { n.Addresses = prefixes("0.0.0.0/0") }, "not a unicast address"},
		{"duplicate address", func(n *sandbox.NIC) { n.Addresses = prefixes("192.0.2.11/24", "192.0.2.11/24") }, "appears twice"},
		{"route without destination", func(n *sandbox.NIC) { n.Routes = []sandbox.Route{{}} }, "route 0: destination is not a valid prefix"},
		{"route host bits", func(n *sandbox.NIC) { n.Routes = []sandbox.Route{route("198.51.100.1/24", "192.0.2.1", 0)} }, "host bits set"},
		{"route MTU", func(n *sandbox.NIC) { n.Routes = []sandbox.Route{route("198.51.100.0/24", "192.0.2.1", 10)} }, "route 0: MTU 10"},
		{"route v4 gw for v6", func(n *sandbox.NIC) { n.Routes = []sandbox.Route{route("::/0", "192.0.2.1", 0)} }, "IPv4 gateway"},
		{"route gw zone", func(n *sandbox.NIC) { n.Routes = []sandbox.Route{route("::/0", "fe80::1%eth0", 0)} }, "zone"},
		{"route gw multicast", func(n *sandbox.NIC) { n.Routes = []sandbox.Route{route("0.0.0.0/0", "224.0.0.1", 0)} }, "not a unicast address"},
		{"neighbor without MAC", func(n *sandbox.NIC) {
			n.Neighbors = []sandbox.Neighbor{{IP: netip.MustParseAddr("192.0.2.1")}}
		}, "neighbor 0: 192.0.2.1: MAC missing"},
		{"neighbor without IP", func(n *sandbox.NIC) {
			n.Neighbors = []sandbox.Neighbor{{MAC: mac(t, "02:00:00:00:00:09")}}
		}, "neighbor 0: address missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := base()
			first.Name, first.GuestMAC = "eth0", mac(t, "02:42:c0:00:02:0a")
			s := sandbox.Sandbox{NICs: []sandbox.NIC{first, base()}}
			tt.edit(&s.NICs[1])
			got, err := CloudInit(s)
			if err == nil {
				t.Fatalf("CloudInit succeeded:\n%s", got)
			}
			if got != nil {
				t.Error("CloudInit returned a document with an error")
			}
			for _, want := range []string{tt.want, `guest: cloud-init: NIC 1 ("net1")`} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

// TestCloudInitPyYAML loads every golden document with PyYAML, the YAML 1.1
// reader cloud-init uses, when python3 and its yaml module are available, and
// checks that it reads the same structure as the test parser (in particular
// that no MAC or address turns into a number).
func TestCloudInitPyYAML(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 in PATH")
	}
	if err := exec.Command(py, "-c", "import yaml").Run(); err != nil {
		t.Skip("python3 has no yaml module")
	}
	// One python run reads every document (a JSON list of strings) and
	// prints what PyYAML makes of each.
	var names []string
	var docs []string
	cases := cloudInitSandboxes(t)
	for name, s := range cases {
		doc, err := CloudInit(s)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
		docs = append(docs, string(doc))
	}
	in, err := json.Marshal(docs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", "import json, sys, yaml; json.dump([yaml.safe_load(d) for d in json.load(sys.stdin)], sys.stdout)")
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		t.Fatalf("PyYAML: %v: %s", err, exitErr.Stderr)
	} else if err != nil {
		t.Fatal(err)
	}
	var loaded []json.RawMessage
	if err := json.Unmarshal(out, &loaded); err != nil || len(loaded) != len(docs) {
		t.Fatalf("PyYAML output %s: %v", out, err)
	}
	for i, name := range names {
		want, err := json.Marshal(wantCloudInit(cases[name]))
		if err != nil {
			t.Fatal(err)
		}
		if !jsonEqual(t, loaded[i], want) {
			t.Errorf("%s: PyYAML reads\n%s\nwant\n%s", name, loaded[i], want)
		}
	}
	// The quoting survives PyYAML too.
	tricky := []string{"52:54:00:12:34:56", "12:30", "yes", "on", "~", "null", "0x1F", "1e3", `a"b\c`, "tab\there", "line\nbreak", "\x00\x7f\u0085\u2028\ufeff", "é", "#x", "- x", "{a}", ": x", ""}
	var doc strings.Builder
	doc.WriteString("v:\n")
	for _, s := range tricky {
		fmt.Fprintf(&doc, "  - %s\n", yamlQuote(s))
	}
	cmd = exec.Command(py, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin)['v'], sys.stdout)")
	cmd.Stdin = strings.NewReader(doc.String())
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("PyYAML on\n%s: %v", doc.String(), err)
	}
	var got []string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, tricky) {
		t.Errorf("PyYAML reads %q, want %q", got, tricky)
	}
}

// jsonEqual compares two JSON documents by value.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(va, vb)
}

// FuzzYAMLQuote checks that yamlQuote gives a scalar on one line, made of
// characters YAML allows, that the test parser reads back as the input (with
// each byte of invalid UTF-8 as U+FFFD).
func FuzzYAMLQuote(f *testing.F) {
	for _, s := range []string{"", "eth0", "52:54:00:12:34:56", `"\`, "a\nb", "\x00\x1f\x7f\u0080\u0085\u009f", "\u2028\u2029\ufeff\ufffe\uffff", "\xff\xfe", "é€𝄞"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := yamlQuote(s)
		for _, r := range q {
			if !yamlPrintable(r) || r == '\n' || r == '\r' {
				t.Fatalf("yamlQuote(%q) = %q holds %U", s, q, r)
			}
		}
		got, rest, err := unquote(q)
		if err != nil || rest != "" {
			t.Fatalf("unquote(%q) = %q, rest %q, %v", q, got, rest, err)
		}
		if want := string([]rune(s)); got != want {
			t.Fatalf("unquote(yamlQuote(%q)) = %q, want %q", s, got, want)
		}
	})
}

// yamlPrintable reports whether YAML allows r unescaped in a document
// (c-printable minus the line breaks and BOM it would reinterpret).
func yamlPrintable(r rune) bool {
	switch {
	case r == '\t':
		return true
	case r < 0x20 || r >= 0x7f && r <= 0x9f:
		return false
	case r == 0x2028 || r == 0x2029 || r == 0xfeff || r == 0xfffe || r == 0xffff:
		return false
	}
	return utf8.ValidRune(r)
}

// parseYAML parses the block YAML subset CloudInit writes: comment lines,
// mappings with plain keys, sequences whose items are scalars or mappings
// starting on the item's line, and scalars that are double-quoted strings,
// integers, true, false or {}. Anything else fails the test.
func parseYAML(t *testing.T, doc string) any {
	t.Helper()
	var ls []yamlLine
	for i, text := range strings.Split(strings.TrimSuffix(doc, "\n"), "\n") {
		if strings.HasPrefix(text, "#") {
			continue
		}
		body := strings.TrimLeft(text, " ")
		if body == "" || strings.ContainsAny(text, "\t\r") {
			t.Fatalf("line %d: blank or holds a tab or CR: %q", i+1, text)
		}
		ls = append(ls, yamlLine{no: i + 1, indent: len(text) - len(body), text: body})
	}
	p := &yamlParser{t: t, lines: ls}
	if len(ls) == 0 || ls[0].indent != 0 {
		t.Fatalf("document does not start at column 0")
	}
	v := p.block(0)
	if p.pos != len(ls) {
		t.Fatalf("line %d: unexpected indentation", ls[p.pos].no)
	}
	return v
}

type yamlLine struct {
	no, indent int
	text       string
}

type yamlParser struct {
	t     *testing.T
	lines []yamlLine
	pos   int
}

// block parses the mapping or sequence whose lines start at column indent.
func (p *yamlParser) block(indent int) any {
	if strings.HasPrefix(p.lines[p.pos].text, "- ") {
		var seq []any
		for p.pos < len(p.lines) && p.lines[p.pos].indent == indent && strings.HasPrefix(p.lines[p.pos].text, "- ") {
			// The item's content starts two columns further in.
			p.lines[p.pos].text = p.lines[p.pos].text[2:]
			p.lines[p.pos].indent += 2
			if _, _, isMap := strings.Cut(p.lines[p.pos].text, ":"); isMap && !strings.HasPrefix(p.lines[p.pos].text, `"`) {
				seq = append(seq, p.mapping(indent+2))
			} else {
				seq = append(seq, p.scalar(p.lines[p.pos].text))
				p.pos++
			}
		}
		return seq
	}
	return p.mapping(indent)
}

// mapping parses "key: value" and "key:" lines at column indent.
func (p *yamlParser) mapping(indent int) map[string]any {
	m := map[string]any{}
	for p.pos < len(p.lines) && p.lines[p.pos].indent == indent && !strings.HasPrefix(p.lines[p.pos].text, "- ") {
		l := p.lines[p.pos]
		key, value, ok := strings.Cut(l.text, ":")
		if !ok || key == "" || strings.Trim(key, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			p.t.Fatalf("line %d: not a plain key: %q", l.no, l.text)
		}
		if _, dup := m[key]; dup {
			p.t.Fatalf("line %d: key %q twice", l.no, key)
		}
		p.pos++
		if value == "" {
			if p.pos == len(p.lines) || p.lines[p.pos].indent <= indent && !(p.lines[p.pos].indent == indent && strings.HasPrefix(p.lines[p.pos].text, "- ")) {
				p.t.Fatalf("line %d: key %q without value", l.no, key)
			}
			m[key] = p.block(p.lines[p.pos].indent)
			continue
		}
		if value[0] != ' ' {
			p.t.Fatalf("line %d: no space after %q:", l.no, key)
		}
		m[key] = p.scalar(value[1:])
	}
	return m
}

// scalar parses one flow scalar of the subset.
func (p *yamlParser) scalar(s string) any {
	switch {
	case s == "{}":
		return map[string]any{}
	case s == "true":
		return true
	case s == "false":
		return false
	case strings.HasPrefix(s, `"`):
		v, rest, err := unquote(s)
		if err != nil || rest != "" {
			p.t.Fatalf("line %d: bad quoted scalar %q: %v (rest %q)", p.lines[p.pos].no, s, err, rest)
		}
		return v
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		p.t.Fatalf("line %d: plain scalar %q that is not an integer; strings must be quoted", p.lines[p.pos].no, s)
	}
	return n
}

// unquote decodes the YAML double-quoted scalar at the start of s, with the
// escapes yamlQuote writes, and returns what follows it.
func unquote(s string) (v, rest string, err error) {
	if !strings.HasPrefix(s, `"`) {
		return "", s, errors.New("no opening quote")
	}
	var b strings.Builder
	for i := 1; i < len(s); {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], nil
		case '\\':
			if i+1 == len(s) {
				return "", "", errors.New("backslash at the end")
			}
			switch e := s[i+1]; e {
			case '"', '\\':
				b.WriteByte(e)
				i += 2
			case 'x', 'u':
				n := 2
				if e == 'u' {
					n = 4
				}
				if i+2+n > len(s) {
					return "", "", fmt.Errorf("short \\%c escape", e)
				}
				r, err := strconv.ParseUint(s[i+2:i+2+n], 16, 32)
				if err != nil {
					return "", "", err
				}
				b.WriteRune(rune(r))
				i += 2 + n
			default:
				return "", "", fmt.Errorf("unknown escape \\%c", e)
			}
		default:
			if c < 0x20 {
				return "", "", fmt.Errorf("raw control character %#x", c)
			}
			b.WriteByte(c)
			i++
		}
	}
	return "", "", errors.New("no closing quote")
}
