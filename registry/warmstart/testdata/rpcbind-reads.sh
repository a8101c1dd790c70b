#!/bin/sh
# rpcbind-reads.sh DIR: start Debian's rpcbind -w in a private network and
# mount namespace with DIR, owners and modes kept, as its state directory
# /run/rpcbind holding the warm-start files rpcbind.xdr and portmap.xdr;
# print its `rpcinfo` listing, then "files left:" and what remains of the
# files after it read them. Needs root, ip(8), unshare(1), rpcbind
# and rpcinfo.
set -eu
src=$(cd "$1" && pwd)
ns=pmr$$
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT INT TERM
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" unshare -m --propagation private sh -eu -c '
  src=$1
  mount -t tmpfs tmpfs /run
  mkdir -p /run/lock
  cp -a "$src" /run/rpcbind
  rpcbind -w -f &
  pid=$!
  for i in $(seq 50); do [ -S /run/rpcbind.sock ] && break; sleep 0.1; done
  rpcinfo
  echo "files left:"
  ls /run/rpcbind
  kill -KILL $pid
' reads "$src"
