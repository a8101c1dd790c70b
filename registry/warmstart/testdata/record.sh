#!/bin/sh
# record.sh: run Debian's rpcbind -w in a private network and mount
# namespace (../../../../shared/conformance/sandbox's method), give it a
# table over the local socket (v3, owners root and nobody) and over UDP
# (v2), stop it with SIGTERM and keep the warm-start files it writes as
# rpcbind.xdr and portmap.xdr here, with its rpcinfo listings.
# Needs root, ip(8), unshare(1), rpcbind and rpcinfo.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
pmapreg=$here/../../../cmd/portmapctl/testdata/pmapreg.py
ns=pmw$$
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT INT TERM
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" unshare -m --propagation private sh -eu -c '
  here=$1 pmapreg=$2
  mount -t tmpfs tmpfs /run
  mkdir -p /run/lock
  rpcbind -w -f &
  pid=$!
  for i in 1 2 3 4 5 6 7 8 9 10; do [ -S /run/rpcbind.sock ] && break; sleep 0.2; done
  sleep 0.3
  /usr/bin/python3 "$here/rpcbset.py" /run/rpcbind.sock 100003 3 tcp 0.0.0.0.8.1 >/dev/null
  /usr/bin/python3 "$here/rpcbset.py" /run/rpcbind.sock 100003 3 tcp6 ::.8.1 >/dev/null
  /usr/bin/python3 "$here/rpcbset.py" /run/rpcbind.sock 100005 1 udp6 ::.78.80 >/dev/null
  /usr/bin/python3 "$here/rpcbset.py" /run/rpcbind.sock 100227 3 local /run/nfsacl.sock >/dev/null
  setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 "$here/rpcbset.py" /run/rpcbind.sock 300019 1 tcp 0.0.0.0.39.16 >/dev/null
  /usr/bin/python3 "$pmapreg" set 100021 4 udp 4045 >/dev/null
  /usr/bin/python3 "$pmapreg" set 100021 4 tcp 4045 >/dev/null
  rpcinfo > "$here/rpcbind-rpcinfo.txt"
  rpcinfo -p > "$here/rpcbind-rpcinfo-p.txt"
  kill -TERM $pid
  wait $pid || true
  ls -ln /run/rpcbind >&2
  cp /run/rpcbind/rpcbind.xdr /run/rpcbind/portmap.xdr "$here/"
' record "$here" "$pmapreg"
