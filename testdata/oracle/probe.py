#!/usr/bin/env python3
"""Oracle probe: send edge-case ONC RPC packets to a portmapper/rpcbind on
127.0.0.1:111 and print the raw replies, one block per case.

Standard library only.  Meant to be run against a *fresh* daemon in a private
network namespace (see record.sh); cases are run in a fixed order because
later cases depend on the registrations made by earlier ones.

Output format, per case:

    ## case-name
    transport: udp|tcp|unix
    request: <hex>           (for tcp/unix: the exact bytes written, record
                              marks included; "+" separates separate writes)
    reply: <hex>             (udp: one line per datagram received;
                              tcp/unix: all bytes read, record marks included)
    reply: none              (nothing within the timeout)
    closed: yes|no           (tcp/unix only: did the server close/reset)
    close-kind: fin|rst      (tcp/unix only, when closed)
    decoded: ...             (human-readable decoding of each reply record)
    note: ...                (optional; what the case is about)

Usage: probe.py [--host 127.0.0.1] [--port 111] [--unix /run/rpcbind.sock]
                [--only SUBSTR[,SUBSTR...]] [--timeout 1.0]
"""

import argparse
import errno
import socket
import struct
import sys
import time

# --------------------------------------------------------------------------
# XDR / RPC encoding helpers

PMAP_PROG = 100000
IPPROTO_TCP = 6
IPPROTO_UDP = 17

AUTH_NONE, AUTH_SYS, AUTH_SHORT, AUTH_DH, RPCSEC_GSS = 0, 1, 2, 3, 6

XID = 0x01020304
TEST_PROG = 0x2FFF0001


def u32(x):
    return struct.pack(">I", x & 0xFFFFFFFF)


def pad4(b):
    return b + b"\0" * ((4 - len(b) % 4) % 4)


def opaque(b):
    return u32(len(b)) + pad4(b)


def xstring(s):
    if isinstance(s, str):
        s = s.encode()
    return opaque(s)


def auth(flavor, body=b""):
    return u32(flavor) + opaque(body)


def auth_raw(flavor, declared_len, body):
    """opaque_auth with an arbitrary declared length and raw (unpadded) body."""
    return u32(flavor) + u32(declared_len) + body


def auth_sys_body(stamp=0x11223344, machine=b"oracle", uid=0, gid=0, gids=(0,)):
    b = u32(stamp) + opaque(machine) + u32(uid) + u32(gid) + u32(len(gids))
    for g in gids:
        b += u32(g)
    return b


def call(prog, vers, proc, args=b"", xid=XID, cred=None, verf=None,
         rpcvers=2, mtype=0):
    if cred is None:
        cred = auth(AUTH_NONE)
    if verf is None:
        verf = auth(AUTH_NONE)
    return (u32(xid) + u32(mtype) + u32(rpcvers) + u32(prog) + u32(vers) +
            u32(proc) + cred + verf + args)


def pmap_args(prog, vers, prot, port):
    return u32(prog) + u32(vers) + u32(prot) + u32(port)


def rpcb_args(prog, vers, netid, addr, owner):
    return u32(prog) + u32(vers) + xstring(netid) + xstring(addr) + xstring(owner)


def rm(payload, last=True):
    """One record-marking fragment."""
    return u32((0x80000000 if last else 0) | len(payload)) + payload


# --------------------------------------------------------------------------
# Reply decoding (for the human-readable "decoded:" line only)

ACCEPT = {0: "SUCCESS", 1: "PROG_UNAVAIL", 2: "PROG_MISMATCH",
          3: "PROC_UNAVAIL", 4: "GARBAGE_ARGS", 5: "SYSTEM_ERR"}
AUTHSTAT = {0: "AUTH_OK", 1: "AUTH_BADCRED", 2: "AUTH_REJECTEDCRED",
            3: "AUTH_BADVERF", 4: "AUTH_REJECTEDVERF", 5: "AUTH_TOOWEAK",
            6: "AUTH_INVALIDRESP", 7: "AUTH_FAILED",
            13: "RPCSEC_GSS_CREDPROBLEM", 14: "RPCSEC_GSS_CTXPROBLEM"}


def decode(msg):
    def g(off):
        return struct.unpack(">I", msg[off:off + 4])[0]
    try:
        if len(msg) < 12:
            return "short message (%d bytes)" % len(msg)
        xid, mtype, rstat = g(0), g(4), g(8)
        s = "xid=%08x " % xid
        if mtype != 1:
            return s + "mtype=%d (not a REPLY)" % mtype
        if rstat == 0:
            vfl, vlen = g(12), g(16)
            off = 20 + ((vlen + 3) & ~3)
            ast = g(off)
            s += "MSG_ACCEPTED verf=(%d,%d) %s" % (vfl, vlen, ACCEPT.get(ast, "accept_stat=%d" % ast))
            if ast == 2:
                s += " low=%d high=%d" % (g(off + 4), g(off + 8))
            rest = msg[off + 4 + (8 if ast == 2 else 0):]
            if ast == 0:
                s += " results(%d bytes)=%s" % (len(rest), rest.hex() if len(rest) <= 64 else rest[:64].hex() + "...")
            elif rest:
                s += " trailing=%s" % rest.hex()
            return s
        if rstat == 1:
            rj = g(12)
            if rj == 0:
                return s + "MSG_DENIED RPC_MISMATCH low=%d high=%d" % (g(16), g(20))
            if rj == 1:
                a = g(16)
                return s + "MSG_DENIED AUTH_ERROR %s(%d)" % (AUTHSTAT.get(a, "?"), a)
            return s + "MSG_DENIED reject_stat=%d" % rj
        return s + "reply_stat=%d" % rstat
    except struct.error:
        return "undecodable (%d bytes): %s" % (len(msg), msg.hex())


class XR:
    """Minimal XDR reader for result decoding."""
    def __init__(self, b):
        self.b, self.o = b, 0

    def u(self):
        v = struct.unpack(">I", self.b[self.o:self.o + 4])[0]
        self.o += 4
        return v

    def s(self):
        n = self.u()
        v = self.b[self.o:self.o + n]
        if len(v) != n:
            raise struct.error("short string")
        self.o += (n + 3) & ~3
        return v.decode("latin-1")


def request_kind(req):
    """(prog, vers, proc) of a well-formed call, else None."""
    try:
        r = XR(req)
        _, mtype, _, prog, vers, proc = (r.u() for _ in range(6))
        if mtype != 0:
            return None
        return prog, vers, proc
    except struct.error:
        return None


