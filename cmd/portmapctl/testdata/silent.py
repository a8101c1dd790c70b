#!/usr/bin/env python3
"""silent.py: listen on UDP and TCP port 111 of 127.0.0.1, read whatever
comes and never answer. record.sh uses it to record rpcinfo's timeouts."""
import select
import socket

u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 111))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("127.0.0.1", 111))
t.listen(16)
conns = []
while True:
    r, _, _ = select.select([u, t] + conns, [], [])
    for s in r:
        if s is t:
            conns.append(t.accept()[0])
        elif s is u:
            u.recv(65535)
        elif not s.recv(65535):
            conns.remove(s)
            s.close()
