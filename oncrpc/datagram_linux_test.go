package oncrpc_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/peer"
	"github.com/portmapd/portmapd/xdr"
)

// serveWildcardUDP serves srv on a UDP socket bound to the IPv4 wildcard
// address, as the daemon's are, until the test ends, and returns its port.
func serveWildcardUDP(t *testing.T, srv *oncrpc.Server) uint16 {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeUDP(ctx, pc, "udp") }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serving: %v", err)
		}
		_ = pc.Close()
	})
	return uint16(pc.LocalAddr().(*net.UDPAddr).Port)
}

// broadcastSocket is a loopback UDP socket allowed to send to broadcast
// addresses.
func broadcastSocket(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
	}); err != nil || serr != nil {
		t.Fatalf("SO_BROADCAST: %v %v", err, serr)
	}
	return c
}

func nullCall(xid uint32) []byte {
	var e xdr.Encoder
	h := xdr.CallHeader{XID: xid, RPCVers: xdr.RPCVersion, Prog: testProg, Vers: 1, Proc: 0}
	h.Encode(&e)
	return e.Bytes()
}

// TestReplyToBroadcast: a call sent to a broadcast address is answered
// from the address of the interface that received it, as rpcbind
// answers it; a reply cannot leave from a broadcast address. The call's
// Peer still says where it was sent.
func TestReplyToBroadcast(t *testing.T) {
	locals := make(chan netip.AddrPort, 1)
	mux := testMux()
	mux.HandleFunc(testProg, 1, 0, func(w oncrpc.ReplyWriter, c *oncrpc.Call) {
		locals <- c.Peer.Local
		_ = oncrpc.Reply(w, c, nil)
	})
	port := serveWildcardUDP(t, &oncrpc.Server{Handler: mux})
	c := broadcastSocket(t)
	bcast := netip.AddrPortFrom(netip.MustParseAddr("127.255.255.255"), port)
	if _, err := c.WriteToUDPAddrPort(nullCall(0x0b0b0b0b), bcast); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no reply to a call to %v: %v", bcast, err)
	}
	if want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port); peer.Unmap(from) != want {
		t.Errorf("reply from %v, want %v", from, want)
	}
	if n < 4 || binary.BigEndian.Uint32(buf) != 0x0b0b0b0b {
		t.Errorf("reply % x is not to the call", buf[:n])
	}
	if got := <-locals; got != bcast {
		t.Errorf("the call's local address is %v, want %v", got, bcast)
	}
}

// TestDefer: a datagram call answered after its handler returned, from
// another goroutine, while the serving loop goes on with other calls: the
// reply leaves from the address the call arrived at, with the call's xid
// and an AUTH_NONE verifier, once. On a stream nothing can be deferred.
func TestDefer(t *testing.T) {
	type deferred struct {
		w oncrpc.ReplyWriter
		c *oncrpc.Call
	}
	later := make(chan deferred, 1)
	streamDeferred := make(chan bool, 1)
	mux := testMux()
	const procLater = 7
	mux.HandleFunc(testProg, 1, procLater, func(w oncrpc.ReplyWriter, c *oncrpc.Call) {
		d, ok := oncrpc.Defer(w)
		if c.Peer.Transport != "udp" {
			streamDeferred <- ok
			_ = oncrpc.Reply(w, c, nil)
			return
		}
		if !ok {
			t.Error("a datagram call cannot be deferred")
			return
		}
		cc := *c
		later <- deferred{d, &cc}
	})
	obs := &servedCalls{}
	srv := &oncrpc.Server{Handler: mux, Observer: obs}
	port := serveWildcardUDP(t, srv)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	server := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	var e xdr.Encoder
	// An AUTH_SYS credential with a verifier, which replies written in
	// the handler's turn would echo.
	h := xdr.CallHeader{XID: 0x0d0d0d0d, RPCVers: xdr.RPCVersion, Prog: testProg, Vers: 1, Proc: procLater,
		Cred: authSys(0), Verf: xdr.OpaqueAuth{Flavor: xdr.AuthSys, Body: []byte{1, 2, 3, 4}}}
	h.Encode(&e)
	if _, err := c.WriteToUDPAddrPort(e.Bytes(), server); err != nil {
		t.Fatal(err)
	}
	var d deferred
	select {
	case d = <-later:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never ran")
	}
	// The loop serves the next call while the first waits for its answer.
	if _, err := c.WriteToUDPAddrPort(nullCall(0x0e0e0e0e), server); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil || n < 4 || binary.BigEndian.Uint32(buf) != 0x0e0e0e0e {
		t.Fatalf("the call after a deferred one was not answered first: % x, %v", buf[:n], err)
	}
	if err := oncrpc.ReplyUint32(d.w, d.c, 42); err != nil {
		t.Fatalf("deferred reply: %v", err)
	}
	if err := oncrpc.ReplyUint32(d.w, d.c, 43); err != oncrpc.ErrReplied {
		t.Errorf("second deferred reply: %v, want ErrReplied", err)
	}
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no deferred reply: %v", err)
	}
	if peer.Unmap(from) != server {
		t.Errorf("deferred reply from %v, want %v", from, server)
	}
	rh, res, err := xdr.DecodeReply(buf[:n])
	if err != nil || rh.XID != 0x0d0d0d0d || rh.Verf.Flavor != xdr.AuthNone || len(rh.Verf.Body) != 0 || len(res) != 4 || binary.BigEndian.Uint32(res) != 42 {
		t.Errorf("deferred reply %+v, results % x, %v; want xid 0d0d0d0d, AUTH_NONE verifier, 42", rh, res, err)
	}
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _, err := c.ReadFromUDPAddrPort(buf); err == nil {
		t.Errorf("a second reply arrived: % x", buf[:n])
	}
	// The Observer counts the deferred call once, as deferred, and the
	// call answered in its turn as answered.
	if got, want := obs.list(), []string{"proc 7 deferred", "proc 0 replied"}; !slices.Equal(got, want) {
		t.Errorf("observed %q, want %q", got, want)
	}

	ep := serve(t, &oncrpc.Server{Handler: mux})
	if err := ep.dial(t, "tcp").Call(ctxT(t), testProg, 1, procLater, nil, nil); err != nil {
		t.Fatal(err)
	}
	if <-streamDeferred {
		t.Error("a call on a stream was deferred")
	}
}

// servedCalls is an oncrpc.Observer that lists the calls served.
type servedCalls struct {
	mu    sync.Mutex
	calls []string
}

func (o *servedCalls) CallServed(c *oncrpc.Call, reply *xdr.ReplyHeader, deferred bool) {
	how := "silent"
	switch {
	case deferred:
		how = "deferred"
	case reply != nil:
		how = "replied"
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, fmt.Sprintf("proc %d %s", c.Proc, how))
}

func (o *servedCalls) Malformed(string)                {}
func (o *servedCalls) LimitHit(string, string, string) {}

func (o *servedCalls) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.calls)
}