def decode_results(kind, res):
    """Pretty-print the SUCCESS results of a portmapper call, or None."""
    if kind is None or kind[0] != PMAP_PROG:
        return None
    _, vers, proc = kind
    r = XR(res)
    try:
        if vers == 2 and proc in (1, 2):
            return "bool %d" % r.u()
        if vers == 2 and proc == 3:
            return "port %d" % r.u()
        if vers == 2 and proc == 4:
            out = []
            while r.u():
                out.append("(%d,%d,%d,%d)" % (r.u(), r.u(), r.u(), r.u()))
            return "pmaplist %d entries (prog,vers,prot,port): %s" % (
                len(out), " ".join(out) if len(out) <= 40 else " ".join(out[:40]) + " ...")
        if vers in (3, 4) and proc in (1, 2):
            return "bool %d" % r.u()
        if vers in (3, 4) and proc in (3, 9, 8):
            return "string %r" % r.s()
        if vers in (3, 4) and proc == 4:
            out = []
            while r.u():
                out.append("(%d,%d,%s,%s,%s)" % (r.u(), r.u(), r.s(), r.s(), r.s()))
            return "rpcblist %d entries (prog,vers,netid,addr,owner): %s" % (
                len(out), " ".join(out) if len(out) <= 40 else " ".join(out[:40]) + " ...")
        if vers == 4 and proc == 11:
            out = []
            while r.u():
                out.append("(%s,%s,%d,%s,%s)" % (r.s(), r.s(), r.u(), r.s(), r.s()))
            return "rpcb_entry_list %d entries (maddr,netid,semantics,protofmly,proto): %s" % (
                len(out), " ".join(out))
        if vers in (3, 4) and proc == 7:
            maxlen = r.u()
            n = r.u()
            return "netbuf maxlen=%d len=%d buf=%s" % (maxlen, n, res[8:8 + n].hex())
    except struct.error:
        return "results do not decode"
    return None


def split_records(stream):
    """Split a record-marked byte stream into complete messages."""
    msgs, cur, off = [], b"", 0
    while off + 4 <= len(stream):
        hdr = struct.unpack(">I", stream[off:off + 4])[0]
        n = hdr & 0x7FFFFFFF
        if off + 4 + n > len(stream):
            break
        cur += stream[off + 4:off + 4 + n]
        off += 4 + n
        if hdr & 0x80000000:
            msgs.append(cur)
            cur = b""
    return msgs


def stream_payload(writes):
    """First complete message inside the record-marked bytes we wrote."""
    msgs = split_records(b"".join(writes))
    return msgs[0] if msgs else b""


# --------------------------------------------------------------------------
# Transports

class Probe:
    def __init__(self, host, port, unix_path, timeout, only):
        self.host, self.port, self.unix_path = host, port, unix_path
        self.timeout, self.only = timeout, only
        self.out = sys.stdout

    def selected(self, name):
        return self.only is None or any(o in name for o in self.only.split(","))

    def emit(self, name, transport, request_hex, lines, note=None):
        w = self.out.write
        w("## %s\n" % name)
        w("transport: %s\n" % transport)
        if note:
            w("note: %s\n" % note)
        w("request: %s\n" % request_hex)
        for ln in lines:
            w(ln + "\n")
        w("\n")
        self.out.flush()

    @staticmethod
    def add_results(lines, req, rep):
        """Append a 'results:' line for SUCCESS replies to known procedures."""
        try:
            vlen = struct.unpack(">I", rep[16:20])[0]
            off = 20 + ((vlen + 3) & ~3)
            if struct.unpack(">II", rep[4:12]) != (1, 0) or \
                    struct.unpack(">I", rep[off:off + 4])[0] != 0:
                return
        except struct.error:
            return
        d = decode_results(request_kind(req), rep[off + 4:])
        if d:
            lines.append("results: " + d)

    # ---- UDP
    def udp_exchange(self, data, src=None, wait_more=True):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        if src is not None:
            s.bind(src)
        s.settimeout(self.timeout)
        s.sendto(data, (self.host, self.port))
        replies = []
        try:
            while True:
                replies.append(s.recv(1 << 17))
                if not wait_more:
                    break
                s.settimeout(0.3)  # collect any extra datagrams
        except socket.timeout:
            pass
        except ConnectionRefusedError:
            replies.append(None)
        s.close()
        return replies

    def zero_fill(self):
        """Overwrite the server's UDP receive buffer with zeros.

        libtirpc's svc_dg decodes from a fixed 9000-byte per-socket buffer
        without limiting the XDR stream to the datagram length, so a short
        datagram is decoded together with whatever the previous datagram left
        behind.  Sending a 9000-byte NULL call (header + zeros) first makes
        every UDP case independent of the cases before it: missing bytes then
        read as zeros.  The reply to the fill packet is discarded.
        """
        fill = call(PMAP_PROG, 2, 0, xid=0x0F0F0F0F)
        fill += b"\0" * (9000 - len(fill))
        self.udp_exchange(fill, wait_more=False)

    def udp(self, name, data, src=None, note=None, fill=True):
        if not self.selected(name):
            return None
        if fill:
            self.zero_fill()
        replies = self.udp_exchange(data, src)
        lines = []
        if fill:
            lines.append("prelude: zero-fill (9000-byte NULL call xid 0f0f0f0f, reply discarded)")
        else:
            lines.append("prelude: none (server UDP buffer holds the previous datagram)")
        if src is not None:
            lines.append("source: %s:%d" % src)
        if not replies:
            lines.append("reply: none")
        for r in replies:
            if r is None:
                lines.append("reply: none (ICMP port unreachable)")
                continue
            lines.append("reply: %s" % r.hex())
            lines.append("decoded: %s" % decode(r))
            self.add_results(lines, data, r)
        self.emit(name, "udp", data.hex(), lines, note)
        return replies

    # ---- stream (TCP or AF_UNIX)
    def stream_exchange(self, writes, family="tcp", src=None):
        if family == "tcp":
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if src is not None:
                s.bind(src)
            s.settimeout(self.timeout)
            s.connect((self.host, self.port))
        else:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(self.timeout)
            s.connect(self.unix_path)
        closed, kind, err = False, None, None
        try:
            for i, w in enumerate(writes):
                if i:
                    time.sleep(0.1)
                s.sendall(w)
        except (BrokenPipeError, ConnectionResetError) as e:
            closed, kind, err = True, "rst", "send: %s" % e.__class__.__name__
        buf = b""
        if not closed:
            try:
                while True:
                    d = s.recv(1 << 17)
                    if not d:
                        closed, kind = True, "fin"
                        break
                    buf += d
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed, kind = True, "rst"
        s.close()
        return buf, closed, kind, err

    def stream(self, name, writes, family="tcp", src=None, note=None):
        if not self.selected(name):
            return None
        if isinstance(writes, bytes):
            writes = [writes]
        buf, closed, kind, err = self.stream_exchange(writes, family, src)
        lines = []
        if src is not None:
            lines.append("source: %s:%d" % src)
        lines.append("reply: %s" % (buf.hex() if buf else "none"))
        lines.append("closed: %s" % ("yes" if closed else "no"))
        if closed:
            lines.append("close-kind: %s" % kind)
        if err:
            lines.append("error: %s" % err)
        msgs = split_records(buf)
        for m in msgs:
            lines.append("decoded: %s" % decode(m))
            self.add_results(lines, stream_payload(writes), m)
        self.emit(name, family, "+".join(w.hex() for w in writes), lines, note)
        return msgs

    def tcp(self, name, writes, src=None, note=None):
        return self.stream(name, writes, "tcp", src, note)

    def unix(self, name, writes, note=None):
        return self.stream(name, writes, "unix", None, note)

    def both(self, name, msg, note=None):
        """Same message over UDP and over TCP (single last fragment)."""
        self.udp(name + "-udp", msg, note=note)
        self.tcp(name + "-tcp", rm(msg), note=note)


