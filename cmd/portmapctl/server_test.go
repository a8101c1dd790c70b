package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

// A testServer is a real portmapd RPC server on loopback, UDP and TCP on
// the same ephemeral port, as port 111 is for both, on ::1 as well when the
// host has IPv6, and on a local socket.
type testServer struct {
	Registry *registry.Registry
	Port     uint16
	// Socket is the path of its local socket.
	Socket string
	// V6 reports whether it also serves [::1]:Port.
	V6 bool
}

// Addr is the value for --server.
func (s *testServer) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(int(s.Port))) }

// Flags point portmapctl at the server by port and socket, so that every
// host and netid reaches it.
func (s *testServer) Flags() []string {
	return []string{"--port", strconv.Itoa(int(s.Port)), "--socket", s.Socket}
}

type serverOptions struct {
	// denyAll makes every caller look remote, so SET and UNSET are
	// answered AUTH_TOOWEAK.
	denyAll bool
	// uid, when set, is the uid every local-socket caller has.
	uid *uint32
	// forward makes the portmapper forward remote calls.
	forward bool
}

// startServer serves the portmapper on 127.0.0.1 until the test ends.
func startServer(t *testing.T, opts serverOptions) *testServer {
	t.Helper()
	reg := registry.New(registry.Options{})
	var mux oncrpc.ServeMux
	pm := &rpcbind.Portmapper{Registry: reg}
	if opts.forward {
		fw, err := rpcbind.OpenForwarder(rpcbind.ForwardConfig{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = fw.Close() })
		pm.Forwarder = fw
	}
	pm.Register(&mux)
	var h oncrpc.Handler = &mux
	if opts.denyAll || opts.uid != nil {
		remote := netip.MustParseAddrPort("192.0.2.1:700")
		h = oncrpc.HandlerFunc(func(w oncrpc.ReplyWriter, c *oncrpc.Call) {
			if opts.denyAll {
				c.Peer.Addr = remote
			}
			if opts.uid != nil && c.Peer.Cred != nil {
				cred := *c.Peer.Cred
				cred.UID = *opts.uid
				c.Peer.Cred = &cred
			}
			mux.ServeRPC(w, c)
		})
	}
	s := serve(t, h)
	s.Registry = reg
	return s
}

// serve answers calls with h on every transport of a testServer until the
// test ends.
func serve(t *testing.T, h oncrpc.Handler) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv := &oncrpc.Server{Handler: h, Logger: slog.New(slog.DiscardHandler)}
	ln, udp := listenPair(t)
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	sock := filepath.Join(t.TempDir(), "rpcbind.sock")
	local, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	run := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	run(func() { _ = srv.ServeStream(ctx, ln, "tcp") })
	run(func() { _ = srv.ServeUDP(ctx, udp, "udp") })
	run(func() { _ = srv.ServeStream(ctx, local, "local") })
	var closers []io.Closer
	closers = append(closers, udp)
	v6 := false
	if ln6, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(int(port)))); err == nil {
		if udp6, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback, Port: int(port)}); err == nil {
			v6 = true
			run(func() { _ = srv.ServeStream(ctx, ln6, "tcp6") })
			run(func() { _ = srv.ServeUDP(ctx, udp6, "udp6") })
			closers = append(closers, udp6)
		} else {
			_ = ln6.Close()
		}
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		for _, c := range closers {
			_ = c.Close()
		}
	})
	return &testServer{Port: port, Socket: sock, V6: v6}
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
// (versions 4 and 3 on tcp6 and udp6, 4, 3 and 2 on tcp and udp, 4 and 3
// on local) at port and, for local, at socket.
func (s *testServer) addSelf(t *testing.T, port uint16, socket string) {
	t.Helper()
	p := &rpcbind.Portmapper{Registry: s.Registry}
	var eps []rpcbind.Endpoint
	for _, id := range []netid.ID{"tcp", "udp", "tcp6", "udp6"} {
		eps = append(eps, rpcbind.Endpoint{Netid: id, Addr: netid.WildcardUaddr(id, port)})
	}
	eps = append(eps, rpcbind.Endpoint{Netid: "local", Addr: socket})
	for _, e := range p.SelfEntries(eps) {
		if ok, err := s.Registry.Set(internal, e); !ok || err != nil {
			t.Fatalf("registering %+v: %v %v", e, ok, err)
		}
	}
}

// addMapping registers a v2 mapping as a superuser would.
func (s *testServer) addMapping(t *testing.T, m xdr.Mapping) {
	t.Helper()
	if ok, err := s.Registry.SetMapping(internal, m); !ok || err != nil {
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

// unset removes prog, vers on netid (every netid when "") as the superuser.
func (s *testServer) unset(t *testing.T, prog, vers uint32, id netid.ID) {
	t.Helper()
	if ok, err := s.Registry.Unset(internal, prog, vers, id); !ok || err != nil {
		t.Fatalf("unset %d %d %q: %v %v", prog, vers, id, ok, err)
	}
}

// refusedSocket returns the path of a local socket whose server is gone:
// connecting to it is refused, as to rpcbind's after rpcbind stops.
func refusedSocket(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rpcbind.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	_ = ln.Close()
	return path
}

// hasIPv6Loopback reports whether ::1 can be listened on.
func hasIPv6Loopback() bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

// startStatsReplay serves, on every transport, a portmapper whose v4
// GETSTAT answers the results record.sh's getstat.py saw just before an
// rpcinfo -m, with that rpcinfo's own GETSTAT call counted.
func startStatsReplay(t *testing.T, hexResults string) *testServer {
	t.Helper()
	b, err := hex.DecodeString(hexResults)
	if err != nil {
		t.Fatal(err)
	}
	var st [xdr.StatVersions]xdr.VersionStat
	d := xdr.NewDecoder(b)
	for i := range st {
		st[i].Decode(d)
	}
	if err := d.Err(); err != nil || d.Remaining() != 0 {
		t.Fatalf("recorded GETSTAT results: %v (%d bytes left)", err, d.Remaining())
	}
	st[2].Info[xdr.RpcbProcGetstat]++
	var mux oncrpc.ServeMux
	mux.HandleFunc(xdr.PmapProg, xdr.RpcbVers4, xdr.RpcbProcGetstat, func(w oncrpc.ReplyWriter, c *oncrpc.Call) {
		_ = oncrpc.Reply(w, c, func(e *xdr.Encoder) {
			for i := range st {
				st[i].Encode(e)
			}
		})
	})
	return serve(t, &mux)
}
