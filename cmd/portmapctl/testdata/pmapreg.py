#!/usr/bin/env python3
"""pmapreg.py set PROG VERS tcp|udp PORT | unset PROG VERS

A v2 SET or UNSET (RFC 1833) sent over UDP to 127.0.0.1:111, standard
library only. record.sh uses it to give the real rpcbind the table the
golden files were recorded against, independently of portmapctl's own
client. Sent from a reserved port, so the caller is the superuser. Prints
the boolean reply.
"""
import socket
import struct
import sys


def call(proc, prog, vers, prot, port):
    xid = 0x5EED0000 + proc
    msg = struct.pack(">10I", xid, 0, 2, 100000, 2, proc, 0, 0, 0, 0)
    msg += struct.pack(">4I", prog, vers, prot, port)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    # A reserved source port makes the caller "superuser", who may also
    # UNSET the portmapper's own entries (root only).
    for p in range(1023, 600, -1):
        try:
            s.bind(("127.0.0.1", p))
            break
        except OSError:
            continue
    s.sendto(msg, ("127.0.0.1", 111))
    reply = s.recv(65535)
    rxid, mtype, stat, _flavor, vlen = struct.unpack(">5I", reply[:20])
    accept, result = struct.unpack(">2I", reply[20 + vlen:28 + vlen])
    if rxid != xid or mtype != 1 or stat != 0 or accept != 0:
        sys.exit("pmapreg: bad reply " + reply.hex())
    print("true" if result else "false")


def main(argv):
    if len(argv) == 5 and argv[0] == "set":
        prot = {"tcp": 6, "udp": 17}[argv[3]]
        call(1, int(argv[1]), int(argv[2]), prot, int(argv[4]))
    elif len(argv) == 3 and argv[0] == "unset":
        call(2, int(argv[1]), int(argv[2]), 0, 0)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
