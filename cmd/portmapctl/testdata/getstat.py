#!/usr/bin/env python3
"""getstat.py: one rpcbind version 4 GETSTAT (RFC 1833) over TCP to
127.0.0.1:111, standard library only. Prints the results (the three
rpcb_stat records, after the reply header) in hex.

record.sh runs it just before `rpcinfo -m`, so that the Go tests can serve
rpcinfo's own statistics back to portmapctl: rpcinfo's snapshot is this one
with one more version 4 GETSTAT call (its own).
"""
import socket
import struct
import sys


def main():
    xid = 0x5EED0100
    msg = struct.pack(">10I", xid, 0, 2, 100000, 4, 12, 0, 0, 0, 0)
    s = socket.create_connection(("127.0.0.1", 111), timeout=3)
    s.sendall(struct.pack(">I", 0x80000000 | len(msg)) + msg)
    reply = b""
    last = False
    while not last:
        mark = b""
        while len(mark) < 4:
            chunk = s.recv(4 - len(mark))
            if not chunk:
                sys.exit("getstat: connection closed")
            mark += chunk
        (n,) = struct.unpack(">I", mark)
        last = bool(n & 0x80000000)
        n &= 0x7FFFFFFF
        while n:
            chunk = s.recv(n)
            if not chunk:
                sys.exit("getstat: connection closed")
            reply += chunk
            n -= len(chunk)
    rxid, mtype, stat, _flavor, vlen = struct.unpack(">5I", reply[:20])
    (accept,) = struct.unpack(">I", reply[20 + vlen:24 + vlen])
    if rxid != xid or mtype != 1 or stat != 0 or accept != 0:
        sys.exit("getstat: bad reply " + reply.hex())
    print(reply[24 + vlen:].hex())


if __name__ == "__main__":
    main()
