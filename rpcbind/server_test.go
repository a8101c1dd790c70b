package rpcbind

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

// testServer is a portmapper serving on loopback ephemeral ports.
type testServer struct {
	reg      *registry.Registry
	mux      *oncrpc.ServeMux
	udp, tcp netip.AddrPort
	port     uint16
	// stop ends serving and waits for the serving goroutines; it may be
	// called more than once.
	stop func()
}

type serverOption func(*oncrpc.Server)

// startServer serves the portmapper on UDP (bound to the IPv4 wildcard, so
// that the reply source matters) and TCP ports chosen by the kernel.
func startServer(t testing.TB, opts ...serverOption) *testServer {
	t.Helper()
	return startPortmapper(t, nil, opts...)
}

// startPortmapper is startServer with setup, when not nil, given the
// Portmapper before it serves.
func startPortmapper(t testing.TB, setup func(*Portmapper), opts ...serverOption) *testServer {
	t.Helper()
	reg := registry.New(registry.Options{})
	mux := &oncrpc.ServeMux{}
	pm := &Portmapper{Registry: reg}
	if setup != nil {
		setup(pm)
	}
	pm.Register(mux)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero, Port: int(port)})
	if err != nil {
		pc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range pm.SelfEntries([]Endpoint{{Netid: "tcp", Addr: netid.WildcardUaddr("tcp", 111)}, {Netid: "udp", Addr: netid.WildcardUaddr("udp", 111)}}) {
		if _, err := reg.Set(registry.Caller{Transport: registry.Internal}, e); err != nil {
			t.Fatal(err)
		}
	}
	srv := &oncrpc.Server{Handler: mux, Logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = srv.ServeUDP(ctx, pc, "udp"); done <- struct{}{} }()
	go func() { _ = srv.ServeStream(ctx, ln, "tcp"); done <- struct{}{} }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			for range 2 {
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					t.Error("server did not stop within 5s of cancellation")
					return
				}
			}
			_ = pc.Close()
		})
	}
	t.Cleanup(stop)
	return &testServer{
		reg: reg, mux: mux, port: port, stop: stop,
		udp: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(pc.LocalAddr().(*net.UDPAddr).Port)),
		tcp: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
	}
}

// client dials the server from the given local address (empty: any).
func (s *testServer) client(t testing.TB, network, from string) *Client {
	t.Helper()
	d := net.Dialer{}
	target := s.udp
	if network == "tcp" {
		target = s.tcp
	}
	if from != "" {
		if network == "tcp" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
		} else {
			d.LocalAddr = &net.UDPAddr{IP: net.ParseIP(from)}
		}
	}
	conn, err := d.Dial(network+"4", target.String())
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(conn)
	c.Retransmit = 200 * time.Millisecond
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestPortmapV2 walks rpcbind's v2 rules in order over each transport.
// Expected answers are what Debian's rpcbind gave for the same sequence
// (testdata/oracle).
func TestPortmapV2(t *testing.T) {
	const prog = 0x2fff0001
	type step struct {
		name string
		do   func(ctx context.Context, c *Client) (uint32, error)
		want uint32
	}
	set := func(vers, prot, port uint32) func(context.Context, *Client) (uint32, error) {
		return func(ctx context.Context, c *Client) (uint32, error) {
			ok, err := c.PmapSet(ctx, xdr.Mapping{Prog: prog, Vers: vers, Prot: prot, Port: port})
			return b2u(ok), err
		}
	}
	unset := func(vers uint32) func(context.Context, *Client) (uint32, error) {
		return func(ctx context.Context, c *Client) (uint32, error) {
			ok, err := c.PmapUnset(ctx, prog, vers)
			return b2u(ok), err
		}
	}
	getport := func(p, vers, prot uint32) func(context.Context, *Client) (uint32, error) {
		return func(ctx context.Context, c *Client) (uint32, error) { return c.GetPort(ctx, p, vers, prot) }
	}
	steps := []step{
		{"portmapper on udp", getport(xdr.PmapProg, 2, netid.ProtoUDP), 111},
		{"portmapper on tcp", getport(xdr.PmapProg, 2, netid.ProtoTCP), 111},
		{"set udp", set(1, netid.ProtoUDP, 40001), 1},
		{"set udp again, same port", set(1, netid.ProtoUDP, 40001), 1},
		{"set udp again, other port", set(1, netid.ProtoUDP, 40009), 0},
		{"set tcp", set(1, netid.ProtoTCP, 40002), 1},
		{"set protocol 99", set(1, 99, 40003), 0},
		{"set version 3", set(3, netid.ProtoUDP, 40003), 1},
		{"getport exact udp", getport(prog, 1, netid.ProtoUDP), 40001},
		{"getport exact tcp", getport(prog, 1, netid.ProtoTCP), 40002},
		{"getport other version falls back to the last registered", getport(prog, 7, netid.ProtoUDP), 40003},
		{"getport other version on tcp", getport(prog, 7, netid.ProtoTCP), 40002},
		{"getport protocol 99", getport(prog, 1, 99), 0},
		{"getport unknown program", getport(prog+100, 1, netid.ProtoUDP), 0},
		{"unset removes tcp and udp", unset(1), 1},
		{"udp gone", getport(prog, 1, netid.ProtoUDP), 40003},
		{"tcp gone", getport(prog, 1, netid.ProtoTCP), 0},
		{"unset version 3", unset(3), 1},
		{"unset of nothing", unset(3), 1},
		{"all gone", getport(prog, 3, netid.ProtoUDP), 0},
		{"port is taken modulo 65536", set(5, netid.ProtoUDP, 70000), 1},
		{"port 70000 reads back as 4464", getport(prog, 5, netid.ProtoUDP), 4464},
		{"cleanup", unset(5), 1},
	}
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			s := startServer(t)
			c := s.client(t, network, "")
			for _, st := range steps {
				t.Run(st.name, func(t *testing.T) {
					got, err := st.do(ctxT(t), c)
					if err != nil {
						t.Fatal(err)
					}
					if got != st.want {
						t.Errorf("got %d, want %d", got, st.want)
					}
				})
			}
		})
	}
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

