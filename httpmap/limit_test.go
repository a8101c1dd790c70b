package httpmap

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/netlimit/netlimittest"
	"github.com/portmapd/portmapd/registry"
)

// keepAlive is a raw HTTP/1.1 connection that asks and then stays open,
// as a browser's or an attacker's keep-alive connection does.
type keepAlive struct {
	conn net.Conn
	br   *bufio.Reader
}

func dialKeepAlive(t *testing.T, network, addr string, src netip.Addr) *keepAlive {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if src.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	conn, err := d.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &keepAlive{conn: conn, br: bufio.NewReader(conn)}
}

// get asks for the listing and reads the whole answer, leaving the
// connection open; it returns the status or the error.
func (k *keepAlive) get() (int, error) {
	_ = k.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(k.conn, "GET /portmap HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// closedByServer reports whether the server closed the connection.
func (k *keepAlive) closedByServer() bool { return netlimittest.ClosedByPeer(k.conn, k.br) }

// limitedServer serves s on loopback TCP, on the divert listener fed by a
// second loopback TCP listener (as from port 111), and on a local socket.
type limitedServer struct {
	tcp, diverted, sock string
}

func startLimited(t *testing.T, cfg Config) *limitedServer {
	t.Helper()
	dir := t.TempDir()
	cfg.SocketPath = filepath.Join(dir, "portmapd.sock")
	s := testServer(t, registry.New(registry.Options{}), cfg)
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ul, err := ListenUnix(cfg.SocketPath, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	rpc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rpc.Close() })
	go func() {
		for {
			c, err := rpc.Accept()
			if err != nil {
				return
			}
			go s.Divert(c)
		}
	}()
	go s.Serve(tl)
	go s.Serve(ul)
	go s.Serve(s.DivertListener())
	return &limitedServer{tcp: tl.Addr().String(), diverted: rpc.Addr().String(), sock: cfg.SocketPath}
}

// TestHTTPConnectionLimits: keep-alive connections are capped in total,
// diverted ones included, and per source; at a cap the connection idle
// longest makes room; idle keep-alive connections are closed after the
// idle timeout.
func TestHTTPConnectionLimits(t *testing.T) {
	loopback := netip.Addr{}
	tests := []struct {
		name   string
		cfg    Config
		remote bool
		run    func(t *testing.T, ls *limitedServer, b *netlimit.Budget, remote netip.Addr)
	}{
		{
			name: "total cap over the HTTP port and diverted connections: the oldest idle makes room",
			cfg:  Config{Limits: netlimit.Limits{MaxConns: 4}},
			run: func(t *testing.T, ls *limitedServer, b *netlimit.Budget, _ netip.Addr) {
				var held []*keepAlive
				for i := range 4 {
					addr := ls.tcp
					if i%2 == 1 {
						addr = ls.diverted
					}
					k := dialKeepAlive(t, "tcp", addr, loopback)
					if code, err := k.get(); err != nil || code != 200 {
						t.Fatalf("connection %d: %d %v", i, code, err)
					}
					held = append(held, k)
					// The server marks a connection idle after its
					// reply is written, maybe after the client has
					// read it: wait, so that the connections go
					// idle in the order they were made.
					netlimittest.WaitFor(t, fmt.Sprintf("%d connections are idle", i+1), func() bool { return b.Idle() == i+1 })
				}
				if code, err := dialKeepAlive(t, "tcp", ls.diverted, loopback).get(); err != nil || code != 200 {
					t.Fatalf("new diverted connection with the cap held by idle ones: %d %v", code, err)
				}
				if !held[0].closedByServer() {
					t.Error("the oldest idle connection was not evicted")
				}
				for i, k := range held[1:] {
					if _, err := k.get(); err != nil {
						t.Errorf("newer idle connection %d evicted: %v", i+1, err)
					}
				}
			},
		},
		{
			name:   "per-source cap: the source's own oldest idle makes room",
			cfg:    Config{Limits: netlimit.Limits{MaxConns: 100, MaxConnsPerSource: 2}},
			remote: true,
			run: func(t *testing.T, ls *limitedServer, b *netlimit.Budget, remote netip.Addr) {
				var held []*keepAlive
				for i, from := range []netip.Addr{remote, remote, loopback} {
					k := dialKeepAlive(t, "tcp", ls.tcp, from)
					if _, err := k.get(); err != nil {
						t.Fatal(err)
					}
					held = append(held, k)
					// As above: idle in the order they were made.
					netlimittest.WaitFor(t, fmt.Sprintf("%d connections are idle", i+1), func() bool { return b.Idle() == i+1 })
				}
				first, second, other := held[0], held[1], held[2]
				if code, err := dialKeepAlive(t, "tcp", ls.tcp, remote).get(); err != nil || code != 200 {
					t.Fatalf("new connection from a source at its cap: %d %v", code, err)
				}
				if !first.closedByServer() {
					t.Error("the source's oldest idle connection was not evicted")
				}
				for _, k := range []*keepAlive{second, other} {
					if _, err := k.get(); err != nil {
						t.Errorf("connection evicted that should not be: %v", err)
					}
				}
			},
		},
		{
			name: "idle keep-alive connections time out",
			cfg:  Config{Limits: netlimit.Limits{IdleTimeout: 100 * time.Millisecond}},
			run: func(t *testing.T, ls *limitedServer, b *netlimit.Budget, _ netip.Addr) {
				k := dialKeepAlive(t, "tcp", ls.tcp, loopback)
				if _, err := k.get(); err != nil {
					t.Fatal(err)
				}
				if !k.closedByServer() {
					t.Error("idle keep-alive connection still open")
				}
				netlimittest.WaitFor(t, "its place is released", func() bool { return b.Used() == 0 })
			},
		},
		{
			name: "the local socket is not charged to the budget",
			cfg:  Config{Budget: netlimit.NewBudget(2)},
			run: func(t *testing.T, ls *limitedServer, b *netlimit.Budget, _ netip.Addr) {
				held := []*keepAlive{dialKeepAlive(t, "tcp", ls.tcp, loopback), dialKeepAlive(t, "tcp", ls.tcp, loopback)}
				for _, k := range held {
					if _, err := k.get(); err != nil {
						t.Fatal(err)
					}
				}
				for i := range 5 {
					if code, err := dialKeepAlive(t, "unix", ls.sock, loopback).get(); err != nil || code != 200 {
						t.Fatalf("local connection %d with the budget spent: %d %v", i, code, err)
					}
				}
				for i, k := range held {
					if _, err := k.get(); err != nil {
						t.Errorf("network connection %d evicted for a local one: %v", i, err)
					}
					// Idle again, in this order.
					netlimittest.WaitFor(t, "2 connections are idle", func() bool { return b.Idle() == 2 })
				}
				if code, err := dialKeepAlive(t, "tcp", ls.tcp, loopback).get(); err != nil || code != 200 {
					t.Fatalf("network connection with the budget held by idle ones: %d %v", code, err)
				}
				if !held[0].closedByServer() {
					t.Error("the oldest idle network connection did not make room in the budget")
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var remote netip.Addr
			if tc.remote {
				remote = netlimittest.RemoteSource(t)
			}
			if tc.cfg.Budget == nil {
				tc.cfg.Budget = netlimit.NewBudget(0)
			}
			tc.run(t, startLimited(t, tc.cfg), tc.cfg.Budget, remote)
		})
	}
}
