package oncrpc_test

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
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
