#!/bin/sh
# Record what Debian's rpcinfo prints against the real rpcbind, as golden
# files for portmapctl's tests (testdata/rpcinfo/*.txt). Runs a fresh
# `rpcbind -f` in a private network + mount namespace (own loopback, own
# tmpfs /run), so the host's port 111 and /run/rpcbind.sock are untouched.
# Must run as root; needs rpcbind, iproute2 and python3.
#
# Usage: cmd/portmapctl/testdata/record.sh
#
# Each case file holds the command, its exit status, its stdout and its
# stderr. The cases run in order against one daemon; the states they see
# (the table each was recorded with) are named in the file and rebuilt by
# the Go tests (see golden_test.go).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out="$here/rpcinfo"

if [ "${1:-}" = "--inside" ]; then
	mount -t tmpfs tmpfs /run
	mkdir -p /run/lock
	rpcbind -f &
	pid=$!
	i=0
	until rpcinfo -T tcp 127.0.0.1 100000 2 >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 100 ] || { echo "rpcbind did not come up" >&2; kill $pid; exit 1; }
		sleep 0.1
	done
	state=fresh
	# case NAME ARGS...: run rpcinfo ARGS and write rpcinfo/NAME.txt
	# Set for one case: the results of a GETSTAT made just before it
	# (getstat.py), and the user it runs as (a setpriv prefix).
	getstat=
	user=
	case_() {
		name=$1
		shift
		rc=0
		if [ -n "$user" ]; then
			setpriv --reuid="$user" --regid="$user" --clear-groups rpcinfo "$@" >/tmp/rec.out 2>/tmp/rec.err || rc=$?
		else
			rpcinfo "$@" >/tmp/rec.out 2>/tmp/rec.err || rc=$?
		fi
		{
			echo "# command: rpcinfo $*"
			echo "# state: $state"
			[ -z "$getstat" ] || echo "# getstat: $getstat"
			[ -z "$user" ] || echo "# uid: $user"
			echo "# exit: $rc"
			echo "-- stdout --"
			cat /tmp/rec.out
			echo "-- stderr --"
			cat /tmp/rec.err
		} >"$out/$name.txt"
	}
	reg() { python3 "$here/pmapreg.py" "$@" >/dev/null; }
	# stats_ NAME ARGS...: case_ for rpcinfo -m, with the GETSTAT results
	# it saw less its own call.
	stats_() {
		getstat=$(python3 "$here/getstat.py")
		case_ "$@"
		getstat=
	}

	case_ dump-fresh -p 127.0.0.1
	case_ rpcb-dump-fresh 127.0.0.1
	case_ rpcb-summary-fresh -s 127.0.0.1
	case_ ping-udp-v2 -T udp 127.0.0.1 100000 2
	case_ ping-tcp-v2 -T tcp 127.0.0.1 100000 2
	case_ ping-udp-all -T udp 127.0.0.1 100000
	case_ ping-tcp-all -T tcp 127.0.0.1 100000
	case_ ping-tcp-name -T tcp 127.0.0.1 portmapper 2
	case_ ping-udp-alias -T udp 127.0.0.1 rpcbind 3
	case_ ping-udp-v5 -T udp 127.0.0.1 100000 5
	case_ ping-tcp-v5 -T tcp 127.0.0.1 100000 5
	case_ ping-u-v5 -u 127.0.0.1 100000 5
	case_ ping-t-v2 -t 127.0.0.1 100000 2
	case_ ping-udp-unregistered -T udp 127.0.0.1 200001 1
	case_ ping-tcp-unregistered -T tcp 127.0.0.1 200001
	case_ ping-udp-unknown-name -T udp 127.0.0.1 nosuchprogram 1
	case_ ping-udp-bad-vers -T udp 127.0.0.1 100000 two
	case_ ping-udp-bad-prog -T udp 127.0.0.1 1x 2
	# rpcinfo's views over version 3 and 4 (portmapctl table, summary,
	# addrlist, stats, ping -T NETID).
	case_ rpcb-dump-local-fresh
	case_ rpcb-summary-local-fresh -s
	case_ rpcb-dump-tcp6-fresh -T tcp6 ::1
	case_ rpcb-dump-udp-fresh -T udp 127.0.0.1
	case_ addrlist-fresh -l 127.0.0.1 100000 4
	case_ addrlist-v6-fresh -l ::1 100000 3
	case_ addrlist-udp-fresh -T udp -l 127.0.0.1 100000 2
	case_ addrlist-unregistered -l 127.0.0.1 200001 1
	case_ ping-tcp6-v4 -T tcp6 ::1 100000 4
	case_ ping-udp6-all -T udp6 ::1 100000
	case_ ping-local-v3 -T local localhost 100000 3
	case_ ping-local-all -T local localhost rpcbind
	case_ ping-tcp6-unregistered -T tcp6 ::1 200001 1
	case_ ping-udp6-v5 -T udp6 ::1 100000 5
	case_ ping-bad-netid -T sctp 127.0.0.1 100000 2
	# Loopback can neither broadcast nor multicast: no transport to
	# broadcast on.
	case_ broadcast-no-interface -b 100000 2
	stats_ stats-fresh -m 127.0.0.1
	stats_ stats-local-fresh -m

	state=registered
	reg set 100003 3 tcp 2049
	reg set 100003 3 udp 2049
	reg set 100024 1 udp 45678
	reg set 100024 1 tcp 45679
	reg set 100021 4 tcp 1
	reg set 300019 1 tcp 65535
	reg set 536870912 7 udp 700
	reg set 4294967295 4294967295 tcp 1023
	# Registered at the portmapper's own port: it answers PROG_UNAVAIL.
	reg set 200002 1 udp 111
	reg set 200002 1 tcp 111
	# Registered where nothing listens.
	reg set 200000 1 udp 9
	reg set 200000 1 tcp 9
	case_ dump-registered -p 127.0.0.1
	case_ rpcb-dump-registered 127.0.0.1
	case_ rpcb-summary-registered -s 127.0.0.1
	case_ ping-udp-progunavail -T udp 127.0.0.1 200002 1
	case_ ping-tcp-progunavail -T tcp 127.0.0.1 200002 1
	case_ ping-udp-progunavail-all -T udp 127.0.0.1 200002
	case_ ping-udp-refused -T udp 127.0.0.1 200000 1
	case_ ping-tcp-refused -T tcp 127.0.0.1 200000 1
	case_ addrlist-registered -l 127.0.0.1 100024 1
	case_ ping-tcp6-registered -T tcp6 ::1 100003 3
	stats_ stats-registered -m 127.0.0.1

	# rpcinfo -d: rpcb_unset over the local socket.
	state=deleted
	user=65534
	case_ delete-nobody -d 100003 3
	user=
	case_ delete-all-netids -d 100024 1
	case_ delete-again -d 100024 1
	case_ delete-netid -d -T udp 100003 3
	case_ delete-bad-netid -d -T sctp 100003 3
	case_ delete-unregistered -d 200001 1
	case_ rpcb-dump-deleted 127.0.0.1
	case_ rpcb-summary-deleted -s 127.0.0.1
	case_ dump-deleted -p 127.0.0.1
	stats_ stats-deleted -m 127.0.0.1

	state=empty
	reg unset 100000 2
	reg unset 100000 3
	reg unset 100000 4
	for p in 100003:3 100024:1 100021:4 300019:1 536870912:7 4294967295:4294967295 200002:1 200000:1; do
		reg unset "${p%%:*}" "${p##*:}"
	done
	case_ dump-empty -p 127.0.0.1
	case_ rpcb-dump-empty 127.0.0.1
	case_ rpcb-summary-empty -s 127.0.0.1

	kill $pid
	wait $pid 2>/dev/null || true
	state=down
	case_ dump-down -p 127.0.0.1
	case_ ping-udp-down -T udp 127.0.0.1 100000 2
	case_ ping-tcp-down -T tcp 127.0.0.1 100000 2
	case_ dump-unknown-host -p nosuchhost.invalid
	case_ ping-udp-unknown-host -T udp nosuchhost.invalid 100000 2
	case_ rpcb-dump-down 127.0.0.1
	case_ rpcb-dump-local-down
	case_ stats-down -m 127.0.0.1
	case_ stats-local-down -m
	case_ addrlist-down -l 127.0.0.1 100000 4
	case_ ping-tcp6-down -T tcp6 ::1 100000 4
	case_ ping-local-down -T local localhost 100000 4
	case_ delete-down -d 100000 4

	# A portmapper that takes calls and never answers.
	state=silent
	python3 "$here/silent.py" &
	silent=$!
	sleep 0.5
	case_ dump-silent -p 127.0.0.1
	case_ ping-udp-silent -T udp 127.0.0.1 100000 2
	case_ ping-tcp-silent -T tcp 127.0.0.1 100000 2
	kill $silent
	exit 0
fi

[ "$(id -u)" = 0 ] || { echo "record.sh: must run as root (network namespace)" >&2; exit 1; }
ns="portmapctl-rec-$$"
cleanup() { ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
mkdir -p "$out"
ip netns exec "$ns" unshare -m --propagation private sh "$here/record.sh" --inside
{
	echo "Recorded by cmd/portmapctl/testdata/record.sh from Debian rpcinfo against"
	echo "rpcbind $(dpkg-query -W -f='${Version}' rpcbind) (libtirpc3 $(dpkg-query -W -f='${Version}' libtirpc3))"
	echo "run as 'rpcbind -f' in a fresh network namespace (lo only) with a private /run."
} >"$out/VERSION"
echo "wrote $out"
