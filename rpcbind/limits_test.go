package rpcbind

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/internal/netns"
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/netlimit/netlimittest"
	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

// dialFrom opens a TCP connection to the server from src (loopback when
// invalid), sending nothing.
func (s *testServer) dialFrom(t *testing.T, src netip.Addr) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if src.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	conn, err := d.Dial("tcp4", s.tcp.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// nullOn makes a NULL call on conn and reports its error.
func nullOn(conn net.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return NewClient(conn).Null(ctx, xdr.PmapProg, xdr.PmapVers)
}

// closedByServer reports whether the server closed conn.
func closedByServer(conn net.Conn) bool { return netlimittest.ClosedByPeer(conn, conn) }

// holdBusy opens n connections from src (loopback when invalid), each in
// the middle of a NULL call, and waits until the server, whose network
// connections are charged to b, holds them and no idle one. It returns a
// function that completes the calls and checks that they are answered.
func (s *testServer) holdBusy(t *testing.T, b *netlimit.Budget, src netip.Addr, n int) (finish func()) {
	t.Helper()
	rec := xdr.AppendRecord(nil, call(77, 2, xdr.PmapProg, 2, 0, xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, nil), 0)
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = s.dialFrom(t, src)
		if _, err := conns[i].Write(rec[:10]); err != nil {
			t.Fatal(err)
		}
	}
	netlimittest.WaitFor(t, fmt.Sprintf("%d connections are in the middle of a call", n), func() bool { return b.Used() >= n && b.Idle() == 0 })
	return func() {
		t.Helper()
		for i, c := range conns {
			if _, err := c.Write(rec[10:]); err != nil {
				t.Fatalf("busy connection %d: %v", i, err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := xdr.NewRecordReader(c, 1<<16).Next()
			if err != nil || !bytes.Equal(got, reply(xdr.Accepted(77, xdr.Success))) {
				t.Fatalf("busy connection %d's call: %x, %v", i, got, err)
			}
		}
	}
}

// TestConnectionLimits fills a TCP listener's limits and checks who makes
// room for a new connection: the connection idle longest, of the source
// when the source is at its cap, of the listener when the listener is,
// never one in the middle of a call.
func TestConnectionLimits(t *testing.T) {
	loopback := netip.Addr{}
	tests := []struct {
		name                   string
		maxConns, maxPerSource int
		remote                 bool
		run                    func(t *testing.T, s *testServer, b *netlimit.Budget, remote netip.Addr)
	}{
		{
			name: "listener full of idle connections: the oldest makes room", maxConns: 4,
			run: func(t *testing.T, s *testServer, b *netlimit.Budget, _ netip.Addr) {
				idle := make([]net.Conn, 4)
				for i := range idle {
					idle[i] = s.dialFrom(t, loopback)
				}
				netlimittest.WaitFor(t, "4 idle connections are admitted", func() bool { return b.Idle() == 4 })
				if err := nullOn(s.dialFrom(t, loopback)); err != nil {
					t.Fatalf("new connection not served with the listener full of idle ones: %v", err)
				}
				if !closedByServer(idle[0]) {
					t.Error("the oldest idle connection was not evicted")
				}
				for i, c := range idle[1:] {
					if err := nullOn(c); err != nil {
						t.Errorf("idle connection %d evicted too: %v", i+1, err)
					}
				}
			},
		},
		{
			name: "listener full of busy connections: the new one is refused", maxConns: 2,
			run: func(t *testing.T, s *testServer, b *netlimit.Budget, _ netip.Addr) {
				finish := s.holdBusy(t, b, loopback, 2)
				if !closedByServer(s.dialFrom(t, loopback)) {
					t.Error("a connection past the cap was served while every other was busy")
				}
				finish()
			},
		},
		{
			name: "source at its cap: its own oldest idle connection makes room", maxConns: 100, maxPerSource: 2, remote: true,
			run: func(t *testing.T, s *testServer, b *netlimit.Budget, remote netip.Addr) {
				first, second := s.dialFrom(t, remote), s.dialFrom(t, remote)
				other := s.dialFrom(t, loopback)
				netlimittest.WaitFor(t, "3 idle connections are admitted", func() bool { return b.Idle() == 3 })
				if err := nullOn(s.dialFrom(t, remote)); err != nil {
					t.Fatalf("new connection from a source at its cap: %v", err)
				}
				if !closedByServer(first) {
					t.Error("the source's oldest idle connection was not evicted")
				}
				if err := nullOn(second); err != nil {
					t.Errorf("the source's newer idle connection was evicted: %v", err)
				}
				if err := nullOn(other); err != nil {
					t.Errorf("another source's connection was evicted: %v", err)
				}
			},
		},
		{
			name: "source at its cap, all busy: refused, other sources served", maxConns: 100, maxPerSource: 2, remote: true,
			run: func(t *testing.T, s *testServer, b *netlimit.Budget, remote netip.Addr) {
				finish := s.holdBusy(t, b, remote, 2)
				if !closedByServer(s.dialFrom(t, remote)) {
					t.Error("a third connection from a source capped at 2 was served")
				}
				if err := nullOn(s.dialFrom(t, loopback)); err != nil {
					t.Errorf("loopback refused because another source is at its cap: %v", err)
				}
				finish()
			},
		},
		{
			name: "loopback has no per-source cap", maxConns: 100, maxPerSource: 2,
			run: func(t *testing.T, s *testServer, b *netlimit.Budget, _ netip.Addr) {
				conns := make([]net.Conn, 5)
				for i := range conns {
					conns[i] = s.dialFrom(t, loopback)
				}
				netlimittest.WaitFor(t, "5 idle connections are admitted", func() bool { return b.Idle() == 5 })
				for i, c := range conns {
					if err := nullOn(c); err != nil {
						t.Errorf("loopback connection %d: %v", i, err)
					}
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
			b := netlimit.NewBudget(0)
			s := startServer(t, func(srv *oncrpc.Server) {
				srv.MaxConns, srv.MaxConnsPerSource, srv.Budget = tc.maxConns, tc.maxPerSource, b
			})
			tc.run(t, s, b, remote)
		})
	}
}

// TestDescriptorBudget: TCP connections share the budget, and make room in
// it as at a listener's cap; the local socket's connections are not
// charged to it, so they are served when network peers hold all of it.
func TestDescriptorBudget(t *testing.T) {
	b := netlimit.NewBudget(2)
	s := startServer(t, func(srv *oncrpc.Server) { srv.Budget = b })
	path := filepath.Join(t.TempDir(), "rpcbind.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- (&oncrpc.Server{Handler: s.mux, Logger: slog.New(slog.DiscardHandler), Budget: b}).ServeStream(ctx, ln, string(netid.Local))
	}()
	t.Cleanup(func() { cancel(); <-done })

	t.Run("idle network connections make room", func(t *testing.T) {
		first, second := s.dialFrom(t, netip.Addr{}), s.dialFrom(t, netip.Addr{})
		netlimittest.WaitFor(t, "2 idle connections hold the budget", func() bool { return b.Idle() == 2 })
		if err := nullOn(s.dialFrom(t, netip.Addr{})); err != nil {
			t.Fatalf("new connection with the budget held by idle ones: %v", err)
		}
		if !closedByServer(first) {
			t.Error("the oldest idle connection was not evicted")
		}
		if err := nullOn(second); err != nil {
			t.Errorf("newer idle connection evicted: %v", err)
		}
	})
	t.Run("local socket served with the budget held by busy connections", func(t *testing.T) {
		// The first subtest's connections, closed as it ended, leave
		// the budget as the server sees them go: until then they would
		// be evicted for, or counted among, this subtest's.
		netlimittest.WaitFor(t, "the budget is free", func() bool { return b.Used() == 0 })
		finish := s.holdBusy(t, b, netip.Addr{}, 2)
		if !closedByServer(s.dialFrom(t, netip.Addr{})) {
			t.Error("a network connection past the budget was served")
		}
		for i := range 5 {
			conn, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := nullOn(conn); err != nil {
				t.Fatalf("local connection %d: %v", i, err)
			}
		}
		finish()
	})
}

// TestConnectionTimeouts: a connection that has not delivered a whole
// record is closed after the record timeout, long before the idle timeout
// that applies between calls.
func TestConnectionTimeouts(t *testing.T) {
	null := xdr.AppendRecord(nil, call(5, 2, xdr.PmapProg, 2, 0, xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, nil), 0)
	tests := []struct {
		name         string
		record, idle time.Duration
		send         [][]byte // written one after another, each answered if whole
		wantClosed   bool
	}{
		{"nothing sent", 100 * time.Millisecond, time.Hour, nil, true},
		{"a byte, then nothing", 100 * time.Millisecond, time.Hour, [][]byte{null[:1]}, true},
		{"half a record after a call", 100 * time.Millisecond, time.Hour, [][]byte{null, null[:20]}, true},
		{"idle after a call is kept past the record timeout", 100 * time.Millisecond, time.Hour, [][]byte{null}, false},
		{"idle after a call is closed at the idle timeout", time.Hour, 100 * time.Millisecond, [][]byte{null}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, func(srv *oncrpc.Server) { srv.RecordTimeout, srv.IdleTimeout = tc.record, tc.idle })
			conn := s.dialFrom(t, netip.Addr{})
			rr := xdr.NewRecordReader(conn, 1<<16)
			for _, b := range tc.send {
				if _, err := conn.Write(b); err != nil {
					t.Fatal(err)
				}
				if len(b) == len(null) {
					_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
					if _, err := rr.Next(); err != nil {
						t.Fatalf("call not answered: %v", err)
					}
				}
			}
			if !tc.wantClosed {
				// Many record timeouts later, the connection still serves.
				time.Sleep(10 * tc.record)
				if err := nullOn(conn); err != nil {
					t.Fatalf("connection idle between calls closed before the idle timeout: %v", err)
				}
				return
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Fatalf("read: %v, want EOF from the server's close", err)
			}
		})
	}
}

// TestLimitLogIsThrottled: a flood of refused connections writes one line
// at once and one with the count when the interval ends (here: when the
// listener closes), not a line per connection.
func TestLimitLogIsThrottled(t *testing.T) {
	var log netns.Output
	b := netlimit.NewBudget(0)
	s := startServer(t, func(srv *oncrpc.Server) {
		srv.MaxConns, srv.Budget = 1, b
		srv.Logger = slog.New(slog.NewTextHandler(&log, nil))
	})
	finish := s.holdBusy(t, b, netip.Addr{}, 1)
	const flood = 30
	for i := range flood {
		if !closedByServer(s.dialFrom(t, netip.Addr{})) {
			t.Fatalf("connection %d past the cap was served", i)
		}
	}
	finish()
	s.stop()
	lines := strings.Count(log.String(), "connection limits enforced")
	if lines < 1 || lines > 2 {
		t.Errorf("%d log lines about %d refusals, want 1 or 2:\n%s", lines, flood+1, log.String())
	}
	if !strings.Contains(log.String(), "refused_total=") {
		t.Errorf("log does not count the refusals:\n%s", log.String())
	}
}

// TestRecordTooLargeLogIsThrottled: connections that each announce a
// record over the limit are each reset, but the log says so in one line
// at once and one with the count when the interval ends (here: when the
// listener closes), not a line per connection, which a remote host could
// make at will.
func TestRecordTooLargeLogIsThrottled(t *testing.T) {
	var log netns.Output
	s := startServer(t, func(srv *oncrpc.Server) { srv.Logger = slog.New(slog.NewTextHandler(&log, nil)) })
	const flood = 30
	for i := range flood {
		conn := s.dialFrom(t, netip.Addr{})
		if _, err := conn.Write([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}); err != nil {
			t.Fatal(err)
		}
		if !closedByServer(conn) {
			t.Fatalf("connection %d announcing a 2 GiB record was not closed", i)
		}
	}
	s.stop()
	lines := strings.Count(log.String(), "record too large")
	if lines < 1 || lines > 2 {
		t.Errorf("%d log lines about %d connections reset, want 1 or 2:\n%s", lines, flood, log.String())
	}
	counted := 0
	for _, m := range regexp.MustCompile(`record too large.* reset=(\d+)`).FindAllStringSubmatch(log.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		counted += n
	}
	if counted != flood {
		t.Errorf("the log counts %d connections reset, want %d:\n%s", counted, flood, log.String())
	}
}

// exchangeUDPFrom sends req from src (loopback when invalid) and returns
// the reply, or nil when none comes within wait.
func exchangeUDPFrom(t *testing.T, src netip.Addr, to netip.AddrPort, req []byte, wait time.Duration) []byte {
	t.Helper()
	var laddr *net.UDPAddr
	if src.IsValid() {
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	conn, err := net.DialUDP("udp4", laddr, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(req); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65536)
	n, err := conn.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// TestUDPReplyLimit: a remote source's replies may exceed its calls by the
// bucket's burst, then are withheld; replies no larger than their calls,
// and everything to loopback, are always sent.
func TestUDPReplyLimit(t *testing.T) {
	remote := netlimittest.RemoteSource(t)
	dump := call(9, 2, xdr.PmapProg, 2, xdr.PmapProcDump, xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, nil)
	getport := call(10, 2, xdr.PmapProg, 2, xdr.PmapProcGetport, xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, []byte{0, 1, 0x86, 0xa0, 0, 0, 0, 2, 0, 0, 0, 17, 0, 0, 0, 0})
	s := startServer(t)
	// The fresh DUMP reply (6 entries) is 148 bytes for a 40-byte call: 108
	// bytes of excess. A burst of 250 pays for two, and a rate of one byte
	// a second refills nothing the test can notice.
	replyLen := len(exchangeUDPFrom(t, netip.Addr{}, s.udp, dump, 5*time.Second))
	if replyLen != 148 {
		t.Fatalf("DUMP reply is %d bytes, the test expects 148", replyLen)
	}
	s.stop()
	s = startServer(t, func(srv *oncrpc.Server) { srv.ReplyLimit = netlimit.NewReplyBuckets(1, 250) })
	for i := range 2 {
		if exchangeUDPFrom(t, remote, s.udp, dump, 5*time.Second) == nil {
			t.Fatalf("DUMP %d within the burst withheld", i+1)
		}
	}
	if got := exchangeUDPFrom(t, remote, s.udp, dump, 300*time.Millisecond); got != nil {
		t.Errorf("DUMP past the burst answered with %d bytes", len(got))
	}
	if exchangeUDPFrom(t, remote, s.udp, getport, 5*time.Second) == nil {
		t.Error("GETPORT, whose reply is smaller than its call, withheld")
	}
	for i := range 5 {
		if exchangeUDPFrom(t, netip.Addr{}, s.udp, dump, 5*time.Second) == nil {
			t.Fatalf("loopback DUMP %d withheld", i+1)
		}
	}
}

// TestGetstatListsOverUDP: GETSTAT's per-program lists, which grow with
// every lookup, go over UDP only to loopback; over TCP everyone gets them.
func TestGetstatListsOverUDP(t *testing.T) {
	remote := netlimittest.RemoteSource(t)
	s := startServer(t)
	c := s.client(t, "tcp", "")
	if _, err := c.GetAddr(ctxT(t), xdr.RpcbVers, xdr.RPCB{Prog: xdr.PmapProg, Vers: 2, Netid: "udp"}); err != nil {
		t.Fatal(err)
	}
	const v3 = xdr.RpcbVers - xdr.PmapVers
	// The lookup is counted once it has been answered.
	netlimittest.WaitFor(t, "the lookup is counted", func() bool {
		st, err := c.GetStat(ctxT(t))
		return err == nil && len(st[v3].AddrInfo) > 0
	})
	stats := func(network string, from netip.Addr) [xdr.StatVersions]xdr.VersionStat {
		t.Helper()
		d := net.Dialer{}
		target := s.udp
		if network == "tcp" {
			target = s.tcp
		}
		if from.IsValid() {
			if network == "tcp" {
				d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, 0))
			} else {
				d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0))
			}
		}
		conn, err := d.Dial(network+"4", target.String())
		if err != nil {
			t.Fatal(err)
		}
		cl := NewClient(conn)
		defer cl.Close()
		st, err := cl.GetStat(ctxT(t))
		if err != nil {
			t.Fatalf("GETSTAT over %s: %v", network, err)
		}
		return st
	}
	tests := []struct {
		name      string
		network   string
		from      netip.Addr
		wantLists bool
	}{
		{"udp from loopback", "udp", netip.Addr{}, true},
		{"udp from a remote source", "udp", remote, false},
		{"tcp from a remote source", "tcp", remote, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := stats(tc.network, tc.from)
			if got := len(st[v3].AddrInfo) > 0; got != tc.wantLists {
				t.Errorf("v3 address lookups listed: %v, want %v (%+v)", got, tc.wantLists, st[v3].AddrInfo)
			}
			if st[v3].Info[xdr.RpcbProcGetaddr] == 0 {
				t.Error("the procedure counters are missing")
			}
		})
	}
}

