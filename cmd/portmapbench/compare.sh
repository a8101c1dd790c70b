#!/bin/sh
# compare.sh PORTMAPD PORTMAPBENCH: run the same load against Debian's
# rpcbind and against portmapd, each alone in a private network and mount
# namespace on port 111, at several registry sizes, and print each
# workload's calls per second with the ratio portmapd/rpcbind.
# Needs root, iproute2, util-linux and rpcbind.
set -eu
portmapd=$1
bench=$2
sizes=${SIZES:-10 1000 20000}
duration=${DURATION:-2s}
results=$(mktemp)
trap 'rm -f "$results"' EXIT

if [ "$(id -u)" != 0 ] || ! command -v rpcbind >/dev/null || ! command -v ip >/dev/null; then
	echo "compare.sh: skipped: needs root, rpcbind and iproute2 (apt-get install rpcbind iproute2)" >&2
	exit 0
fi

# measure NAME START_COMMAND SIZE: one daemon, one registry size.
measure() {
	ns=pmbench$$
	ip netns add "$ns"
	ip netns exec "$ns" ip link set lo up
	ip netns exec "$ns" unshare -m --propagation private sh -c '
		mount -t tmpfs tmpfs /run && mkdir -p /run/lock
		$2 >/dev/null 2>&1 &
		pm=$!
		for i in $(seq 100); do rpcinfo -T udp 127.0.0.1 100000 2 >/dev/null 2>&1 && break; sleep 0.05; done
		"$3" --label "$1" --prefill "$4" --duration "$5"
		kill $pm; wait $pm 2>/dev/null || true
	' measure "$1" "$2" "$bench" "$3" "$duration" >>"$results" || true
	ip netns del "$ns"
}

for size in $sizes; do
	measure rpcbind "rpcbind -f" "$size"
	measure portmapd "$portmapd -f --http off --http-socket off" "$size"
done

printf "%-14s %7s %12s %12s %8s %12s %12s\n" workload size rpcbind/s portmapd/s ratio "rpcbind p99" "portmapd p99"
awk '
	{ for (i = 3; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
	  key = $2 " " f["size"]; rate[$1, key] = f["calls/s"]; p99[$1, key] = f["p99"]; keys[key] = 1 }
	END {
		for (k in keys) {
			split(k, parts, " ")
			r = rate["rpcbind", k]; p = rate["portmapd", k]
			ratio = (r > 0) ? sprintf("%.2fx", p / r) : "n/a"
			printf "%-14s %7s %12s %12s %8s %12s %12s\n", parts[1], parts[2], r, p, ratio, p99["rpcbind", k], p99["portmapd", k]
		}
	}' "$results" | sort -k1,1 -k2,2n
