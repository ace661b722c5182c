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
#	NBTEST HOTPLUG WAIT <seconds>    nbtest.hotplug: up, waiting for a NIC
#	NBTEST HOTPLUG <mac> <ifname>    nbtest.hotplug: a NIC of a netbridge.nic=
#	                                 parameter appeared
#	NBTEST NIC <mac> <ifname>        a netbridge.nic= parameter matched a NIC
#	NBTEST NET OK|FAIL               every NIC configured, or not
#	NBTEST PING <ip> OK|FAIL         nbtest.ping result, per address
#	NBTEST WAIT <seconds>            nbtest.wait started
#	NBTEST ECHOES v4=<n> v6=<n>      echo requests the guest answered
#	NBTEST NIC GONE <mac>            nbtest.hotplug: a hot-plugged NIC was removed
#	NBTEST POWERDOWN WAIT <seconds>  nbtest.powerdown started
#	NBTEST POWER BUTTON              nbtest.powerdown: the button was pressed
#	NBTEST DONE                      about to power off
#
# Actions (kernel command line):
#
#	nbtest.ping=IP[,IP]...   ping each address (up to nbtest.tries times, 1 s each)
#	nbtest.tries=N           attempts per address (default 10)
#	nbtest.wait=SECONDS      then stay up at most SECONDS, answering pings
#	nbtest.echoes=V4,V6      leave the wait early once at least V4 IPv4 and
#	                         V6 IPv6 echo requests have been answered
#	nbtest.hotplug=SECONDS   the NICs are hot-plugged: boot without them,
#	                         wait at most SECONDS for one of them to appear,
#	                         configure the NICs then (as at boot), run the
#	                         actions above, and finally wait at most SECONDS
#	                         for the NICs to be unplugged again
#	nbtest.late=MAC[,MAC]... with nbtest.hotplug: only the NICs of these MACs
#	                         are hot-plugged (the others are there at boot):
#	                         wait for all of them, then configure every NIC,
#	                         and at the end wait for these to be unplugged
#	nbtest.powerdown=SECONDS last, wait at most SECONDS for a press of the
#	                         ACPI power button (QMP system_powerdown)

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

# nic_macs: the MAC of every netbridge.nic= parameter.
nic_macs() {
	for p in $cmdline; do
		case "$p" in
		netbridge.nic=*)
			p=${p#netbridge.nic=}
			echo "${p%%,*}"
			;;
		esac
	done
}

# present MAC: the interface whose address is MAC, now (no waiting).
present() {
	for i in $(ls /sys/class/net); do
		# A NIC being unplugged may vanish between ls and cat.
		if [ "$(cat "/sys/class/net/$i/address" 2>/dev/null)" = "$1" ]; then
			echo "$i"
			return 0
		fi
	done
	return 1
}

# ifname_of MAC: the interface whose address is MAC, waiting up to 5 s for
# the virtio devices to register.
ifname_of() {
	polls=0
	while [ $polls -lt 50 ]; do
		present "$1" && return 0
		polls=$((polls + 1))
		sleep 0.1
	done
	return 1
}

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

# configure_nics: applies every netbridge.nic= parameter to the NIC with its
# MAC, prints the result and NET OK (no error so far) or NET FAIL.
configure_nics() {
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
}

# NICs to be hot-plugged are absent at boot: wait for them, then
# configure them the same way.
hotplug=$(arg nbtest.hotplug)
late=$(arg nbtest.late)
plugged=""
if [ -n "$hotplug" ] && [ -n "$late" ]; then
	say "HOTPLUG WAIT $hotplug"
	IFS=,
	set -- $late
	IFS=$ifs
	ticks=0
	for mac in "$@"; do
		while ! present "$mac" >/dev/null && [ $ticks -lt $((hotplug * 10)) ]; do
			sleep 0.1
			ticks=$((ticks + 1))
		done
		if ifname=$(present "$mac"); then
			say "HOTPLUG $mac $ifname"
			plugged="$plugged $mac"
		else
			fail "NIC $mac did not appear within $hotplug s"
		fi
	done
	configure_nics
elif [ -n "$hotplug" ]; then
	say "HOTPLUG WAIT $hotplug"
	ticks=0
	while [ $ticks -lt $((hotplug * 10)) ]; do
		for mac in $(nic_macs); do
			if ifname=$(present "$mac"); then
				say "HOTPLUG $mac $ifname"
				plugged="$plugged $mac"
			fi
		done
		[ -n "$plugged" ] && break
		sleep 0.1
		ticks=$((ticks + 1))
	done
	if [ -z "$plugged" ]; then
		fail "no NIC of a netbridge.nic= parameter appeared within $hotplug s"
		say "NET FAIL"
		finish
	fi
	configure_nics
	# The NICs configured now: the ones whose removal is awaited at the end.
	plugged=""
	for mac in $(nic_macs); do
		present "$mac" >/dev/null && plugged="$plugged $mac"
	done
else
	configure_nics
fi

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

# Hot-plugged NICs: wait (at most nbtest.hotplug seconds in all) for them
# to be unplugged.
if [ -n "$plugged" ]; then
	ticks=0
	for mac in $plugged; do
		while present "$mac" >/dev/null && [ $ticks -lt $((hotplug * 10)) ]; do
			sleep 0.1
			ticks=$((ticks + 1))
		done
		if present "$mac" >/dev/null; then
			fail "NIC $mac still present $hotplug s after the actions"
		else
			say "NIC GONE $mac"
		fi
	done
fi

# presses: how often the ACPI power button was pressed (the button module
# handles it; the kernel counts it).
presses() {
	set -- $(cat /sys/firmware/acpi/interrupts/ff_pwr_btn 2>/dev/null)
	echo "${1:-0}"
}
powerdown=$(arg nbtest.powerdown)
if [ -n "$powerdown" ]; then
	pressed=$(presses)
	say "POWERDOWN WAIT $powerdown"
	ticks=0
	while [ "$(presses)" -le "$pressed" ] && [ $ticks -lt $((powerdown * 10)) ]; do
		sleep 0.1
		ticks=$((ticks + 1))
	done
	if [ "$(presses)" -gt "$pressed" ]; then
		say "POWER BUTTON"
	else
		fail "no ACPI power button press within $powerdown s"
	fi
fi
finish
