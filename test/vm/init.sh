#!/bin/sh
# /init of the netbridge VM test guest: a busybox ash script, PID 1.
#
# It configures every NIC only from the netbridge.nic= parameters on the
# kernel command line (see hypervisor/guest.Cmdline), runs the nbtest.*
# actions and powers off. Every line meant for the test starts with
# "NBTEST " on the serial console:
#
#	NBTEST INIT                      the script started
#	NBTEST ERROR <what>              something failed (the test fails on it)
#	NBTEST WARN <what>               something could not be applied
#	NBTEST NIC <mac> <ifname>        a netbridge.nic= parameter matched a NIC
#	NBTEST NET OK|FAIL               every NIC configured, or not
#	NBTEST PING <ip> OK|FAIL         nbtest.ping result, per address
#	NBTEST WAIT <seconds>            nbtest.wait started
#	NBTEST ECHOES v4=<n> v6=<n>      echo requests the guest answered
#	NBTEST DONE                      about to power off
#
# Actions (kernel command line):
#
#	nbtest.ping=IP[,IP]...   ping each address (up to nbtest.tries times, 1 s each)
#	nbtest.tries=N           attempts per address (default 10)
#	nbtest.wait=SECONDS      then stay up at most SECONDS, answering pings
#	nbtest.echoes=V4,V6      leave the wait early once at least V4 IPv4 and
#	                         V6 IPv6 echo requests have been answered

export PATH=/bin
ifs=$IFS
set -f # no pathname expansion of command-line values

say() { echo "NBTEST $*"; }

errors=0
fail() {
	errors=$((errors + 1))
	say "ERROR $*"
}

# run CMD...: runs CMD and reports a failure with the command line.
run() {
	out=$("$@" 2>&1) || fail "$*: $out"
}

finish() {
	say DONE
	poweroff -f
	sleep 10
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo # the firmware leaves its last line unterminated
say INIT

# No duplicate address detection: addresses are usable at once, as on the
# node side (busybox ip has no "nodad").
echo 0 >/proc/sys/net/ipv6/conf/default/accept_dad
echo 0 >/proc/sys/net/ipv6/conf/all/accept_dad

while read -r m; do
	[ -n "$m" ] && run insmod "/lib/modules/$m.ko"
done </lib/modules/order
run ip link set lo up

cmdline=$(cat /proc/cmdline)

# ifname_of MAC: the interface whose address is MAC, waiting up to 5 s for
# the virtio devices to register.
ifname_of() {
	polls=0
	while [ $polls -lt 50 ]; do
		for i in $(ls /sys/class/net); do
			if [ "$(cat "/sys/class/net/$i/address")" = "$1" ]; then
				echo "$i"
				return 0
			fi
		done
		polls=$((polls + 1))
		sleep 0.1
	done
	return 1
}

# Pass 1: per NIC, MTU, addresses, link up; routes and neighbours are
# queued so that every on-link route exists before any gateway route.
mkdir -p /run
: >/run/onlink
: >/run/via
: >/run/neigh
for p in $cmdline; do
	case "$p" in
	netbridge.nic=*) ;;
	*) continue ;;
	esac
	IFS=,
	set -- ${p#netbridge.nic=}
	IFS=$ifs
	mac=$1
	shift
	if ! ifname=$(ifname_of "$mac"); then
		fail "no interface has MAC $mac"
		continue
	fi
	say "NIC $mac $ifname"
	echo 0 >"/proc/sys/net/ipv6/conf/$ifname/accept_dad"
	addrs=""
	for f in "$@"; do
		case "$f" in
		mtu=*) run ip link set "$ifname" mtu "${f#mtu=}" ;;
		addr=*) addrs="$addrs ${f#addr=}" ;;
		route=*)
			IFS=@
			set -- ${f#route=}
			IFS=$ifs
			if [ -n "$2" ]; then
				echo "$ifname $1 $2 $3" >>/run/via
			else
				echo "$ifname $1 - $3" >>/run/onlink
			fi
			;;
		neigh=*)
			IFS=@
			set -- ${f#neigh=}
			IFS=$ifs
			echo "$ifname $1 $2" >>/run/neigh
			;;
		*) say "WARN $mac: unknown field $f" ;;
		esac
	done
	run ip link set "$ifname" up
	for a in $addrs; do
		run ip addr add "$a" dev "$ifname"
	done
done

# add_routes FILE: one route per line: ifname dst gw|- [mtu].
add_routes() {
	while read -r ifname dst gw mtu; do
		set -- ip route add "$dst"
		[ "$gw" != - ] && set -- "$@" via "$gw"
		set -- "$@" dev "$ifname"
		[ -n "$mtu" ] && set -- "$@" mtu "$mtu"
		run "$@"
	done <"$1"
}
add_routes /run/onlink
add_routes /run/via

while read -r ifname ip lladdr; do
	case "$ip" in
	*:*) say "WARN neighbour $ip@$lladdr on $ifname not set: busybox cannot add IPv6 neighbours; left to neighbour discovery" ;;
	*) run arp -i "$ifname" -s "$ip" "$lladdr" ;;
	esac
done </run/neigh

echo "--- addresses"
ip addr
echo "--- routes"
ip route
ip -6 route
echo "--- neighbours"
ip neigh
echo "---"
if [ $errors -eq 0 ]; then say "NET OK"; else say "NET FAIL"; fi

# arg KEY: the value of the command-line parameter KEY=.
arg() {
	for p in $cmdline; do
		case "$p" in
		"$1"=*)
			echo "${p#*=}"
			return
			;;
		esac
	done
}

echoes4() { awk '/^Icmp:/ { if (!c) { for (i = 1; i <= NF; i++) if ($i == "InEchos") c = i } else { print $c; exit } }' /proc/net/snmp; }
echoes6() { awk '$1 == "Icmp6InEchos" { print $2 }' /proc/net/snmp6; }

tries=$(arg nbtest.tries)
tries=${tries:-10}
pings=$(arg nbtest.ping)
IFS=,
set -- $pings
IFS=$ifs
for ip in "$@"; do
	n=0
	result=FAIL
	while [ $n -lt "$tries" ]; do
		if ping -c 1 -W 1 "$ip" >/dev/null 2>&1; then
			result=OK
			break
		fi
		n=$((n + 1))
	done
	say "PING $ip $result"
done

wait=$(arg nbtest.wait)
if [ -n "$wait" ]; then
	echoes=$(arg nbtest.echoes)
	IFS=,
	set -- $echoes
	IFS=$ifs
	want4=$1
	want6=$2
	say "WAIT $wait"
	ticks=0
	while [ $ticks -lt $((wait * 10)) ]; do
		if [ -n "$want4$want6" ] && [ "$(echoes4)" -ge "${want4:-0}" ] && [ "$(echoes6)" -ge "${want6:-0}" ]; then
			# Let the last reply leave before powering off.
			sleep 0.2
			break
		fi
		sleep 0.1
		ticks=$((ticks + 1))
	done
fi
say "ECHOES v4=$(echoes4) v6=$(echoes6)"
finish
