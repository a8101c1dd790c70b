package oncrpc_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/peer"
	"github.com/portmapd/portmapd/xdr"
)

// A test program with two versions, 1 and 3.
const (
	testProg  = 0x20000101
	procEcho  = 1 // replies with its uint32 argument
	procPanic = 2
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// endpoints are the sockets a test server serves, to dial with Dial.
type endpoints struct {
	udp, tcp netip.AddrPort
	unix     string
}

// serve serves srv on loopback UDP and TCP and on a unix socket, under
// the netids udp, tcp and local, until the test ends.
func serve(t *testing.T, srv *oncrpc.Server) endpoints {
	t.Helper()
	if srv.Logger == nil {
		srv.Logger = slog.New(slog.DiscardHandler)
	}
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	ep := endpoints{udp: pc.LocalAddr().(*net.UDPAddr).AddrPort(), unix: filepath.Join(t.TempDir(), "rpc.sock")}
	streams := []struct {
		netid, network, addr string
		ln                   net.Listener
	}{
		{netid: "tcp", network: "tcp4", addr: "127.0.0.1:0"},
		{netid: "local", network: "unix", addr: ep.unix},
	}
	for i := range streams {
		if streams[i].ln, err = net.Listen(streams[i].network, streams[i].addr); err != nil {
			t.Fatal(err)
		}
	}
	ep.tcp = streams[0].ln.Addr().(*net.TCPAddr).AddrPort()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1+len(streams))
	go func() { done <- srv.ServeUDP(ctx, pc, "udp") }()
	for _, st := range streams {
		go func() { done <- srv.ServeStream(ctx, st.ln, st.netid) }()
	}
	t.Cleanup(func() {
		cancel()
		for range cap(done) {
			if err := <-done; err != nil {
				t.Errorf("serving: %v", err)
			}
		}
	})
	return ep
}

// dial connects a client to the endpoint of network (udp, tcp or unix).
func (ep endpoints) dial(t *testing.T, network string) *oncrpc.Client {
	t.Helper()
	addr := ep.unix
	switch network {
	case "udp":
		addr = ep.udp.String()
	case "tcp":
		addr = ep.tcp.String()
	}
	c, err := oncrpc.Dial(ctxT(t), network, addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Retransmit = 200 * time.Millisecond
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func echo(ctx context.Context, c *oncrpc.Client, vers, v uint32) (uint32, error) {
	var got uint32
	err := c.Call(ctx, testProg, vers, procEcho, func(e *xdr.Encoder) { e.Uint32(v) }, func(d *xdr.Decoder) { got = d.Uint32() })
	return got, err
}

// testMux is a zero ServeMux with the test program on it.
func testMux() *oncrpc.ServeMux {
	var mux oncrpc.ServeMux
	for _, vers := range []uint32{1, 3} {
		mux.HandleFunc(testProg, vers, 0, func(w oncrpc.ReplyWriter, c *oncrpc.Call) { _ = oncrpc.Reply(w, c, nil) })
		mux.HandleFunc(testProg, vers, procEcho, func(w oncrpc.ReplyWriter, c *oncrpc.Call) {
			var v uint32
			if !c.DecodeArgs(func(d *xdr.Decoder) { v = d.Uint32() }) {
				_ = oncrpc.ReplyError(w, c, xdr.GarbageArgs)
				return
			}
			_ = oncrpc.ReplyUint32(w, c, v)
		})
		mux.HandleFunc(testProg, vers, procPanic, func(oncrpc.ReplyWriter, *oncrpc.Call) { panic("boom") })
	}
	return &mux
}

func replyError(err error) (xdr.ReplyHeader, bool) {
	var re *xdr.ReplyError
	if !errors.As(err, &re) {
		return xdr.ReplyHeader{}, false
	}
	return re.Header, true
}

// TestServeMux: a zero ServeMux routes by program, version and procedure,
// and answers what it cannot route as RFC 5531 says, on every transport.
func TestServeMux(t *testing.T) {
	ep := serve(t, &oncrpc.Server{Handler: testMux()})
	tests := []struct {
		name             string
		prog, vers, proc uint32
		want             xdr.ReplyHeader // Accept is Success for a reply with results
	}{
		{"echo on version 1", testProg, 1, procEcho, xdr.Accepted(0, xdr.Success)},
		{"echo on version 3", testProg, 3, procEcho, xdr.Accepted(0, xdr.Success)},
		{"unknown program", testProg + 1, 1, 0, xdr.Accepted(0, xdr.ProgUnavail)},
		{"unknown version", testProg, 2, 0, xdr.ReplyHeader{Stat: xdr.MsgAccepted, Accept: xdr.ProgMismatch, Mismatch: xdr.Mismatch{Low: 1, High: 3}}},
		{"unknown procedure", testProg, 1, 9, xdr.Accepted(0, xdr.ProcUnavail)},
		{"a panicking handler", testProg, 1, procPanic, xdr.Accepted(0, xdr.SystemErr)},
	}
	for _, network := range []string{"udp", "tcp", "unix"} {
		c := ep.dial(t, network)
		for _, tc := range tests {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				var got uint32
				err := c.Call(ctxT(t), tc.prog, tc.vers, tc.proc, func(e *xdr.Encoder) { e.Uint32(77) }, func(d *xdr.Decoder) { got = d.Uint32() })
				if tc.want.Accept == xdr.Success {
					if err != nil || got != 77 {
						t.Fatalf("got %d, %v; want 77", got, err)
					}
					return
				}
				h, ok := replyError(err)
				if !ok || h.Stat != tc.want.Stat || h.Accept != tc.want.Accept || h.Mismatch != tc.want.Mismatch {
					t.Fatalf("got %v (%+v), want %+v", err, h, tc.want)
				}
			})
		}
	}
}

