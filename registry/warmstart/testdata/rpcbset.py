#!/usr/bin/env python3
"""rpcbset.py SOCKET PROG VERS NETID UADDR: an rpcbind v3 SET over the
local stream socket, as libtirpc's rpcb_set sends it, standard library only.
The owner rpcbind records comes from the socket's peer credentials. Prints
the boolean reply."""
import socket
import struct
import sys


def xdr_string(s):
    b = s.encode()
    return struct.pack(">I", len(b)) + b + b"\0" * (-len(b) % 4)


def main():
    path, prog, vers, netid, uaddr = sys.argv[1:6]
    body = struct.pack(">10I", 0x5EED0001, 0, 2, 100000, 3, 1, 0, 0, 0, 0)
    body += struct.pack(">2I", int(prog), int(vers))
    body += xdr_string(netid) + xdr_string(uaddr) + xdr_string("ignored")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect(path)
    s.sendall(struct.pack(">I", 0x80000000 | len(body)) + body)
    reply = b""
    while len(reply) < 4 or len(reply) < 4 + (struct.unpack(">I", reply[:4])[0] & 0x7FFFFFFF):
        chunk = s.recv(65535)
        if not chunk:
            break
        reply += chunk
    print("true" if struct.unpack(">I", reply[-4:])[0] else "false")


main()
