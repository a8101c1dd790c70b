package peer_test

import (
	"net"
	"net/netip"
	"testing"

	"github.com/portmapd/portmapd/peer"
)

// TestFromConnIP: an IP connection's Peer carries both addresses, an IPv4
// client of an IPv6 socket as plain IPv4, and no credentials.
func TestFromConnIP(t *testing.T) {
	tests := []struct {
		name               string
		listen, listenAddr string // network and address to listen on
		dial               string // network to dial the listener's port with
		dialAddr           string
	}{
		{name: "IPv4", listen: "tcp4", listenAddr: "127.0.0.1:0", dial: "tcp4", dialAddr: "127.0.0.1"},
		{name: "IPv4 client of an IPv6 socket", listen: "tcp", listenAddr: "[::]:0", dial: "tcp4", dialAddr: "127.0.0.1"},
		{name: "IPv6", listen: "tcp6", listenAddr: "[::1]:0", dial: "tcp6", dialAddr: "::1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen(tc.listen, tc.listenAddr)
			if err != nil {
				t.Skipf("cannot listen on %s %s: %v", tc.listen, tc.listenAddr, err)
			}
			defer ln.Close()
			port := uint16(ln.Addr().(*net.TCPAddr).Port)
			client, err := net.Dial(tc.dial, netip.AddrPortFrom(netip.MustParseAddr(tc.dialAddr), port).String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			server, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer server.Close()
			p, err := peer.FromConn(server)
			if err != nil {
				t.Fatal(err)
			}
			want := peer.Peer{
				Transport: "tcp",
				Addr:      client.LocalAddr().(*net.TCPAddr).AddrPort(),
				Local:     netip.AddrPortFrom(netip.MustParseAddr(tc.dialAddr), port),
			}
			if p.Transport != want.Transport || p.Addr != want.Addr || p.Local != want.Local || p.Cred != nil {
				t.Errorf("peer %+v, want %+v", p, want)
			}
			if p.String() != want.Addr.String() {
				t.Errorf("String() = %q, want %q", p.String(), want.Addr.String())
			}
		})
	}
}

// TestFromConnPipe: a connection that is neither IP nor AF_UNIX tells
// nothing, and that is no error.
func TestFromConnPipe(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	p, err := peer.FromConn(a)
	if err != nil {
		t.Fatal(err)
	}
	if p.Transport != "pipe" || p.Addr.IsValid() || p.Local.IsValid() || p.Cred != nil {
		t.Errorf("peer of a pipe %+v", p)
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		p    peer.Peer
		want string
	}{
		{peer.Peer{Transport: "local", Cred: &peer.Cred{PID: 42, UID: 1000}}, "pid 42 uid 1000"},
		{peer.Peer{Transport: "local"}, "local"},
		{peer.Peer{Transport: "udp6", Addr: netip.MustParseAddrPort("[2001:db8::1]:111")}, "[2001:db8::1]:111"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.p.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAddrPort(t *testing.T) {
	tests := []struct {
		name string
		a    net.Addr
		want netip.AddrPort
	}{
		{"udp", &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 111}, netip.MustParseAddrPort("192.0.2.1:111")},
		{"mapped tcp", &net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 7}, netip.MustParseAddrPort("192.0.2.1:7")},
		{"tcp6", &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 7}, netip.MustParseAddrPort("[2001:db8::1]:7")},
		{"unix", &net.UnixAddr{Name: "/run/rpcbind.sock", Net: "unix"}, netip.AddrPort{}},
		{"nil", nil, netip.AddrPort{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := peer.AddrPort(tc.a); got != tc.want {
				t.Errorf("AddrPort(%v) = %v, want %v", tc.a, got, tc.want)
			}
		})
	}
}