// TestCallPeer: each call's Peer names the transport as the server was
// told, and the addresses or, on a local socket, the calling process.
func TestCallPeer(t *testing.T) {
	peers := make(chan peer.Peer, 1)
	var mux oncrpc.ServeMux
	mux.HandleFunc(testProg, 1, 0, func(w oncrpc.ReplyWriter, c *oncrpc.Call) {
		peers <- c.Peer
		_ = oncrpc.Reply(w, c, nil)
	})
	ep := serve(t, &oncrpc.Server{Handler: &mux})
	for _, tc := range []struct {
		network, transport string
		server             netip.AddrPort
	}{
		{"udp", "udp", ep.udp},
		{"tcp", "tcp", ep.tcp},
		{"unix", "local", netip.AddrPort{}},
	} {
		t.Run(tc.network, func(t *testing.T) {
			c := ep.dial(t, tc.network)
			if err := c.Null(ctxT(t), testProg, 1); err != nil {
				t.Fatal(err)
			}
			p := <-peers
			if p.Transport != tc.transport {
				t.Errorf("transport %q, want %q", p.Transport, tc.transport)
			}
			if tc.network == "unix" {
				if p.Addr.IsValid() || p.Local.IsValid() {
					t.Errorf("local peer with IP addresses: %+v", p)
				}
				if runtime.GOOS != "linux" {
					return
				}
				if p.Cred == nil || int(p.Cred.PID) != os.Getpid() || p.Cred.UID != uint32(os.Geteuid()) {
					t.Errorf("credentials %+v, want this process (pid %d, uid %d)", p.Cred, os.Getpid(), os.Geteuid())
				}
				return
			}
			if want := peer.AddrPort(c.LocalAddr()); p.Addr != want {
				t.Errorf("address %v, want the client's %v", p.Addr, want)
			}
			if p.Local != tc.server {
				t.Errorf("local address %v, want the server's %v", p.Local, tc.server)
			}
			if p.Cred != nil {
				t.Errorf("credentials on an IP transport: %+v", p.Cred)
			}
		})
	}
}

// authSys returns an AUTH_SYS credential for uid.
func authSys(uid uint32) xdr.OpaqueAuth {
	var e xdr.Encoder
	xdr.AuthSysParms{MachineName: "test", UID: uid}.Encode(&e)
	d := xdr.NewDecoder(e.Bytes())
	d.Uint32() // flavour
	return xdr.OpaqueAuth{Flavor: xdr.AuthSys, Body: d.Opaque("body", xdr.MaxAuthBytes)}
}

// TestAcceptHook: a Server's Accept decides which calls reach the
// handler; a call it refuses is denied with its reason, and the handler
// never sees it. The RPC_MISMATCH answer stays the server's.
func TestAcceptHook(t *testing.T) {
	var accepted, handled atomic.Int32
	rootOnly := func(c *oncrpc.Call) (xdr.OpaqueAuth, xdr.AuthStat) {
		verf, why := oncrpc.DefaultAccept(c)
		if why != xdr.AuthOK {
			return verf, why
		}
		if c.AuthSys == nil || c.AuthSys.UID != 0 {
			return verf, xdr.AuthTooWeak
		}
		accepted.Add(1)
		return verf, xdr.AuthOK
	}
	var mux oncrpc.ServeMux
	mux.HandleFunc(testProg, 1, 0, func(w oncrpc.ReplyWriter, c *oncrpc.Call) {
		handled.Add(1)
		_ = oncrpc.Reply(w, c, nil)
	})
	ep := serve(t, &oncrpc.Server{Handler: &mux, Accept: rootOnly})
	tests := []struct {
		name string
		cred xdr.OpaqueAuth
		want xdr.AuthStat
	}{
		{"AUTH_SYS root", authSys(0), xdr.AuthOK},
		{"AUTH_SYS uid 1000", authSys(1000), xdr.AuthTooWeak},
		{"AUTH_NONE", xdr.OpaqueAuth{}, xdr.AuthTooWeak},
		{"AUTH_DH, refused by DefaultAccept", xdr.OpaqueAuth{Flavor: xdr.AuthDH}, xdr.AuthFailed},
	}
	for _, network := range []string{"udp", "tcp"} {
		c := ep.dial(t, network)
		for _, tc := range tests {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				before := handled.Load()
				c.Cred = tc.cred
				err := c.Null(ctxT(t), testProg, 1)
				if tc.want == xdr.AuthOK {
					if err != nil {
						t.Fatal(err)
					}
					if handled.Load() != before+1 {
						t.Error("accepted call not handled")
					}
					return
				}
				h, ok := replyError(err)
				if !ok || h.Stat != xdr.MsgDenied || h.Reject != xdr.AuthError || h.Auth != tc.want {
					t.Fatalf("got %v, want AUTH_ERROR %v", err, tc.want)
				}
				if handled.Load() != before {
					t.Error("the handler ran for a refused call")
				}
			})
		}
	}
	t.Run("RPC_MISMATCH is answered before Accept", func(t *testing.T) {
		before := accepted.Load()
		conn, err := net.Dial("udp4", ep.udp.String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var e xdr.Encoder
		call := xdr.CallHeader{XID: 9, RPCVers: 3, Prog: testProg, Vers: 1, Cred: authSys(0)}
		call.Encode(&e)
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write(e.Bytes()); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 512)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		h, _, err := xdr.DecodeReply(buf[:n])
		if hh, ok := replyError(err); !ok || hh.Reject != xdr.RPCMismatch || h.Mismatch != (xdr.Mismatch{Low: 2, High: 2}) {
			t.Fatalf("reply %+v, %v; want RPC_MISMATCH 2..2", h, err)
		}
		if accepted.Load() != before {
			t.Error("Accept saw a call of RPC version 3")
		}
	})
}

