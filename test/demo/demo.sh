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
# gateway back. Then a real VM takes the fake guest's place on the same
# tap: QEMU (TCG, no KVM needed), started inside the pod netns, boots
# Debian's cloud kernel with the busybox initramfs of the VM tests
# (test/vm), whose /init configures the NIC from netbridge's guest command
# line, pings the gateway, answers the node's pings and powers off. Then
# netbridge teardown restores the pod netns, and everything is removed.
# The host network namespace is never touched: no links, addresses, routes
# or sysctls are changed there, and only documentation address ranges
# (198.51.100.0/24) are used. Missing Debian packages are installed with
# apt-get (iproute2, iputils-ping, jq; for the VM qemu-system-x86,
# linux-image-cloud-amd64, busybox-static).
#
# Exit status: 0 when every step and ping worked, non-zero otherwise.
set -euo pipefail

# --- helpers ---------------------------------------------------------------

step() { printf '\n== %s ==\n' "$*"; }
info() { printf '   %s\n' "$*"; }
# run prints a command, then runs it.
run() { printf '$ %s\n' "$*"; "$@"; }
indent() { sed 's/^/   /'; }
# quoted prints its arguments as one line, single-quoting those with spaces.
quoted() {
	local a words=()
	for a; do
		[[ $a == *[[:space:]]* ]] && a="'$a'"
		words+=("$a")
	done
	printf '%s' "${words[*]}"
}
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }
# install_packages installs Debian packages with apt-get (index updated
# first), showing apt's output only when it fails.
install_packages() {
	info "installing $*"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	if ! apt-get install -y -qq --no-install-recommends "$@" >"$TMP/apt.log" 2>&1; then
		cat "$TMP/apt.log" >&2
		die "apt-get install $* failed"
	fi
}

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
MKINITRAMFS=$ROOT/bin/mkinitramfs

# State for cleanup: each is set only once its step has run.
TMP=""
NODE_MADE=""
POD_MADE=""
CNI_ADDED=""
SETUP_TRIED=""
TORN_DOWN=""
GUEST_PID=""
QEMU_PID=""
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
	if [[ -n $QEMU_PID ]]; then
		if kill -0 "$QEMU_PID" 2>/dev/null; then
			info "killing QEMU (pid $QEMU_PID)"
			kill -KILL "$QEMU_PID"
		fi
		wait "$QEMU_PID" 2>/dev/null
		QEMU_PID=""
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
	install_packages "${missing[@]}"
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
run go build -o "$MKINITRAMFS" ./test/vm/cmd/mkinitramfs
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

# --- a real VM on the same tap ---------------------------------------------

# serial prints the guest's serial console so far, without the CRs of its
# line ends.
serial() { tr -d '\r' <"$TMP/serial.log"; }
# on_serial succeeds if a line of the serial console starts with $1.
on_serial() { grep -q -- "^$1" "$TMP/serial.log"; }
# serial_wait waits up to $2 seconds for a line of the guest's serial
# console starting with $1; it fails early if QEMU has exited.
serial_wait() {
	local deadline=$((SECONDS + $2))
	while ((SECONDS < deadline)); do
		on_serial "$1" && return 0
		if ! kill -0 "$QEMU_PID" 2>/dev/null; then
			on_serial "$1" && return 0
			info "QEMU exited before \"$1\" appeared"
			return 1
		fi
		sleep 0.1
	done
	info "\"$1\" did not appear on the serial console within $2 s"
	return 1
}
# vm_failed shows the guest's console and QEMU's output, then stops.
vm_failed() {
	info "FAILED: $*"
	info "serial console:"
	serial | indent || true
	info "QEMU output:"
	indent <"$TMP/qemu.log" || true
	die "the VM part failed"
}