func TestDumpV2(t *testing.T) {
	s := startServer(t)
	c := s.client(t, "tcp", "")
	ctx := ctxT(t)
	if ok, err := c.PmapSet(ctx, xdr.Mapping{Prog: 0x2fff0001, Vers: 1, Prot: netid.ProtoUDP, Port: 40001}); !ok || err != nil {
		t.Fatalf("set: %v %v", ok, err)
	}
	got, err := c.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// rpcinfo -p's order on a fresh rpcbind: tcp 4, 3, 2, then udp.
	want := []xdr.Mapping{
		{Prog: 100000, Vers: 4, Prot: 6, Port: 111},
		{Prog: 100000, Vers: 3, Prot: 6, Port: 111},
		{Prog: 100000, Vers: 2, Prot: 6, Port: 111},
		{Prog: 100000, Vers: 4, Prot: 17, Port: 111},
		{Prog: 100000, Vers: 3, Prot: 17, Port: 111},
		{Prog: 100000, Vers: 2, Prot: 17, Port: 111},
		{Prog: 0x2fff0001, Vers: 1, Prot: 17, Port: 40001},
	}
	if len(got) != len(want) {
		t.Fatalf("dump has %d entries, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestChangesOnlyFromLoopback: rpcbind accepts SET and UNSET from exactly
// 127.0.0.1 and answers anyone else AUTH_TOOWEAK, while lookups stay open.
func TestChangesOnlyFromLoopback(t *testing.T) {
	s := startServer(t)
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			c := s.client(t, network, "127.0.0.2")
			ctx := ctxT(t)
			_, err := c.PmapSet(ctx, xdr.Mapping{Prog: 0x2fff0002, Vers: 1, Prot: netid.ProtoUDP, Port: 40001})
			wantDenied(t, err, xdr.AuthTooWeak)
			_, err = c.PmapUnset(ctx, xdr.PmapProg, 2)
			wantDenied(t, err, xdr.AuthTooWeak)
			if port, err := c.GetPort(ctx, xdr.PmapProg, 2, netid.ProtoUDP); err != nil || port != 111 {
				t.Errorf("getport from 127.0.0.2 = %d, %v; want 111", port, err)
			}
		})
	}
}

