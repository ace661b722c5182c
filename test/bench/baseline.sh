#!/bin/bash
# baseline.sh: the shell baseline of `netbridge setup` / `netbridge teardown`
# with the tcfilter model, written with ip(8) and tc(8) the way an operator
# would. make bench times it against netbridge and the floor (nbfloor).
#
#   baseline.sh setup    NETNS IFNAME TAP [IFNAME TAP ...]
#   baseline.sh teardown NETNS IFNAME TAP [IFNAME TAP ...]
#
# NETNS is a name under /run/netns (a path there is cut to its name).
# For each IFNAME/TAP pair, setup creates TAP (vnet_hdr, persistent), gives it
# a MAC derived from NETNS/IFNAME, IFNAME's MTU and brings it up, adds an
# ingress qdisc on both and a u32 match-all filter with a mirred egress
# redirect each way at prio 20034. Teardown deletes TAP and IFNAME's ingress
# qdisc (the filters go with them).
#
# NB_BASELINE_EXEC=netns runs every command as `ip netns exec NETNS CMD`
# instead of with `ip -n NETNS` / `tc -n NETNS` (the default, which enters
# the netns inside ip/tc without another exec and without remounting /sys).
set -euo pipefail

usage() {
	echo "usage: $0 setup|teardown NETNS IFNAME TAP [IFNAME TAP ...]" >&2
	exit 2
}

[ $# -ge 4 ] && [ $(( ($# - 2) % 2 )) -eq 0 ] || usage
op=$1
netns=${2##*/}
shift 2

if [ "${NB_BASELINE_EXEC:-}" = netns ]; then
	ipc() { ip netns exec "$netns" ip "$@"; }
	tcc() { ip netns exec "$netns" tc "$@"; }
else
	ipc() { ip -n "$netns" "$@"; }
	tcc() { tc -n "$netns" "$@"; }
fi

# mac_for prints a locally administered unicast MAC hashed (FNV-1a, in bash
# arithmetic: no extra process) from its argument.
mac_for() {
	local s=$1 h=2166136261 i c
	for ((i = 0; i < ${#s}; i++)); do
		printf -v c '%d' "'${s:i:1}"
		h=$(( ((h ^ c) * 16777619) & 0xffffffff ))
	done
	printf '02:%02x:%02x:%02x:%02x:%02x' $(( (h >> 24) & 255 )) $(( (h >> 16) & 255 )) $(( (h >> 8) & 255 )) $(( h & 255 )) $(( (h >> 4) & 255 ))
}

setup_one() {
	local ifname=$1 tap=$2 line mtu
	line=$(ipc -o link show dev "$ifname")
	mtu=${line#* mtu }
	mtu=${mtu%% *}
	ipc tuntap add dev "$tap" mode tap vnet_hdr
	ipc link set dev "$tap" address "$(mac_for "$netns/$ifname")" mtu "$mtu" up
	tcc qdisc add dev "$ifname" ingress
	tcc qdisc add dev "$tap" ingress
	tcc filter add dev "$ifname" parent ffff: prio 20034 protocol all u32 match u32 0 0 action mirred egress redirect dev "$tap"
	tcc filter add dev "$tap" parent ffff: prio 20034 protocol all u32 match u32 0 0 action mirred egress redirect dev "$ifname"
}

teardown_one() {
	local ifname=$1 tap=$2
	ipc link del dev "$tap"
	tcc qdisc del dev "$ifname" ingress
}

case $op in
setup)
	while [ $# -gt 0 ]; do setup_one "$1" "$2"; shift 2; done
	;;
teardown)
	while [ $# -gt 0 ]; do teardown_one "$1" "$2"; shift 2; done
	;;
*)
	usage
	;;
esac