// TestDefaultAccept: libtirpc's answers to each credential flavour, and
// the verifier an accepted call's replies carry.
func TestDefaultAccept(t *testing.T) {
	sys := authSys(1000)
	verf := xdr.OpaqueAuth{Flavor: xdr.AuthSys, Body: sys.Body}
	gss := func(body ...byte) xdr.OpaqueAuth { return xdr.OpaqueAuth{Flavor: xdr.RPCSecGSS, Body: body} }
	tests := []struct {
		name       string
		cred, verf xdr.OpaqueAuth
		want       xdr.AuthStat
		wantVerf   xdr.OpaqueAuth
		wantUID    int // of c.AuthSys; -1 when it is nil
	}{
		{name: "AUTH_NONE", want: xdr.AuthOK, wantUID: -1},
		{name: "AUTH_SYS", cred: sys, want: xdr.AuthOK, wantUID: 1000},
		{name: "AUTH_SYS hands its verifier back", cred: sys, verf: verf, want: xdr.AuthOK, wantVerf: verf, wantUID: 1000},
		{name: "AUTH_SYS with an empty verifier body", cred: sys, verf: xdr.OpaqueAuth{Flavor: xdr.AuthSys}, want: xdr.AuthOK, wantUID: 1000},
		{name: "AUTH_SYS empty", cred: xdr.OpaqueAuth{Flavor: xdr.AuthSys}, want: xdr.AuthBadCred, wantUID: -1},
		{name: "AUTH_SHORT", cred: xdr.OpaqueAuth{Flavor: xdr.AuthShort}, want: xdr.AuthRejectedCred, wantUID: -1},
		{name: "AUTH_DH", cred: xdr.OpaqueAuth{Flavor: xdr.AuthDH, Body: make([]byte, 8)}, want: xdr.AuthFailed, wantUID: -1},
		{name: "RPCSEC_GSS empty", cred: gss(), want: xdr.AuthBadCred, wantUID: -1},
		{name: "RPCSEC_GSS version 2", cred: gss(0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0), want: xdr.AuthBadCred, wantUID: -1},
		{name: "RPCSEC_GSS init", cred: gss(0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0), want: xdr.AuthFailed, wantUID: -1},
		{name: "RPCSEC_GSS continue init", cred: gss(0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0), want: xdr.AuthFailed, wantUID: -1},
		{name: "RPCSEC_GSS data without a context", cred: gss(0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 4, 'a', 'b', 'c', 'd'), want: 13, wantUID: -1},
		{name: "unknown flavour", cred: xdr.OpaqueAuth{Flavor: 99}, want: xdr.AuthRejectedCred, wantUID: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &oncrpc.Call{CallHeader: xdr.CallHeader{RPCVers: 2, Cred: tc.cred, Verf: tc.verf}}
			verf, why := oncrpc.DefaultAccept(c)
			if why != tc.want {
				t.Errorf("auth_stat %v, want %v", why, tc.want)
			}
			if verf.Flavor != tc.wantVerf.Flavor || string(verf.Body) != string(tc.wantVerf.Body) {
				t.Errorf("verifier %+v, want %+v", verf, tc.wantVerf)
			}
			switch {
			case tc.wantUID < 0 && c.AuthSys != nil:
				t.Errorf("AuthSys %+v, want none", c.AuthSys)
			case tc.wantUID >= 0 && (c.AuthSys == nil || c.AuthSys.UID != uint32(tc.wantUID)):
				t.Errorf("AuthSys %+v, want uid %d", c.AuthSys, tc.wantUID)
			}
		})
	}
}