func wantDenied(t *testing.T, err error, why xdr.AuthStat) {
	t.Helper()
	var re *xdr.ReplyError
	if !errors.As(err, &re) || re.Header.Stat != xdr.MsgDenied || re.Header.Reject != xdr.AuthError || re.Header.Auth != why {
		t.Fatalf("got %v, want AUTH_ERROR %v", err, why)
	}
}

// call encodes a call header and raw argument bytes.
func call(xid, rpcvers, prog, vers, proc uint32, cred, verf xdr.OpaqueAuth, args []byte) []byte {
	var e xdr.Encoder
	h := xdr.CallHeader{XID: xid, RPCVers: rpcvers, Prog: prog, Vers: vers, Proc: proc, Cred: cred, Verf: verf}
	h.Encode(&e)
	return append(e.Bytes(), args...)
}

func authSys(p xdr.AuthSysParms) xdr.OpaqueAuth {
	var e xdr.Encoder
	p.Encode(&e)
	d := xdr.NewDecoder(e.Bytes())
	d.Uint32()
	return xdr.OpaqueAuth{Flavor: xdr.AuthSys, Body: d.Opaque("", 400)}
}

func reply(h xdr.ReplyHeader, results ...uint32) []byte {
	var e xdr.Encoder
	h.Encode(&e)
	for _, r := range results {
		e.Uint32(r)
	}
	return e.Bytes()
}

// rpcMismatchReply is MSG_DENIED RPC_MISMATCH (low 2, high 2), the bytes of
// testdata/xdr/reply-rpc-mismatch.hex for the oracle's xid.
func rpcMismatchReply(xid uint32) xdr.ReplyHeader {
	return xdr.ReplyHeader{XID: xid, Stat: xdr.MsgDenied, Reject: xdr.RPCMismatch, Mismatch: xdr.Mismatch{Low: 2, High: 2}}
}

func mismatch(xid uint32, low, high uint32) xdr.ReplyHeader {
	h := xdr.Accepted(xid, xdr.ProgMismatch)
	h.Mismatch = xdr.Mismatch{Low: low, High: high}
	return h
}

