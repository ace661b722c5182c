#!/usr/bin/env bash
# netbridge demo: run as root with `make demo` (or `sudo bash test/demo/demo.sh`).
#
# It builds netbridge, the CNI bridge and host-local plugins and a fake VM
# guest, then plays a tiny Kubernetes node in two throw-away network
# namespaces:
#
#   node netns  nbdemo-node-PID:  bridge nbdemo0 198.51.100.1/24 (made by the CNI bridge plugin)
#        |  veth
#   pod netns   nbdemo-pod-PID:   eth0 198.51.100.x/24  <-- tc redirect -->  tap nb-eth0
#                                                                               |
#                                                          fake guest on the tap (plays the VM)
#
# netbridge setup creates the tap and the redirect; a ping from the node is
# answered by the fake guest through the tap, and the guest pings the
# gateway back. Then netbridge teardown restores the pod netns, and
# everything is removed. The host network namespace is never touched: no
# links, addresses, routes or sysctls are changed there, and only
# documentation address ranges (198.51.100.0/24) are used.
#
# Exit status: 0 when every step and ping worked, non-zero otherwise.
set -euo pipefail

# --- helpers ---------------------------------------------------------------

step() { printf '\n== %s ==\n' "$*"; }
info() { printf '   %s\n' "$*"; }
# run prints a command, then runs it.
run() { printf '$ %s\n' "$*"; "$@"; }
indent() { sed 's/^/   /'; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# --- preconditions ---------------------------------------------------------

if [[ ${EUID:-$(id -u)} -ne 0 ]]; then
	die "must run as root (it creates network namespaces and taps): sudo make demo"
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
START=$SECONDS

ID=nbdemo-$$
NODE=nbdemo-node-$$
POD=nbdemo-pod-$$
BRIDGE=nbdemo0
SUBNET=198.51.100.0/24
NB=$ROOT/bin/netbridge
CNI_BIN=$ROOT/bin/cni
GUEST=$ROOT/bin/fakeguest

# State for cleanup: each is set only once its step has run.
TMP=""
NODE_MADE=""
POD_MADE=""
CNI_ADDED=""
SETUP_TRIED=""
TORN_DOWN=""
GUEST_PID=""
FAILED=0

# cleanup runs on every exit, also after an error or Ctrl-C, and undoes
# whatever was done, newest first. Each part is skipped if its step never ran.
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	step "cleanup"
	if [[ -n $GUEST_PID ]]; then
		if kill -0 "$GUEST_PID" 2>/dev/null; then
			info "stopping the fake guest (pid $GUEST_PID)"
			kill -TERM "$GUEST_PID"
		fi
		wait "$GUEST_PID" 2>/dev/null
		GUEST_PID=""
	fi
	if [[ -n $SETUP_TRIED && -z $TORN_DOWN ]]; then
		info "netbridge teardown --id $ID"
		"$NB" teardown --id "$ID" --state-dir "$TMP/state" || rc=1
	fi
	if [[ -n $CNI_ADDED ]]; then
		info "CNI DEL (bridge plugin, inside the node netns)"
		cni DEL >/dev/null || rc=1
	fi
	if [[ -n $POD_MADE ]]; then
		info "ip netns del $POD"
		ip netns del "$POD" || rc=1
	fi
	if [[ -n $NODE_MADE ]]; then
		info "ip netns del $NODE (the bridge goes with it)"
		ip netns del "$NODE" || rc=1
	fi
	if [[ -n $TMP ]]; then
		info "rm -rf $TMP"
		rm -rf -- "$TMP"
	fi
	if ((rc == 0)); then
		printf '\ndemo OK (%ds)\n' $((SECONDS - START))
	else
		printf '\ndemo FAILED (exit %d, %ds)\n' "$rc" $((SECONDS - START)) >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# cni runs the bridge plugin with command $1 for the pod's eth0. The plugin
# process runs inside the node netns, so the bridge, the host end of the
# veth and ip_forward end up there, never in the host netns.
cni() {
	ip netns exec "$NODE" env -i PATH="$PATH" \
		CNI_COMMAND="$1" CNI_CONTAINERID="$ID" CNI_NETNS="/run/netns/$POD" \
		CNI_IFNAME=eth0 CNI_PATH="$CNI_BIN" \
		"$CNI_BIN/bridge" <"$TMP/cni.conf"
}

step "0. prerequisites"
TMP=$(mktemp -d /tmp/nbdemo.XXXXXX)
mkdir -p "$TMP/state" "$TMP/cni-data"
[[ -d /usr/local/go/bin ]] && PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || die "needs the Go toolchain (go 1.26, https://go.dev/dl/) on PATH"
missing=()
for c in ip:iproute2 tc:iproute2 ping:iputils-ping jq:jq; do
	command -v "${c%%:*}" >/dev/null || missing+=("${c#*:}")
done
if ((${#missing[@]})); then
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	info "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$TMP/apt.log" 2>&1; then
		cat "$TMP/apt.log" >&2
		die "apt-get install ${missing[*]} failed"
	fi
fi
info "ip, tc, ping, jq, go: present"

step "1. build"
if [[ ! -x $NB ]]; then
	run go build -trimpath -o "$NB" ./cmd/netbridge
fi
run go build -o "$CNI_BIN/" \
	github.com/containernetworking/plugins/plugins/main/bridge \
	github.com/containernetworking/plugins/plugins/ipam/host-local
run go build -o "$GUEST" ./test/fakeguest/cmd/fakeguest
run "$NB" version

step "2. network namespaces: node $NODE, pod $POD"
run ip netns add "$NODE"
NODE_MADE=1
run ip netns add "$POD"
POD_MADE=1
ip -n "$NODE" link set lo up
ip -n "$POD" link set lo up

step "3. CNI ADD: bridge plugin, run inside the node netns, attaches the pod"
cat >"$TMP/cni.conf" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "nbdemo",
  "type": "bridge",
  "bridge": "$BRIDGE",
  "isGateway": true,
  "ipMasq": false,
  "ipam": {
    "type": "host-local",
    "ranges": [[{"subnet": "$SUBNET"}]],
    "routes": [{"dst": "0.0.0.0/0"}],
    "dataDir": "$TMP/cni-data"
  }
}
EOF
jq -c '{type, bridge, isGateway, ipMasq, ipam: {type: .ipam.type, subnet: .ipam.ranges[0][0].subnet}}' "$TMP/cni.conf"
CNI_ADDED=1 # set first: a failed ADD may leave parts behind for DEL
cni ADD >"$TMP/cni-result.json"
jq -r '.interfaces as $ifs | .ips[] |
	"   pod \($ifs[.interface].name) \(.address) gateway \(.gateway) (mac \($ifs[.interface].mac))"' "$TMP/cni-result.json"
jq -r '.interfaces[] | select(.sandbox == null or .sandbox == "") |
	"   node netns: \(.name) \(.mac)"' "$TMP/cni-result.json"
run ip -n "$POD" -br addr show dev eth0
# The pod netns as CNI left it, to compare after teardown.
pod_state() {
	ip -n "$POD" -br link
	ip -n "$POD" -br addr
	ip -n "$POD" route show table all | grep -v '^local\|^broadcast\|^multicast' || true
	tc -n "$POD" qdisc show
}
pod_state >"$TMP/pod-before.txt"

step "4. netbridge discover: what setup would attach (changes nothing)"
run "$NB" discover --netns "/run/netns/$POD"

step "5. netbridge setup: tap + tc redirect per interface"
SETUP_TRIED=1
run "$NB" setup --netns "/run/netns/$POD" --id "$ID" --state-dir "$TMP/state"

step "6. setup --output json: what a VM runtime reads (setup is idempotent)"
"$NB" setup --netns "/run/netns/$POD" --id "$ID" --state-dir "$TMP/state" --output json >"$TMP/setup.json"
jq -c '{id, model, nics: [.nics[] | {name, tap, guest_mac, mtu, addresses, routes}]}' "$TMP/setup.json"
TAP=$(jq -r '.nics[0].tap' "$TMP/setup.json")
GUEST_MAC=$(jq -r '.nics[0].guest_mac' "$TMP/setup.json")
ADDRS=$(jq -r '.nics[0].addresses | join(",")' "$TMP/setup.json")
POD_IP=$(jq -r '[.nics[0].addresses[] | select(contains("."))][0] | split("/")[0]' "$TMP/setup.json")
GW=$(jq -r '[.nics[0].routes[]? | .gw // empty | select(contains("."))][0] // empty' "$TMP/setup.json")
[[ -n $GW ]] || GW=$(jq -r '[.ips[] | .gateway // empty][0] // empty' "$TMP/cni-result.json")
[[ -n $TAP && -n $GUEST_MAC && -n $POD_IP && -n $GW ]] || die "setup JSON lacks tap, guest_mac, an IPv4 address or a gateway"
info "tap $TAP, guest mac $GUEST_MAC, guest addresses $ADDRS, gateway $GW"

step "7. netbridge check and render --for guest-json"
run "$NB" check --id "$ID" --state-dir "$TMP/state"
run "$NB" render --id "$ID" --for guest-json --state-dir "$TMP/state"

step "8. the redirect: tc ingress filters on eth0 and $TAP"
for dev in eth0 "$TAP"; do
	printf '$ tc -n %s filter show dev %s ingress   (abridged)\n' "$POD" "$dev"
	out=$(tc -n "$POD" filter show dev "$dev" ingress)
	# Keep the rule itself (u32 key node or matchall filter) and its action.
	short=$(grep -E 'fh [0-9a-f]+::[0-9a-f]+|matchall.*handle|mirred' <<<"$out" || true)
	indent <<<"${short:-$out}"
done

step "9. fake guest on $TAP (plays the VM: answers ARP and ping as $GUEST_MAC)"
GUEST_ARGS=(--netns "/run/netns/$POD" --tap "$TAP" --mac "$GUEST_MAC" --addr "$ADDRS"
	--gateway "$GW" --ping "$GW" --duration 45s --ready-file "$TMP/guest.ready")
printf '$ %s %s &\n' "$GUEST" "${GUEST_ARGS[*]}"
"$GUEST" "${GUEST_ARGS[@]}" >"$TMP/guest.log" 2>&1 &
GUEST_PID=$!
for _ in $(seq 100); do
	[[ -e $TMP/guest.ready ]] && break
	kill -0 "$GUEST_PID" 2>/dev/null || break
	sleep 0.1
done
if [[ ! -e $TMP/guest.ready ]]; then
	indent <"$TMP/guest.log"
	die "the fake guest did not become ready"
fi
grep 'started' "$TMP/guest.log" | indent || true

step "10. ping from the node to the pod address: answered by the guest through the tap"
if ! run ip netns exec "$NODE" ping -c 3 -W 2 "$POD_IP"; then
	info "FAILED: no reply from $POD_IP"
	FAILED=1
fi

step "11. the guest pings its gateway $GW (guest -> tap -> eth0 -> node)"
for _ in $(seq 80); do
	grep -q 'guest ping' "$TMP/guest.log" && break
	kill -0 "$GUEST_PID" 2>/dev/null || break
	sleep 0.1
done
grep 'guest ping' "$TMP/guest.log" | indent || info "no guest ping result"
if ! grep -q "guest ping $GW: reply" "$TMP/guest.log"; then
	info "FAILED: the guest got no reply from $GW"
	FAILED=1
fi

step "12. stop the guest (the VM exits); its counters"
guest_rc=0
if kill -0 "$GUEST_PID" 2>/dev/null; then
	kill -TERM "$GUEST_PID"
else
	info "FAILED: the fake guest had already exited"
	FAILED=1
fi
wait "$GUEST_PID" || guest_rc=$?
GUEST_PID=""
grep -v 'started\|guest ping' "$TMP/guest.log" | indent || true
replies=$(sed -n 's/.*echo replies sent \([0-9]*\),.*/\1/p' "$TMP/guest.log")
if ((${replies:-0} >= 3)); then
	info "the node's 3 echo replies were written by the fake guest into $TAP"
else
	info "FAILED: the guest sent ${replies:-no} echo replies, expected at least 3"
	FAILED=1
fi
if ((guest_rc != 0)); then
	info "FAILED: the fake guest exited with status $guest_rc"
	FAILED=1
fi

step "13. netbridge teardown: the pod netns is back as CNI left it"
run "$NB" teardown --id "$ID" --state-dir "$TMP/state"
TORN_DOWN=1
run ip -n "$POD" -br link
printf '$ tc -n %s qdisc show dev eth0 ingress\n' "$POD"
out=$(tc -n "$POD" qdisc show dev eth0 ingress)
indent <<<"${out:-(no ingress qdisc)}"
pod_state >"$TMP/pod-after.txt"
if ip -n "$POD" -o link | grep -q ": ${TAP}[@:]"; then
	info "FAILED: $TAP still exists"
	FAILED=1
elif tc -n "$POD" qdisc show dev eth0 ingress | grep -q ingress; then
	info "FAILED: eth0 still has an ingress qdisc"
	FAILED=1
elif ! diff -u "$TMP/pod-before.txt" "$TMP/pod-after.txt" | indent; then
	info "FAILED: the pod netns differs from before setup (above)"
	FAILED=1
else
	info "no $TAP, no ingress qdisc; links, addresses, routes and qdiscs as before setup"
fi

if ((FAILED)); then
	die "a step failed (see FAILED above)"
fi
