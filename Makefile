# netbridge: make build | test | lint | demo | bench | install
GO        ?= go
PREFIX    ?= /usr/local
DESTDIR   ?=
BIN       := bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
# How many inputs each fuzz target runs in `make test`. A count, not a
# duration: a duration races the Go fuzz coordinator (golang/go#75804,
# fixed in Go 1.27) and fails with "context deadline exceeded" at random.
FUZZTIME  ?= 100000x

.PHONY: all build test unit fuzz lint demo bench install clean

all: build

# Static binaries (CGO_ENABLED=0): no dynamic loader at start-up, which
# every hook and CNI call pays.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/netbridge ./cmd/netbridge
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w -X main.versionString=$(VERSION)' -o $(BIN)/netbridge-cni ./cmd/netbridge-cni

# Root is needed: the tests create their own network namespaces (never
# touching the host's) and run real frames through real taps.
test: lint unit fuzz

unit:
	GOMAXPROCS=$${GOMAXPROCS:-4} $(GO) test -race -count=1 ./...

fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg > /tmp/netbridge-fuzz.log 2>&1 || { cat /tmp/netbridge-fuzz.log; exit 1; }; \
	  done; \
	done

# Every Go tool (staticcheck, the CNI plugins the tests run) is pinned by
# a tool directive in go.mod and run with `go tool`: nothing is taken from
# PATH or GOPATH/bin.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

demo: build
	bash test/demo/demo.sh

# The performance report of issues 8 and 16, as markdown on stdout (progress
# on stderr); root, about 5 minutes. netbridge, netbridge-cni and the floor
# (nbfloor) are built the same way into a temporary directory, removed
# afterwards. TCREDIRECTTAP, when set, is a tc-redirect-tap binary the CNI
# plugin is measured against (section 6); nothing here downloads it, and
# without it the report says it was not measured. Flags for the driver in
# BENCHFLAGS, e.g. BENCHFLAGS='-rounds 10 -json bench.json', or
# BENCHFLAGS='-only tcredirect' for that section alone (a minute).
BENCHFLAGS    ?=
TCREDIRECTTAP ?=
bench:
	@tmp=$$(mktemp -d /tmp/netbridge-bench.XXXXXX) || exit 1; \
	  trap 'rm -rf "$$tmp"' EXIT; trap 'exit 130' INT TERM HUP; \
	  for b in netbridge:./cmd/netbridge netbridge-cni:./cmd/netbridge-cni nbfloor:./test/bench/cmd/nbfloor; do \
	    CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o "$$tmp/$${b%%:*}" "$${b#*:}" || exit 1; \
	  done; \
	  $(GO) build -o "$$tmp/nbbench" ./test/bench/cmd/nbbench || exit 1; \
	  "$$tmp/nbbench" -netbridge "$$tmp/netbridge" -netbridge-cni "$$tmp/netbridge-cni" -nbfloor "$$tmp/nbfloor" \
	    $(if $(TCREDIRECTTAP),-tc-redirect-tap "$(TCREDIRECTTAP)") -baseline test/bench/baseline.sh -go "$(GO)" $(BENCHFLAGS)

HOOKSDIR  ?= $(PREFIX)/share/containers/oci/hooks.d
CNIBINDIR ?= /opt/cni/bin

# Installs the binary, two containers hooks.d entries (podman, CRI-O):
# setup at prestart and teardown at poststop, for pod sandboxes only, and
# the chained CNI plugin as CNIBINDIR/netbridge.
install: build
	install -D -m 0755 $(BIN)/netbridge $(DESTDIR)$(PREFIX)/bin/netbridge
	install -d -m 0755 $(DESTDIR)$(HOOKSDIR)
	$(BIN)/netbridge hooks-config --binary $(PREFIX)/bin/netbridge --stage prestart > $(DESTDIR)$(HOOKSDIR)/50-netbridge-prestart.json
	$(BIN)/netbridge hooks-config --binary $(PREFIX)/bin/netbridge --stage poststop > $(DESTDIR)$(HOOKSDIR)/50-netbridge-poststop.json
	install -D -m 0755 $(BIN)/netbridge-cni $(DESTDIR)$(CNIBINDIR)/netbridge

clean:
	rm -rf $(BIN)