// TestErrorReplies sends calls that cannot be served and checks the bytes
// of the answer, or that there is none, as Debian's rpcbind behaves.
func TestErrorReplies(t *testing.T) {
	const xid = 0x01020304
	none := xdr.OpaqueAuth{}
	getportArgs := []byte{0, 1, 0x86, 0xa0, 0, 0, 0, 2, 0, 0, 0, 17, 0, 0, 0, 0}
	sys := authSys(xdr.AuthSysParms{Stamp: 0x11223344, MachineName: "oracle", UID: 0, GID: 0, GIDs: []uint32{0}})
	sysVerf := xdr.OpaqueAuth{Flavor: xdr.AuthSys, Body: sys.Body}
	withVerf := xdr.Accepted(xid, xdr.Success)
	withVerf.Verf = sysVerf
	tests := []struct {
		name string
		req  []byte
		want []byte // nil: no reply, and a stream is closed
	}{
		{"unknown program", call(xid, 2, 100099, 2, 0, none, none, nil), reply(xdr.Accepted(xid, xdr.ProgUnavail))},
		{"version 1", call(xid, 2, 100000, 1, 0, none, none, nil), reply(mismatch(xid, 2, 4))},
		{"version 5", call(xid, 2, 100000, 5, 0, none, none, nil), reply(mismatch(xid, 2, 4))},
		{"procedure 6 of version 2", call(xid, 2, 100000, 2, 6, none, none, nil), reply(xdr.Accepted(xid, xdr.ProcUnavail))},
		{"truncated SET arguments", call(xid, 2, 100000, 2, 1, none, none, getportArgs[:8]), reply(xdr.Accepted(xid, xdr.GarbageArgs))},
		{"GETPORT with trailing bytes", call(xid, 2, 100000, 2, 3, none, none, append(getportArgs, 1, 2, 3, 4)), reply(xdr.Accepted(xid, xdr.Success), 111)},
		// RFC 5531 §9, where rpcbind is silent: see serve.
		{"rpcvers 3", call(xid, 3, 100000, 2, 0, none, none, nil), reply(rpcMismatchReply(xid))},
		{"rpcvers 0", call(xid, 0, 100000, 2, 0, none, none, nil), reply(rpcMismatchReply(xid))},
		{"rpcvers 1, unknown program", call(xid, 1, 100099, 1, 0, none, none, nil), reply(rpcMismatchReply(xid))},
		{"rpcvers 3, nothing after it", call(xid, 3, 100000, 2, 0, none, none, nil)[:12], reply(rpcMismatchReply(xid))},
		{"rpcvers missing", call(xid, 3, 100000, 2, 0, none, none, nil)[:10], nil},
		{"a reply sent to the server", reply(xdr.Accepted(xid, xdr.Success)), nil},
		{"8 bytes", call(xid, 2, 100000, 2, 0, none, none, nil)[:8], nil},
		{"header without credentials", call(xid, 2, 100000, 2, 0, none, none, nil)[:24], nil},
		{"credential over 400 bytes", call(xid, 2, 100000, 2, 0, xdr.OpaqueAuth{Body: make([]byte, 401)}, none, nil), nil},
		{"credential of 400 bytes", call(xid, 2, 100000, 2, 0, xdr.OpaqueAuth{Body: make([]byte, 400)}, none, nil), reply(xdr.Accepted(xid, xdr.Success))},
		{"unknown flavour", call(xid, 2, 100000, 2, 0, xdr.OpaqueAuth{Flavor: 99}, none, nil), reply(xdr.Denied(xid, xdr.AuthRejectedCred))},
		{"AUTH_SHORT", call(xid, 2, 100000, 2, 0, xdr.OpaqueAuth{Flavor: xdr.AuthShort}, none, nil), reply(xdr.Denied(xid, xdr.AuthRejectedCred))},
		{"AUTH_DH", call(xid, 2, 100000, 2, 0, xdr.OpaqueAuth{Flavor: xdr.AuthDH, Body: make([]byte, 8)}, none, nil), reply(xdr.Denied(xid, xdr.AuthFailed))},
		{"RPCSEC_GSS empty", call(xid, 2, 100000, 2, 0, xdr.OpaqueAuth{Flavor: xdr.RPCSecGSS}, none, nil), reply(xdr.Denied(xid, xdr.AuthBadCred))},
		{"RPCSEC_GSS data, no context", call(xid, 2, 100000, 2, 0, xdr.OpaqueAuth{Flavor: xdr.RPCSecGSS, Body: []byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 4, 'a', 'b', 'c', 'd'}}, none, nil), reply(xdr.Denied(xid, 13))},
		{"RPCSEC_GSS init", call(xid, 2, 100000, 2, 0, xdr.OpaqueAuth{Flavor: xdr.RPCSecGSS, Body: []byte{0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}}, none, nil), reply(xdr.Denied(xid, xdr.AuthFailed))},
		{"AUTH_SYS", call(xid, 2, 100000, 2, 0, sys, none, nil), reply(xdr.Accepted(xid, xdr.Success))},
		{"AUTH_SYS with 17 groups", call(xid, 2, 100000, 2, 0, authSys(xdr.AuthSysParms{GIDs: make([]uint32, 17)}), none, nil), reply(xdr.Denied(xid, xdr.AuthBadCred))},
		{"AUTH_SYS empty", call(xid, 2, 100000, 2, 0, xdr.OpaqueAuth{Flavor: xdr.AuthSys}, none, nil), reply(xdr.Denied(xid, xdr.AuthBadCred))},
		{"AUTH_SYS verifier is echoed", call(xid, 2, 100000, 2, 0, sys, sysVerf, nil), reply(withVerf)},
		{"CALLIT is not answered", call(xid, 2, 100000, 2, 5, none, none, []byte{0, 1, 0x86, 0xa0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0}), nil},
	}
	s := startServer(t)
	for _, tc := range tests {
		t.Run(tc.name+"/udp", func(t *testing.T) {
			got := exchangeUDP(t, s.udp, tc.req)
			if !bytes.Equal(got, tc.want) {
				t.Errorf("reply\n got %x\nwant %x", got, tc.want)
			}
		})
		t.Run(tc.name+"/tcp", func(t *testing.T) {
			got, closed := exchangeTCP(t, s.tcp, xdr.AppendRecord(nil, tc.req, 0))
			want := tc.want
			if tc.name == "CALLIT is not answered" {
				if got != nil || closed {
					t.Errorf("CALLIT over TCP: reply %x, closed %v; want silence on an open connection", got, closed)
				}
				return
			}
			if !bytes.Equal(got, want) {
				t.Errorf("reply\n got %x\nwant %x", got, want)
			}
			if want == nil && !closed {
				t.Error("connection left open after an untrusted header")
			}
			if want != nil && closed {
				t.Error("connection closed after an answered call")
			}
		})
	}
}