// TestUnreadRepliesCutAfterRecordTimeout: a peer that sends calls but
// does not read the replies holds its connection busy, out of eviction's
// reach, until the record timeout (not the idle timeout) cuts it.
func TestUnreadRepliesCutAfterRecordTimeout(t *testing.T) {
	b := netlimit.NewBudget(0)
	s := startServer(t, func(srv *oncrpc.Server) {
		srv.Budget, srv.RecordTimeout, srv.IdleTimeout = b, 200*time.Millisecond, time.Hour
	})
	// DUMP replies of about 12 KB; a thousand of them fill any socket
	// buffers.
	for i := range 600 {
		if _, err := s.reg.SetMapping(registry.Caller{Transport: registry.Internal},
			xdr.Mapping{Prog: 0x2fff2000 + uint32(i), Vers: 1, Prot: netid.ProtoUDP, Port: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	conn := s.dialFrom(t, netip.Addr{})
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	var calls []byte
	for i := range 1000 {
		calls = xdr.AppendRecord(calls, call(uint32(i), 2, xdr.PmapProg, 2, xdr.PmapProcDump, xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, nil), 0)
	}
	go func() { _, _ = conn.Write(calls) }()
	netlimittest.WaitFor(t, "the server gives the connection up", func() bool { return b.Used() == 0 })
}
