package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

// A testServer is a real portmapd RPC server on loopback, UDP and TCP on
// the same ephemeral port, as port 111 is for both.
type testServer struct {
	Registry *registry.Registry
	Port     uint16
}

// Addr is the value for --server.
func (s *testServer) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(int(s.Port))) }

type serverOptions struct {
	// denyAll makes every caller look remote, so SET and UNSET are
	// answered AUTH_TOOWEAK.
	denyAll bool
}

// startServer serves the portmapper on 127.0.0.1 until the test ends.
func startServer(t *testing.T, opts serverOptions) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	reg := registry.New(registry.Options{})
	var mux rpcbind.ServeMux
	(&rpcbind.Portmapper{Registry: reg}).Register(&mux)
	var h rpcbind.Handler = &mux
	if opts.denyAll {
		remote := netip.MustParseAddrPort("192.0.2.1:700")
		h = rpcbind.HandlerFunc(func(w rpcbind.ReplyWriter, c *rpcbind.Call) {
			c.Remote = remote
			mux.ServeRPC(w, c)
		})
	}
	srv := &rpcbind.Server{Handler: h}
	ln, udp := listenPair(t)
	done := make(chan struct{}, 2)
	go func() { _ = srv.ServeStream(ctx, ln, "tcp"); done <- struct{}{} }()
	go func() { _ = srv.ServeUDP(ctx, udp, "udp"); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
		_ = udp.Close()
	})
	return &testServer{Registry: reg, Port: uint16(ln.Addr().(*net.TCPAddr).Port)}
}

// listenPair binds TCP and UDP on one free port of 127.0.0.1.
func listenPair(t *testing.T) (net.Listener, *net.UDPConn) {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err == nil {
			return ln, udp
		}
		_ = ln.Close()
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatal(err)
		}
	}
	t.Fatal("no port free on both TCP and UDP")
	return nil, nil
}

// closedPort returns a port of 127.0.0.1 where nothing listens on TCP or
// UDP (at the time of the call).
func closedPort(t *testing.T) uint16 {
	t.Helper()
	ln, udp := listenPair(t)
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	_ = udp.Close()
	return uint16(port)
}

// startSilent listens on TCP and UDP and never answers.
func startSilent(t *testing.T) uint16 {
	t.Helper()
	ln, udp := listenPair(t)
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, _, err := udp.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	var conns []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		_ = udp.Close()
		<-accepted
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

var internal = registry.Caller{Transport: registry.Internal}

// addSelf registers the portmapper's own entries as rpcbind has them
// (tcp 4, 3, 2 then udp 4, 3, 2) at port.
func (s *testServer) addSelf(t *testing.T, port uint16) {
	t.Helper()
	p := &rpcbind.Portmapper{Registry: s.Registry}
	eps := []rpcbind.Endpoint{
		{Netid: "tcp", Addr: rpcbind.WildcardUaddr("tcp", port)},
		{Netid: "udp", Addr: rpcbind.WildcardUaddr("udp", port)},
	}
	for _, e := range p.SelfEntries(eps) {
		if ok, err := s.Registry.Set(internal, e); !ok || err != nil {
			t.Fatalf("registering %+v: %v %v", e, ok, err)
		}
	}
}

// addMapping registers a v2 mapping as a superuser would.
func (s *testServer) addMapping(t *testing.T, m xdr.Mapping) {
	t.Helper()
	if ok, err := s.Registry.SetMapping(internal, registry.Mapping(m)); !ok || err != nil {
		t.Fatalf("registering %+v: %v %v", m, ok, err)
	}
}

// result is what one run of portmapctl produced.
type result struct {
	Stdout, Stderr string
	Exit           int
}

// runCtl runs portmapctl's command tree in-process.
func runCtl(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, &out, &errb)
	return result{out.String(), errb.String(), code}
}