// exchangeUDP sends one datagram and returns the reply, or nil when none
// comes within a short wait.
func exchangeUDP(t *testing.T, to netip.AddrPort, req []byte) []byte {
	t.Helper()
	return exchangeUDPFrom(t, netip.Addr{}, to, req, 300*time.Millisecond)
}

// exchangeTCP writes raw bytes on a new connection and returns the first
// reply record (nil if none) and whether the server closed the connection.
func exchangeTCP(t *testing.T, to netip.AddrPort, raw []byte) ([]byte, bool) {
	t.Helper()
	conn, err := net.Dial("tcp4", to.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(raw); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	rr := xdr.NewRecordReader(conn, 1<<20)
	rec, err := rr.Next()
	if err == nil {
		rec = bytes.Clone(rec)
		_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		_, err = rr.Next()
	}
	var ne net.Error
	closed := !(errors.As(err, &ne) && ne.Timeout())
	return rec, closed
}

func TestRecordMarking(t *testing.T) {
	s := startServer(t)
	null := call(7, 2, 100000, 2, 0, xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, nil)
	ok := reply(xdr.Accepted(7, xdr.Success))
	t.Run("call in many fragments", func(t *testing.T) {
		var raw []byte
		for i := 0; i < len(null); i += 4 {
			mark := uint32(4)
			if i+4 >= len(null) {
				mark |= 1 << 31
			}
			raw = binary.BigEndian.AppendUint32(raw, mark)
			raw = append(raw, null[i:i+4]...)
		}
		got, closed := exchangeTCP(t, s.tcp, raw)
		if !bytes.Equal(got, ok) || closed {
			t.Errorf("got %x closed %v, want %x on an open connection", got, closed, ok)
		}
	})
	t.Run("record over 9000 bytes closes the connection unread", func(t *testing.T) {
		big := append(null, make([]byte, 9001-len(null))...)
		got, closed := exchangeTCP(t, s.tcp, xdr.AppendRecord(nil, big, 0))
		if got != nil || !closed {
			t.Errorf("got %x closed %v, want no reply and a closed connection", got, closed)
		}
	})
	t.Run("record of exactly 9000 bytes is served", func(t *testing.T) {
		big := append(null, make([]byte, 9000-len(null))...)
		got, _ := exchangeTCP(t, s.tcp, xdr.AppendRecord(nil, big, 0))
		if !bytes.Equal(got, ok) {
			t.Errorf("got %x, want %x", got, ok)
		}
	})
	t.Run("record mark claiming 2 GiB", func(t *testing.T) {
		got, closed := exchangeTCP(t, s.tcp, []byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4})
		if got != nil || !closed {
			t.Errorf("got %x closed %v, want no reply and a closed connection", got, closed)
		}
	})
	t.Run("two calls in one write", func(t *testing.T) {
		conn, err := net.Dial("tcp4", s.tcp.String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		two := xdr.AppendRecord(xdr.AppendRecord(nil, null, 0), null, 0)
		if _, err := conn.Write(two); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		rr := xdr.NewRecordReader(conn, 1<<20)
		for i := range 2 {
			rec, err := rr.Next()
			if err != nil || !bytes.Equal(rec, ok) {
				t.Fatalf("reply %d: %x %v", i, rec, err)
			}
		}
	})
	t.Run("datagram over 9000 bytes is dropped", func(t *testing.T) {
		big := append(null, make([]byte, 9001-len(null))...)
		if got := exchangeUDP(t, s.udp, big); got != nil {
			t.Errorf("got %x, want no reply", got)
		}
	})
}

// TestLargeDump: a v2 DUMP too big for a datagram gets no reply over UDP,
// as from rpcbind, and arrives whole, in fragments, over TCP: 600
// registrations and the portmapper's own six.
func TestLargeDump(t *testing.T) {
	s := startServer(t)
	for i := range 600 {
		if _, err := s.reg.SetMapping(registry.Caller{Transport: registry.Internal},
			xdr.Mapping{Prog: 0x2fff1000 + uint32(i), Vers: 1, Prot: netid.ProtoUDP, Port: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	dump := call(9, 2, 100000, 2, 4, xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, nil)
	if got := exchangeUDP(t, s.udp, dump); got != nil {
		t.Errorf("UDP DUMP of 606 entries answered with %d bytes; rpcbind sends nothing", len(got))
	}
	c := s.client(t, "tcp", "")
	list, err := c.Dump(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 606 {
		t.Errorf("TCP DUMP has %d entries, want 606", len(list))
	}
}

func TestUDPReplyLeavesFromCalledAddress(t *testing.T) {
	s := startServer(t)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, dst := range []string{"127.0.0.1", "127.0.0.3"} {
		t.Run(dst, func(t *testing.T) {
			to := netip.AddrPortFrom(netip.MustParseAddr(dst), s.udp.Port())
			if _, err := conn.WriteToUDPAddrPort(call(11, 2, 100000, 2, 0, xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, nil), to); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 512)
			_, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatal(err)
			}
			if from != to {
				t.Errorf("reply came from %v, want %v", from, to)
			}
		})
	}
}

func TestPanickingHandlerAnswersSystemErr(t *testing.T) {
	s := startServer(t)
	s.mux.HandleFunc(0x2fff0009, 1, 1, func(oncrpc.ReplyWriter, *oncrpc.Call) { panic("boom") })
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			c := s.client(t, network, "")
			err := c.Call(ctxT(t), 0x2fff0009, 1, 1, nil, nil)
			var re *xdr.ReplyError
			if !errors.As(err, &re) || re.Header.Accept != xdr.SystemErr {
				t.Fatalf("got %v, want SYSTEM_ERR", err)
			}
			if err := c.Null(ctxT(t), xdr.PmapProg, 2); err != nil {
				t.Fatalf("server stopped answering after a panic: %v", err)
			}
		})
	}
}