# --------------------------------------------------------------------------
# The cases

def run(p):
    P = PMAP_PROG
    T = TEST_PROG

    # ---- fresh daemon: NULL and DUMP before any registration
    p.both("null-v2", call(P, 2, 0))
    p.both("null-v3", call(P, 3, 0))
    p.both("null-v4", call(P, 4, 0))
    p.both("dump-v2-fresh", call(P, 2, 4))
    p.both("dump-v3-fresh", call(P, 3, 4))
    p.both("dump-v4-fresh", call(P, 4, 4))

    # ---- program/version/procedure dispatch errors
    p.both("vers1", call(P, 1, 0), note="version below range")
    p.both("vers5", call(P, 5, 0), note="version above range")
    p.udp("vers0-udp", call(P, 0, 0))
    p.udp("vers-ffffffff-udp", call(P, 0xFFFFFFFF, 0))
    p.both("prog-100099", call(100099, 1, 0), note="unknown program")
    p.udp("prog-0-udp", call(0, 0, 0))
    p.both("proc6-v2", call(P, 2, 6))
    p.both("proc9-v3", call(P, 3, 9))
    p.both("proc13-v4", call(P, 4, 13))
    p.udp("proc-ffffffff-v2-udp", call(P, 2, 0xFFFFFFFF))
    p.udp("proc999-v3-udp", call(P, 3, 999))

    # ---- RPC header edge cases
    p.both("rpcvers3", call(P, 2, 0, rpcvers=3), note="RPC version 3 -> RPC_MISMATCH or silence?")
    p.udp("rpcvers1-udp", call(P, 2, 0, rpcvers=1))
    p.udp("rpcvers0-udp", call(P, 2, 0, rpcvers=0))
    p.udp("rpcvers3-unknown-prog-udp", call(100099, 1, 0, rpcvers=3))
    p.both("mtype-reply", u32(XID) + u32(1) + u32(0) + auth(AUTH_NONE) + u32(0),
           note="a REPLY message (accepted SUCCESS) sent to the server")
    p.udp("mtype-2-udp", call(P, 2, 0, mtype=2))
    hdr = call(P, 2, 0)
    p.both("truncated-0-bytes", b"")
    p.both("truncated-4", hdr[:4])
    p.both("truncated-8", hdr[:8], note="xid + mtype only")
    p.both("truncated-12", hdr[:12], note="xid + mtype + rpcvers")
    p.udp("truncated-15-udp", hdr[:15])
    p.udp("truncated-16-udp", hdr[:16], note="xid..prog; vers/proc/cred/verf from the (zeroed) buffer")
    p.udp("truncated-20-udp", hdr[:20], note="xid..vers; proc/cred/verf from the (zeroed) buffer")
    p.both("truncated-24", hdr[:24], note="through proc, no cred")
    p.both("truncated-32", hdr[:32], note="cred present, no verifier")
    p.both("truncated-36", hdr[:36], note="cred present, verifier flavor only")
    p.udp("truncated-39-udp", hdr[:39])
    p.udp("garbage-udp", b"\xde\xad\xbe\xef" * 10)
    # the stale-buffer effect, shown without the zero-fill prelude
    p.udp("stale-1-getport-full-udp", call(P, 2, 3, args=pmap_args(P, 2, IPPROTO_TCP, 0)),
          note="full GETPORT(100000,2,tcp); leaves its args in the server buffer")
    p.udp("stale-2-getport-no-args-udp", call(P, 2, 3, xid=XID + 1), fill=False,
          note="GETPORT with no args right after stale-1: decoded from stale bytes")
    p.udp("stale-3-truncated-24-udp", call(P, 2, 4, xid=XID + 2)[:24], fill=False,
          note="24-byte DUMP header (no cred/verf): cred/verf taken from stale bytes")
    p.tcp("tcp-rpcvers3-then-null", [rm(call(P, 2, 0, rpcvers=3)), rm(call(P, 2, 0, xid=XID + 1))],
          note="is the connection still usable after an undecodable call?")
    p.tcp("tcp-truncated8-then-null", [rm(hdr[:8]), rm(call(P, 2, 0, xid=XID + 1))])
    p.tcp("tcp-pipelined-2-nulls", rm(call(P, 2, 0)) + rm(call(P, 2, 0, xid=XID + 1)),
          note="two records in one write")
    p.tcp("tcp-proc-unavail-then-null", [rm(call(P, 2, 6)), rm(call(P, 2, 0, xid=XID + 1))])
    p.tcp("tcp-badcred-then-null", [rm(call(P, 2, 0, cred=auth(99))), rm(call(P, 2, 0, xid=XID + 1))])

    # ---- authentication
    p.both("auth-flavor-99", call(P, 2, 0, cred=auth(99, b"")), note="unknown cred flavor")
    p.udp("auth-flavor-99-body8-udp", call(P, 2, 0, cred=auth(99, b"12345678")))
    p.both("auth-short", call(P, 2, 0, cred=auth(AUTH_SHORT, b"\0\0\0\1")), note="AUTH_SHORT cred")
    p.both("auth-dh", call(P, 2, 0, cred=auth(AUTH_DH, u32(0) + xstring("unix.0@example") + u32(0) + u32(0) + u32(0) + u32(0))),
           note="AUTH_DH fullname cred")
    p.udp("auth-dh-empty-udp", call(P, 2, 0, cred=auth(AUTH_DH, b"")))
    p.both("rpcsec-gss-empty", call(P, 2, 0, cred=auth(RPCSEC_GSS, b"")), note="RPCSEC_GSS, empty body")
    gss_data = u32(1) + u32(0) + u32(1) + u32(1) + opaque(b"abcd")  # v1, DATA, seq 1, svc none, handle
    p.both("rpcsec-gss-data", call(P, 2, 0, cred=auth(RPCSEC_GSS, gss_data)),
           note="RPCSEC_GSS v1 DATA with unknown handle")
    gss_init = u32(1) + u32(1) + u32(0) + u32(1) + opaque(b"")  # v1, INIT
    p.udp("rpcsec-gss-init-udp", call(P, 2, 0, cred=auth(RPCSEC_GSS, gss_init), args=opaque(b"")),
          note="RPCSEC_GSS v1 INIT with empty token")
    p.udp("rpcsec-gss-v2-udp", call(P, 2, 0, cred=auth(RPCSEC_GSS, u32(2) + gss_data[4:])),
          note="RPCSEC_GSS cred version 2")
    p.both("auth-sys-valid", call(P, 2, 0, cred=auth(AUTH_SYS, auth_sys_body())))
    p.udp("auth-sys-16-gids-udp", call(P, 2, 0, cred=auth(AUTH_SYS, auth_sys_body(gids=range(16)))))
    p.both("auth-sys-17-gids", call(P, 2, 0, cred=auth(AUTH_SYS, auth_sys_body(gids=range(17)))))
    p.udp("auth-sys-machname-255-udp", call(P, 2, 0, cred=auth(AUTH_SYS, auth_sys_body(machine=b"m" * 255))))
    p.udp("auth-sys-machname-256-udp", call(P, 2, 0, cred=auth(AUTH_SYS, auth_sys_body(machine=b"m" * 256))))
    # machinename length field says 300 but the body only has 12 bytes of name
    body = u32(1) + u32(300) + b"x" * 12 + u32(0) + u32(0) + u32(0)
    p.both("auth-sys-machname-len-300", call(P, 2, 0, cred=auth(AUTH_SYS, body)))
    p.both("auth-sys-truncated", call(P, 2, 0, cred=auth(AUTH_SYS, auth_sys_body()[:12])),
           note="cred length 12: stamp + namelen + 4 name bytes only")
    p.udp("auth-sys-no-gids-field-udp", call(P, 2, 0, cred=auth(AUTH_SYS, auth_sys_body()[:-8])),
          note="body ends after gid (no gids count)")
    p.udp("auth-sys-empty-udp", call(P, 2, 0, cred=auth(AUTH_SYS, b"")))
    p.udp("auth-sys-trailing-in-body-udp", call(P, 2, 0, cred=auth(AUTH_SYS, auth_sys_body() + b"\0" * 8)),
          note="AUTH_SYS body 8 bytes longer than its contents")
    p.udp("auth-none-body-8-udp", call(P, 2, 0, cred=auth(AUTH_NONE, b"ABCDEFGH")),
          note="AUTH_NONE cred with non-empty body")
    p.both("auth-none-len-400", call(P, 2, 0, cred=auth(AUTH_NONE, b"\0" * 400)))
    p.both("auth-none-len-401", call(P, 2, 0, cred=auth(AUTH_NONE, b"\0" * 401)), note="cred body over MAX_AUTH_BYTES")
    sysb = auth_sys_body()
    p.udp("auth-sys-len-400-udp", call(P, 2, 0, cred=auth(AUTH_SYS, sysb + b"\0" * (400 - len(sysb)))))
    p.udp("auth-sys-len-401-udp", call(P, 2, 0, cred=auth(AUTH_SYS, sysb + b"\0" * (401 - len(sysb)))))
    p.udp("cred-len-huge-udp", call(P, 2, 0, cred=auth_raw(AUTH_NONE, 0x7FFFFFF0, b"")))
    p.both("verf-auth-sys", call(P, 2, 0, verf=auth(AUTH_SYS, auth_sys_body())), note="verifier flavor AUTH_SYS")
    p.udp("verf-auth-none-body-8-udp", call(P, 2, 0, verf=auth(AUTH_NONE, b"ABCDEFGH")))
    p.udp("verf-flavor-99-udp", call(P, 2, 0, verf=auth(99, b"")))
    p.udp("verf-len-400-udp", call(P, 2, 0, verf=auth(AUTH_NONE, b"\0" * 400)))
    p.udp("verf-len-401-udp", call(P, 2, 0, verf=auth(AUTH_NONE, b"\0" * 401)))
    p.both("cred-sys-verf-sys", call(P, 2, 0, cred=auth(AUTH_SYS, auth_sys_body()), verf=auth(AUTH_SYS, auth_sys_body())),
           note="AUTH_SYS cred with a non-empty verifier")
    p.udp("cred-sys-verf-99-body4-udp", call(P, 2, 0, cred=auth(AUTH_SYS, auth_sys_body()), verf=auth(99, b"WXYZ")))
    p.udp("cred-sys-verf-none-udp", call(P, 2, 0, cred=auth(AUTH_SYS, auth_sys_body())))
    p.udp("auth-sys-getport-udp", call(P, 2, 3, cred=auth(AUTH_SYS, auth_sys_body()), args=pmap_args(P, 2, IPPROTO_UDP, 0)))
    p.udp("auth-flavor-99-prog-100099-udp", call(100099, 1, 0, cred=auth(99)),
          note="which comes first: auth check or program lookup?")
    p.udp("auth-flavor-99-vers5-udp", call(P, 5, 0, cred=auth(99)))

    # ---- argument decoding
    p.both("set-v2-truncated-args", call(P, 2, 1, args=pmap_args(T, 1, IPPROTO_UDP, 40001)[:8]))
    p.both("getport-v2-truncated-args", call(P, 2, 3, args=pmap_args(P, 2, IPPROTO_UDP, 0)[:12]))
    p.both("getport-v2-no-args", call(P, 2, 3))
    p.both("getport-v2-trailing-bytes", call(P, 2, 3, args=pmap_args(P, 2, IPPROTO_UDP, 0) + b"\xff" * 8))
    p.udp("null-v2-with-args-udp", call(P, 2, 0, args=b"\1\2\3\4\5\6\7\x08"), note="NULL with unexpected args")
    p.udp("dump-v2-with-args-udp", call(P, 2, 4, args=u32(7)))
    p.both("getaddr-v3-truncated", call(P, 3, 3, args=u32(P) + u32(2) + u32(3) + b"ud"))
    p.udp("getaddr-v3-netid-len-huge-udp", call(P, 3, 3, args=u32(P) + u32(2) + u32(0x10000) + b"udp\0"))
    p.tcp("set-v3-truncated-tcp", rm(call(P, 3, 1, args=u32(T + 0x20) + u32(1))))
    p.udp("set-v3-truncated-udp", call(P, 3, 1, args=u32(T + 0x20) + u32(1)),
          note="v3 SET args end after prog/vers; with the zero-filled buffer netid/addr/owner read as empty strings")
    p.udp("getaddrlist-v4-after-truncated-set-udp", call(P, 4, 11, rpcb_args(T + 0x20, 1, "", "", "")),
          note="an entry with netid '' exists for this program")
    p.udp("dump-v3-after-truncated-set-udp", call(P, 3, 4))
    p.udp("unset-v3-truncated-set-cleanup-udp", call(P, 3, 2, args=rpcb_args(T + 0x20, 1, "", "", "")))

    # ---- v2 SET/UNSET/GETPORT from 127.0.0.1 (unprivileged source port), UDP
    p.udp("set-v2-udp", call(P, 2, 1, args=pmap_args(T, 1, IPPROTO_UDP, 40001)),
          note="SET prog 0x2fff0001 vers 1 udp port 40001 from 127.0.0.1 (unprivileged port)")
    p.udp("set-v2-again-udp", call(P, 2, 1, args=pmap_args(T, 1, IPPROTO_UDP, 40001)), note="identical SET again")
    p.udp("set-v2-other-port-udp", call(P, 2, 1, args=pmap_args(T, 1, IPPROTO_UDP, 40003)), note="same prog/vers/prot, other port")
    p.udp("getport-v2-exact-udp", call(P, 2, 3, args=pmap_args(T, 1, IPPROTO_UDP, 0)))
    p.udp("getport-v2-exact-port-field-ignored-udp", call(P, 2, 3, args=pmap_args(T, 1, IPPROTO_UDP, 12345)))
    p.udp("getport-v2-other-vers-udp", call(P, 2, 3, args=pmap_args(T, 7, IPPROTO_UDP, 0)),
          note="GETPORT vers 7 when only vers 1 is registered")
    p.udp("getport-v2-tcp-unregistered-udp", call(P, 2, 3, args=pmap_args(T, 1, IPPROTO_TCP, 0)))
    p.udp("set-v2-tcp-40002-udp", call(P, 2, 1, args=pmap_args(T, 1, IPPROTO_TCP, 40002)))
    p.udp("set-v2-vers2-udp", call(P, 2, 1, args=pmap_args(T, 2, IPPROTO_UDP, 40011)))
    p.udp("getport-v2-other-vers-two-registered-udp", call(P, 2, 3, args=pmap_args(T, 7, IPPROTO_UDP, 0)),
          note="vers 1 and 2 registered on udp: which one is the fallback?")
    p.udp("set-v2-prot99-udp", call(P, 2, 1, args=pmap_args(T + 1, 1, 99, 40004)))
    p.udp("set-v2-port0-udp", call(P, 2, 1, args=pmap_args(T + 2, 1, IPPROTO_UDP, 0)))
    p.udp("set-v2-port-70000-udp", call(P, 2, 1, args=pmap_args(T + 3, 1, IPPROTO_UDP, 70000)))
    p.udp("set-v2-trailing-bytes-udp", call(P, 2, 1, args=pmap_args(T + 4, 1, IPPROTO_UDP, 40005) + b"\xff" * 8))
    p.udp("set-v2-privport-udp", call(P, 2, 1, args=pmap_args(T + 5, 1, IPPROTO_UDP, 40006)),
          src=("127.0.0.1", 777), note="source port < 1024")
    p.tcp("set-v2-tcp", rm(call(P, 2, 1, args=pmap_args(T + 6, 1, IPPROTO_TCP, 40007))))
    p.udp("getport-v2-prot99-udp", call(P, 2, 3, args=pmap_args(T + 1, 1, 99, 0)))
    p.udp("getport-v2-port0-udp", call(P, 2, 3, args=pmap_args(T + 2, 1, IPPROTO_UDP, 0)))
    p.udp("getport-v2-port-70000-udp", call(P, 2, 3, args=pmap_args(T + 3, 1, IPPROTO_UDP, 0)))
    p.udp("getport-v2-unregistered-udp", call(P, 2, 3, args=pmap_args(0x2FFFFFFF, 1, IPPROTO_UDP, 0)))
    p.both("dump-v2-after-set", call(P, 2, 4))
    p.both("dump-v3-after-set", call(P, 3, 4))
    p.udp("getaddr-v3-v2-registered-udp", call(P, 3, 3, rpcb_args(T, 1, "udp", "", "")),
          note="GETADDR of a v2-registered (0.0.0.0) service, asked over udp")
    p.tcp("getaddr-v3-v2-registered-tcp", rm(call(P, 3, 3, rpcb_args(T, 1, "tcp", "", ""))))
    p.udp("getaddr-v3-v2-registered-othervers-udp", call(P, 3, 3, rpcb_args(T, 7, "udp", "", "")))
    p.udp("getversaddr-v4-othervers-udp", call(P, 4, 9, rpcb_args(T, 7, "udp", "", "")))
    p.udp("getaddrlist-v4-v2-registered-udp", call(P, 4, 11, rpcb_args(T, 1, "udp", "", "")))
    p.udp("unset-v2-udp", call(P, 2, 2, args=pmap_args(T, 1, IPPROTO_UDP, 40001)),
          note="UNSET prog/vers with prot udp; is the tcp mapping removed too?")
    p.udp("getport-v2-udp-after-unset-udp", call(P, 2, 3, args=pmap_args(T, 1, IPPROTO_UDP, 0)))
    p.udp("getport-v2-tcp-after-unset-udp", call(P, 2, 3, args=pmap_args(T, 1, IPPROTO_TCP, 0)))
    p.udp("getport-v2-vers2-after-unset-udp", call(P, 2, 3, args=pmap_args(T, 2, IPPROTO_UDP, 0)))
    p.udp("unset-v2-nothing-udp", call(P, 2, 2, args=pmap_args(0x2FFFFFF0, 1, IPPROTO_UDP, 0)),
          note="UNSET of a never-registered program")
    p.udp("unset-v2-prot99-udp", call(P, 2, 2, args=pmap_args(T, 2, 99, 0)), note="UNSET with prot 99 (vers 2 registered)")
    for prog in (T + 2, T + 3, T + 4, T + 5, T + 6):
        p.udp("unset-v2-cleanup-%08x-udp" % prog, call(P, 2, 2, args=pmap_args(prog, 1, 0, 0)))
    p.udp("getport-v2-privport-entry-after-cleanup-udp", call(P, 2, 3, args=pmap_args(T + 5, 1, IPPROTO_UDP, 0)),
          note="entry registered from source port 777 (owner 'superuser'): did the unprivileged UNSET remove it?")
    p.udp("unset-v2-privport-udp", call(P, 2, 2, args=pmap_args(T + 5, 1, 0, 0)), src=("127.0.0.1", 778))
    p.udp("getport-v2-privport-entry-after-privport-unset-udp", call(P, 2, 3, args=pmap_args(T + 5, 1, IPPROTO_UDP, 0)))

    # ---- v3/v4 SET/UNSET over UDP
    p.udp("set-v3-udp", call(P, 3, 1, args=rpcb_args(T, 3, "udp", "127.0.0.1.156.65", "someowner")),
          note="v3 SET; is the owner argument honoured?")
    p.udp("set-v3-again-udp", call(P, 3, 1, args=rpcb_args(T, 3, "udp", "127.0.0.1.156.65", "someowner")))
    p.udp("set-v3-other-addr-udp", call(P, 3, 1, args=rpcb_args(T, 3, "udp", "127.0.0.1.156.66", "")))
    p.udp("set-v2-same-as-v3-udp", call(P, 2, 1, args=pmap_args(T, 3, IPPROTO_UDP, 40001)),
          note="v2 SET of the port the v3 entry has (addr 0.0.0.0.156.65 vs 127.0.0.1.156.65)")
    p.udp("set-v3-badnetid-udp", call(P, 3, 1, args=rpcb_args(T, 3, "bogus", "whatever", "")))
    p.udp("set-v4-tcp6-udp", call(P, 4, 1, args=rpcb_args(T, 3, "tcp6", "::1.156.66", "")))
    p.udp("set-v4-empty-netid-udp", call(P, 4, 1, args=rpcb_args(T, 4, "", "127.0.0.1.1.1", "")))
    p.udp("dump-v4-after-v3-set-udp", call(P, 4, 4))
    p.udp("dump-v2-after-v3-set-udp", call(P, 2, 4))
    p.udp("getport-v2-after-v3-set-udp", call(P, 2, 3, args=pmap_args(T, 3, IPPROTO_UDP, 0)))
    p.udp("getport-v2-tcp-only-tcp6-udp", call(P, 2, 3, args=pmap_args(T, 3, IPPROTO_TCP, 0)),
          note="only a tcp6 mapping exists for vers 3 tcp-ish")
    p.udp("getaddr-v3-netid-tcp6-over-udp", call(P, 3, 3, rpcb_args(T, 3, "tcp6", "", "")),
          note="is the netid argument used, or the transport's own netid?")
    p.udp("getaddr-v4-netid-tcp6-over-udp", call(P, 4, 3, rpcb_args(T, 3, "tcp6", "", "")))
    p.udp("getversaddr-v4-exact-udp", call(P, 4, 9, rpcb_args(T, 3, "udp", "", "")))
    p.udp("getaddrlist-v4-vers3-udp", call(P, 4, 11, rpcb_args(T, 3, "", "", "")))
    p.udp("unset-v3-one-netid-udp", call(P, 3, 2, args=rpcb_args(T, 3, "udp", "", "")))
    p.udp("unset-v3-netid-empty-udp", call(P, 3, 2, args=rpcb_args(T, 3, "", "", "")),
          note="empty netid unsets all transports")
    p.udp("unset-v3-nothing-udp", call(P, 3, 2, args=rpcb_args(T, 3, "", "", "")))
    p.udp("unset-v4-empty-netid-leftover-udp", call(P, 4, 2, args=rpcb_args(T, 4, "", "", "")))
    p.udp("unset-v2-vers2-cleanup-udp", call(P, 2, 2, args=pmap_args(T, 2, 0, 0)))
    X = T + 0x30
    p.udp("set-v3-bogus-netid-udp", call(P, 3, 1, args=rpcb_args(X, 1, "bogus", "whatever", "")))
    p.udp("getaddrlist-v4-bogus-netid-udp", call(P, 4, 11, rpcb_args(X, 1, "", "", "")))
    p.udp("getaddr-v3-bogus-netid-only-udp", call(P, 3, 3, rpcb_args(X, 1, "bogus", "", "")))
    p.udp("unset-v3-bogus-netid-udp", call(P, 3, 2, args=rpcb_args(X, 1, "bogus", "", "")))
    p.udp("set-v3-udp-for-garbage-udp", call(P, 3, 1, args=rpcb_args(X, 2, "udp", "127.0.0.1.1.2", "")))
    p.udp("set-v3-garbage-addr-udp", call(P, 3, 1, args=rpcb_args(X, 3, "udp", "garbage", "")))
    p.udp("getaddr-v3-garbage-addr-udp", call(P, 3, 3, rpcb_args(X, 3, "udp", "", "")))
    p.udp("getport-v2-garbage-addr-udp", call(P, 2, 3, args=pmap_args(X, 3, IPPROTO_UDP, 0)),
          note="pmaplist port of an unparsable uaddr")
    p.udp("getaddrlist-v4-garbage-addr-udp", call(P, 4, 11, rpcb_args(X, 3, "", "", "")))
    p.udp("unset-v3-garbage-cleanup-udp", call(P, 3, 2, args=rpcb_args(X, 3, "", "", "")))
    p.udp("unset-v3-garbage-cleanup2-udp", call(P, 3, 2, args=rpcb_args(X, 2, "", "", "")))

    # ---- AF_LOCAL (/run/rpcbind.sock) registrations are owned by "superuser"
    def U(name, msg, note=None):
        p.unix(name, rm(msg), note=note)

    U("null-v2-unix", call(P, 2, 0))
    U("set-v2-unix", call(P, 2, 1, args=pmap_args(T + 8, 1, IPPROTO_UDP, 40008)))
    U("set-v3-unix", call(P, 3, 1, args=rpcb_args(T + 8, 2, "udp", "127.0.0.1.156.72", "x")))
    p.udp("dump-v3-after-unix-set-udp", call(P, 3, 4))
    p.udp("unset-v2-superuser-entry-from-udp", call(P, 2, 2, args=pmap_args(T + 8, 1, 0, 0)),
          note="owner 'unknown' (udp caller) tries to remove a 'superuser' entry")
    p.udp("unset-v3-superuser-entry-from-udp", call(P, 3, 2, args=rpcb_args(T + 8, 2, "", "", "")))
    p.udp("getport-v2-after-failed-unset-udp", call(P, 2, 3, args=pmap_args(T + 8, 1, IPPROTO_UDP, 0)))
    U("unset-v2-unix", call(P, 2, 2, args=pmap_args(T + 8, 1, 0, 0)))
    U("unset-v3-unix", call(P, 3, 2, args=rpcb_args(T + 8, 2, "", "", "")))

    # ---- non-loopback source address
    src2 = ("127.0.0.2", 0)
    p.udp("set-v2-from-127.0.0.2-udp", call(P, 2, 1, args=pmap_args(T, 1, IPPROTO_UDP, 40001)), src=src2)
    p.tcp("set-v2-from-127.0.0.2-tcp", rm(call(P, 2, 1, args=pmap_args(T, 1, IPPROTO_TCP, 40002))), src=src2)
    p.udp("unset-v2-from-127.0.0.2-udp", call(P, 2, 2, args=pmap_args(T, 1, 0, 0)), src=src2)
    p.udp("set-v3-from-127.0.0.2-udp", call(P, 3, 1, args=rpcb_args(T, 1, "udp", "127.0.0.1.156.65", "")), src=src2)
    p.udp("unset-v4-from-127.0.0.2-udp", call(P, 4, 2, args=rpcb_args(T, 1, "", "", "")), src=src2)
    p.udp("set-v2-truncated-from-127.0.0.2-udp", call(P, 2, 1, args=pmap_args(T, 1, 17, 1)[:8]), src=src2,
          note="over udp the missing bytes read as zeros, see set-v2-truncated-from-127.0.0.2-tcp")
    p.tcp("set-v2-truncated-from-127.0.0.2-tcp", rm(call(P, 2, 1, args=pmap_args(T, 1, 17, 1)[:8])), src=src2,
          note="GARBAGE_ARGS or AUTH_TOOWEAK first?")
    p.tcp("set-v3-truncated-from-127.0.0.2-tcp", rm(call(P, 3, 1, args=u32(T) + u32(1))), src=src2)
    p.udp("getport-v2-from-127.0.0.2-udp", call(P, 2, 3, args=pmap_args(P, 2, IPPROTO_UDP, 0)), src=src2)
    p.udp("getaddr-v3-from-127.0.0.2-udp", call(P, 3, 3, rpcb_args(P, 3, "udp", "", "")), src=src2)
    p.udp("dump-v2-from-127.0.0.2-udp", call(P, 2, 4), src=src2)

    # ---- remote calls (CALLIT / BCAST / INDIRECT)
    callit_null = u32(P) + u32(2) + u32(0) + opaque(b"")
    callit_unreg = u32(0x2FFFFFFF) + u32(1) + u32(0) + opaque(b"")
    p.both("callit-v2-pmap-null", call(P, 2, 5, args=callit_null))
    p.both("callit-v2-unregistered", call(P, 2, 5, args=callit_unreg))
    p.udp("callit-v2-pmap-getport-udp", call(P, 2, 5, args=u32(P) + u32(2) + u32(3) + opaque(pmap_args(P, 2, 17, 0))),
          note="forwarding to rpcbind's own GETPORT")
    p.udp("callit-v2-pmap-set-udp", call(P, 2, 5, args=u32(P) + u32(2) + u32(1) + opaque(pmap_args(T, 1, 17, 1))))
    p.udp("callit-v2-truncated-udp", call(P, 2, 5, args=callit_null[:8]))
    p.udp("callit-v3-pmap-null-udp", call(P, 3, 5, args=callit_null))
    p.udp("bcast-v4-unregistered-udp", call(P, 4, 5, args=callit_unreg))
    p.udp("indirect-v4-unregistered-udp", call(P, 4, 10, args=callit_unreg))
    p.udp("indirect-v4-pmap-null-udp", call(P, 4, 10, args=callit_null))
    p.tcp("indirect-v4-unregistered-tcp", rm(call(P, 4, 10, args=callit_unreg)))

    # ---- v3/v4 address procedures for rpcbind itself
    p.both("getaddr-v3-pmap-udp-netid", call(P, 3, 3, rpcb_args(P, 3, "udp", "", "")))
    p.both("getaddr-v3-pmap-tcp-netid", call(P, 3, 3, rpcb_args(P, 3, "tcp", "", "")))
    p.udp("getaddr-v3-pmap-empty-netid-udp", call(P, 3, 3, rpcb_args(P, 3, "", "", "")))
    p.udp("getaddr-v3-pmap-udp6-netid-udp", call(P, 3, 3, rpcb_args(P, 3, "udp6", "", "")))
    p.udp("getaddr-v3-pmap-vers2-udp", call(P, 3, 3, rpcb_args(P, 2, "udp", "", "")))
    p.udp("getaddr-v3-pmap-vers9-udp", call(P, 3, 3, rpcb_args(P, 9, "udp", "", "")))
    p.udp("getaddr-v3-unregistered-udp", call(P, 3, 3, rpcb_args(0x2FFFFFFF, 1, "udp", "", "")))
    p.udp("getaddr-v4-pmap-udp", call(P, 4, 3, rpcb_args(P, 4, "udp", "", "")))
    p.udp("getversaddr-v4-pmap-udp", call(P, 4, 9, rpcb_args(P, 4, "udp", "", "")))
    p.udp("getversaddr-v4-pmap-vers9-udp", call(P, 4, 9, rpcb_args(P, 9, "udp", "", "")))
    p.both("getaddrlist-v4-pmap", call(P, 4, 11, rpcb_args(P, 4, "", "", "")))
    p.udp("getaddrlist-v4-unregistered-udp", call(P, 4, 11, rpcb_args(0x2FFFFFFF, 1, "", "", "")))
    p.udp("uaddr2taddr-v3-udp", call(P, 3, 7, xstring("127.0.0.1.0.111")))
    p.tcp("uaddr2taddr-v3-tcp", rm(call(P, 3, 7, xstring("127.0.0.1.0.111"))))
    p.udp("uaddr2taddr-v3-bad-udp", call(P, 3, 7, xstring("not-an-address")))
    sin = struct.pack("<H", socket.AF_INET) + struct.pack(">H", 111) + socket.inet_aton("127.0.0.1") + b"\0" * 8
    p.udp("taddr2uaddr-v3-udp", call(P, 3, 8, u32(16) + opaque(sin)))
    p.udp("taddr2uaddr-v4-short-udp", call(P, 4, 8, u32(4) + opaque(b"\1\2\3\4")))
    p.udp("getport-v2-pmap-udp", call(P, 2, 3, args=pmap_args(P, 2, IPPROTO_UDP, 0)))
    p.udp("getport-v2-pmap-tcp", call(P, 2, 3, args=pmap_args(P, 2, IPPROTO_TCP, 0)))
    p.udp("getport-v2-pmap-vers9", call(P, 2, 3, args=pmap_args(P, 9, IPPROTO_UDP, 0)))

    # ---- TCP record-marking edge cases
    null = call(P, 2, 0)
    n2 = call(P, 2, 0, xid=XID + 1)
    n3 = call(P, 2, 0, xid=XID + 2)
    p.tcp("tcp-2-fragments", [u32(12) + null[:12], u32(0x80000000 | (len(null) - 12)) + null[12:]],
          note="one call split into fragments of 12 (not last) + 28 (last); two writes")
    p.tcp("tcp-2-fragments-one-write", u32(12) + null[:12] + u32(0x80000000 | (len(null) - 12)) + null[12:])
    p.tcp("tcp-many-small-fragments", b"".join(u32(4) + null[i:i + 4] for i in range(0, len(null) - 4, 4)) +
          u32(0x80000004) + null[-4:])
    p.tcp("tcp-each-fragment-a-call", u32(len(null)) + null + rm(n2) + u32(len(n3)) + n3,
          note="three fragments (not-last, last, not-last), each a complete NULL call")
    p.tcp("tcp-notlast-single-call", u32(len(null)) + null, note="a complete call in a fragment without the last bit")
    big = null + b"\0" * (100 - len(null))
    p.tcp("tcp-2-fragments-40-60", u32(40) + big[:40] + u32(0x80000000 | 60) + big[40:],
          note="first fragment holds the whole call header, second is zero padding")
    p.tcp("tcp-header-then-body-writes", [rm(null)[:4], rm(null)[4:]])
    p.tcp("tcp-byte-at-a-time", [bytes([b]) for b in rm(null)[:6]] + [rm(null)[6:]])
    p.tcp("tcp-len-7fffffff", u32(0xFFFFFFFF) + b"\0\0\0\0", note="last-fragment header claiming 0x7fffffff bytes")
    p.tcp("tcp-len-7fffffff-notlast", u32(0x7FFFFFFF) + b"\0\0\0\0")
    big = null + b"\0" * (9001 - len(null))
    p.tcp("tcp-record-9001", rm(big), note="NULL call padded to a 9001-byte record")
    ok = null + b"\0" * (9000 - len(null))
    p.tcp("tcp-record-9000", rm(ok), note="NULL call padded to exactly 9000 bytes")
    p.tcp("tcp-2-fragments-total-9001", u32(5000) + big[:5000] + u32(0x80000000 | 4001) + big[5000:])
    p.tcp("tcp-zero-length-last-fragment", u32(0x80000000))
    p.tcp("tcp-zero-length-last-then-null", [u32(0x80000000), rm(n2)])
    p.tcp("tcp-zero-length-notlast-then-null", u32(0) + rm(null))
    p.tcp("tcp-partial-header", b"\x80\0", note="2 bytes of a record mark then silence")
    p.tcp("tcp-partial-record", u32(0x80000000 | len(null)) + null[:10], note="record shorter than its header says")
    p.tcp("tcp-reply-to-dump-v2-fresh-shape", rm(call(P, 2, 4)), note="reference: v2 DUMP over tcp at this point")

    # ---- UDP size edge cases
    p.udp("udp-empty", b"")
    p.udp("udp-1-byte", b"\1")
    p.udp("udp-9000", null + b"\0" * (9000 - len(null)), note="NULL call padded to 9000 bytes")
    p.udp("udp-9001", null + b"\0" * (9001 - len(null)), note="NULL call padded to 9001 bytes")
    p.udp("udp-20000", null + b"\0" * (20000 - len(null)))
    g = call(P, 2, 3, args=pmap_args(P, 2, IPPROTO_UDP, 0))
    p.udp("udp-getport-9001", g + b"\0" * (9001 - len(g)))
    p.udp("udp-cred-crossing-9000", call(P, 2, 0, cred=auth(AUTH_NONE, b"\0" * 400)) + b"\0" * 8600,
          note="sanity: 9000+ bytes with a 400-byte cred")

    # ---- many registrations: UDP DUMP larger than 9000 bytes
    if p.selected("bulk"):
        results = {}
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        for i in range(600):
            s.sendto(call(P, 2, 1, xid=0x10000 + i,
                          args=pmap_args(0x2FFE0000 + i, 1, IPPROTO_UDP, 30000 + i)), (p.host, p.port))
            r = s.recv(65536)
            key = r[-4:].hex()
            results[key] = results.get(key, 0) + 1
        s.close()
        p.emit("bulk-set-600-udp", "udp",
               "600 x v2 SET prog 0x2ffe0000+i vers 1 udp port 30000+i (xid 0x10000+i)",
               ["reply: " + ", ".join("%d x result %s" % (n, r) for r, n in sorted(results.items()))])
    p.udp("dump-v2-after-600-udp", call(P, 2, 4), note="pmaplist of 606 entries = 12124 bytes of results")
    p.tcp("dump-v2-after-600-tcp", rm(call(P, 2, 4)))
    p.udp("dump-v3-after-600-udp", call(P, 3, 4))
    p.udp("dump-v4-after-600-udp", call(P, 4, 4))
    p.udp("null-v2-after-600-udp", call(P, 2, 0))
    p.udp("getport-v2-after-600-udp", call(P, 2, 3, args=pmap_args(0x2FFE0000 + 599, 1, IPPROTO_UDP, 0)))

    # ---- statistics (deterministic only for this exact sequence, incl. record.sh's readiness check)
    p.udp("getstat-v4-udp", call(P, 4, 12))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=111)
    ap.add_argument("--unix", default="/run/rpcbind.sock")
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--only", default=None, help="run only cases whose name contains one of these comma-separated substrings")
    a = ap.parse_args()
    p = Probe(a.host, a.port, a.unix, a.timeout, a.only)
    run(p)


if __name__ == "__main__":
    main()