step "13. a real VM: QEMU, the Debian cloud kernel, a static busybox"
missing=()
for p in qemu-system-x86 linux-image-cloud-amd64 busybox-static; do
	[[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
	install_packages "${missing[@]}"
fi
info "qemu-system-x86, linux-image-cloud-amd64, busybox-static: present"

step "14. the guest's initramfs (the VM tests' one: busybox, virtio-net, test/vm/init.sh)"
printf '$ %s -o %s\n' "$MKINITRAMFS" "$TMP/initramfs.cpio.gz"
KERNEL=$("$MKINITRAMFS" -o "$TMP/initramfs.cpio.gz")
info "kernel $KERNEL, initramfs $(($(stat -c %s "$TMP/initramfs.cpio.gz") / 1024)) KiB"

step "15. boot the VM inside the pod netns: QEMU opens $TAP by name"
run "$NB" render --id "$ID" --for qemu --state-dir "$TMP/state"
run "$NB" render --id "$ID" --for guest-cmdline --state-dir "$TMP/state"
# render quotes for a POSIX shell; eval splits it back into the arguments.
eval "NET_ARGS=($("$NB" render --id "$ID" --for qemu --state-dir "$TMP/state"))"
NIC_CMDLINE=$("$NB" render --id "$ID" --for guest-cmdline --state-dir "$TMP/state")
# The guest's /init (test/vm/init.sh) configures eth0 from netbridge.nic=,
# pings the gateway, then answers pings until it has answered 3 (at most
# 20 s) and powers off.
APPEND="console=ttyS0 panic=-1 quiet $NIC_CMDLINE nbtest.ping=$GW nbtest.wait=20 nbtest.echoes=3,0"
QEMU_ARGS=(-machine "pc,accel=tcg" -cpu max -smp 1 -m 256 -nodefaults -nographic -no-reboot
	-serial "file:$TMP/serial.log" -kernel "$KERNEL" -initrd "$TMP/initramfs.cpio.gz" -append "$APPEND"
	"${NET_ARGS[@]}")
printf '$ ip netns exec %s qemu-system-x86_64 %s &\n' "$POD" "$(quoted "${QEMU_ARGS[@]}")"
: >"$TMP/serial.log"
# ip netns exec execs QEMU: $! is QEMU's pid.
ip netns exec "$POD" qemu-system-x86_64 "${QEMU_ARGS[@]}" >"$TMP/qemu.log" 2>&1 &
QEMU_PID=$!
info "QEMU pid $QEMU_PID; waiting for the guest to configure its NIC"
serial_wait "NBTEST NET " 60 || vm_failed "the guest did not come up"
serial | grep -E '^NBTEST (INIT|NIC|NET)|^ +inet .* global|^default' | indent || true
on_serial "NBTEST NET OK" || vm_failed "the guest could not configure its NIC"

step "16. the VM pings its gateway $GW (VM -> $TAP -> eth0 -> node), from its serial console"
serial_wait "NBTEST PING $GW " 30 || vm_failed "the guest did not report its ping"
serial | grep "^NBTEST PING" | indent || true
if ! on_serial "NBTEST PING $GW OK"; then
	info "FAILED: the VM got no reply from $GW"
	FAILED=1
fi

step "17. the node pings the VM at $POD_IP (node -> eth0 -> $TAP -> VM)"
serial_wait "NBTEST WAIT" 30 || vm_failed "the guest did not start waiting for pings"
if ! run ip netns exec "$NODE" ping -c 3 -W 2 "$POD_IP"; then
	info "FAILED: no reply from $POD_IP"
	FAILED=1
fi
serial_wait "NBTEST ECHOES" 30 || vm_failed "the guest did not report its echo counters"
serial | grep "^NBTEST ECHOES" | indent || true
echoes=$(serial | sed -n 's/^NBTEST ECHOES v4=\([0-9]*\).*/\1/p')
if ((${echoes:-0} >= 3)); then
	info "the VM's kernel answered the node's 3 echo requests (the pod netns cannot: tc redirects eth0 to $TAP)"
else
	info "FAILED: the VM answered ${echoes:-no} echo requests, expected at least 3"
	FAILED=1
fi

step "18. power off: the VM has answered and powers itself off"
serial_wait "NBTEST DONE" 30 || vm_failed "the guest did not finish"
qemu_rc=0
for _ in $(seq 300); do
	kill -0 "$QEMU_PID" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$QEMU_PID" 2>/dev/null; then
	info "FAILED: QEMU still runs 30 s after the guest powered off; killing it"
	kill -KILL "$QEMU_PID"
	FAILED=1
fi
wait "$QEMU_PID" || qemu_rc=$?
QEMU_PID=""
if ((qemu_rc == 0)); then
	info "the guest powered off; QEMU exited with status 0"
else
	info "FAILED: QEMU exited with status $qemu_rc"
	indent <"$TMP/qemu.log"
	FAILED=1
fi
if on_serial "NBTEST ERROR"; then
	serial | grep '^NBTEST ERROR' | indent
	info "FAILED: the guest's init reported errors"
	FAILED=1
fi

# --- teardown ----------------------------------------------------------------

step "19. netbridge teardown: the pod netns is back as CNI left it"
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
