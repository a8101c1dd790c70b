#!/bin/sh
# compare.sh PORTMAPD PORTMAPBENCH: put the same load on Debian's rpcbind,
# on portmapd and on the floor (cmd/portmapbench/floor/floor.c, a trivial
# responder), each alone in a private network and mount namespace on port
# 111, and print one table of the results with the ratios
# portmapd/rpcbind and portmapd/floor and the goals of issue 14.
#
# Environment: SIZES (registry sizes, ascending, default 0,10000,100000),
# DURATION (of each workload, default 3s), ROUNDS (default 1; the daemons
# take turns in each round, and the table shows ranges), DAEMONS (default
# "rpcbind portmapd floor"), WORKLOADS, RESULTS (a file to keep the raw
# JSON lines in).
#
# Needs root, iproute2, util-linux, rpcbind and a C compiler (for the
# floor).
set -eu
portmapd=$1
bench=$2
here=$(cd "$(dirname "$0")" && pwd)
sizes=${SIZES:-0,10000,100000}
duration=${DURATION:-3s}
rounds=${ROUNDS:-1}
daemons=${DAEMONS:-rpcbind portmapd floor}
workloads=${WORKLOADS:-getport-udp@1,getport-udp@8,getport-last-udp@8,getaddr-udp@8,getport-tcp@8,set-unset-tcp@8}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
results=${RESULTS:-$tmp/results}
: >"$results"

if [ "$(id -u)" != 0 ] || ! command -v rpcbind >/dev/null || ! command -v ip >/dev/null; then
	echo "compare.sh: skipped: needs root, rpcbind and iproute2 (apt-get install rpcbind iproute2)" >&2
	exit 0
fi
if ! cc -O2 -o "$tmp/floor" "$here/floor/floor.c"; then
	echo "compare.sh: no C compiler: the floor is left out" >&2
	daemons=$(echo "$daemons" | sed 's/floor//')
fi

# measure NAME ROUND START_COMMAND BENCH_ARGS...: one daemon, one round.
measure() {
	name=$1 round=$2 start=$3
	shift 3
	ns=pmbench$$
	ip netns add "$ns"
	ip netns exec "$ns" ip link set lo up
	ip netns exec "$ns" unshare -m --propagation private sh -c '
		mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -p /run/lock
		$1 >/dev/null 2>&1 &
		pm=$!
		shift
		"$@" --pid $pm
		status=$?
		kill $pm; wait $pm 2>/dev/null || true
		exit $status
	' measure "$start" "$bench" --label "$name" --round "$round" --duration "$duration" --cleanup=false "$@" >>"$results" ||
		echo "compare.sh: $name, round $round, failed" >&2
	ip netns del "$ns"
}

echo "load before: $(uptime)"
round=1
while [ "$round" -le "$rounds" ]; do
	for d in $daemons; do
		case $d in
		rpcbind) measure rpcbind "$round" "rpcbind -f" --sizes "$sizes" --workload "$workloads" ;;
		portmapd) measure portmapd "$round" "$portmapd -f --no-prune" --sizes "$sizes" --workload "$workloads" --http http://127.0.0.1:8111 ;;
		floor) measure floor "$round" "$tmp/floor" --sizes 0 --workload getport-udp@1,getport-udp@8 ;;
		esac
	done
	round=$((round + 1))
done
echo "load after: $(uptime)"
echo
"$bench" table "$results"