func TestDivertHandsOverNonRPCConnections(t *testing.T) {
	got := make(chan string, 1)
	s := startServer(t, func(srv *oncrpc.Server) {
		srv.Divert = func(c net.Conn) {
			defer c.Close()
			line := make([]byte, 14)
			_, _ = io.ReadFull(c, line)
			got <- string(line)
		}
	})
	conn, err := net.Dial("tcp4", s.tcp.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /portmap HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case line := <-got:
		if line != "GET /portmap H" {
			t.Errorf("diverted connection read %q", line)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("connection was not diverted")
	}
	// RPC on the same port still works.
	if err := s.client(t, "tcp", "").Null(ctxT(t), xdr.PmapProg, 2); err != nil {
		t.Fatal(err)
	}
}

// TestStopWithAClientThatReadsNothing: a client sends DUMP after DUMP and
// reads none of the replies, until the server is stuck writing to it.
// Stopping the server must not wait for that client (nor for the idle or
// record timeouts, an hour here).
func TestStopWithAClientThatReadsNothing(t *testing.T) {
	reg := registry.New(registry.Options{})
	mux := &oncrpc.ServeMux{}
	(&Portmapper{Registry: reg}).Register(mux)
	for prog := uint32(400000); prog < 400100; prog++ {
		if _, err := reg.Set(registry.Caller{Transport: registry.Internal}, registry.Entry{Prog: prog, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.8.1"}); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &oncrpc.Server{Handler: mux, Logger: slog.New(slog.DiscardHandler), IdleTimeout: time.Hour, RecordTimeout: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.ServeStream(ctx, ln, "tcp") }()

	conn, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	msg := call(1, 2, xdr.PmapProg, xdr.PmapVers, xdr.PmapProcDump, xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, nil)
	rec := binary.BigEndian.AppendUint32(nil, 0x80000000|uint32(len(msg)))
	rec = append(rec, msg...)
	batch := bytes.Repeat(rec, 256)
	// Once both directions are full, the server is stuck writing and
	// no longer reads: the client's writes stop going through.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_ = conn.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := conn.Write(batch); err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server went on reading calls whose replies nobody reads")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeStream: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeStream still waits for a client that reads nothing, 10s after the stop")
	}
}
