package rpcbind

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"maps"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/netid/ifaddrs"
	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/netlimit/netlimittest"
	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

// The service remote calls reach in these tests, and its procedures.
const (
	progSvc     = 0x2fff0a01
	procDouble  = 1 // uint32 → twice it
	procFail    = 2 // SYSTEM_ERR
	procBig     = 3 // uint32 n → n bytes of results
	procCred    = 4 // → the credential it was called with: flavour, uid, gid, machine name, stamp
	procSilent  = 5 // never answered
	procSlowish = 6 // answered 200 ms later, from another goroutine
)

// testService is a UDP service on loopback that counts its calls.
type testService struct {
	port  uint16
	calls [7]atomic.Int32
}

// startService starts a testService answering progSvc, and also the
// programs alsoAs with the same procedures, all version 1.
func startService(t *testing.T, network string, alsoAs ...uint32) *testService {
	t.Helper()
	host := "127.0.0.1"
	if network == "udp6" {
		host = "::1"
	}
	pc, err := net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(host)})
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	s := &testService{port: uint16(pc.LocalAddr().(*net.UDPAddr).Port)}
	var mux oncrpc.ServeMux
	handle := func(proc uint32, f oncrpc.HandlerFunc) {
		for _, prog := range append([]uint32{progSvc}, alsoAs...) {
			mux.Handle(prog, 1, proc, oncrpc.HandlerFunc(func(w oncrpc.ReplyWriter, c *oncrpc.Call) {
				s.calls[proc].Add(1)
				f(w, c)
			}))
		}
	}
	handle(0, func(w oncrpc.ReplyWriter, c *oncrpc.Call) { _ = oncrpc.Reply(w, c, nil) })
	handle(procDouble, func(w oncrpc.ReplyWriter, c *oncrpc.Call) {
		var v uint32
		if !c.DecodeArgs(func(d *xdr.Decoder) { v = d.Uint32() }) {
			_ = oncrpc.ReplyError(w, c, xdr.GarbageArgs)
			return
		}
		_ = oncrpc.ReplyUint32(w, c, 2*v)
	})
	handle(procFail, func(w oncrpc.ReplyWriter, c *oncrpc.Call) { _ = oncrpc.ReplyError(w, c, xdr.SystemErr) })
	handle(procBig, func(w oncrpc.ReplyWriter, c *oncrpc.Call) {
		var n uint32
		c.DecodeArgs(func(d *xdr.Decoder) { n = d.Uint32() })
		_ = oncrpc.Reply(w, c, func(e *xdr.Encoder) { e.FixedOpaque(bytes.Repeat([]byte{0xa5}, int(n))) })
	})
	handle(procCred, func(w oncrpc.ReplyWriter, c *oncrpc.Call) {
		_ = oncrpc.Reply(w, c, func(e *xdr.Encoder) {
			e.Uint32(uint32(c.Cred.Flavor))
			if c.AuthSys != nil {
				e.Uint32(c.AuthSys.UID)
				e.Uint32(c.AuthSys.GID)
				e.String(c.AuthSys.MachineName)
				e.Uint32(c.AuthSys.Stamp)
			}
		})
	})
	handle(procSilent, func(oncrpc.ReplyWriter, *oncrpc.Call) {})
	handle(procSlowish, func(w oncrpc.ReplyWriter, c *oncrpc.Call) {
		d, _ := oncrpc.Defer(w)
		xid := c.XID
		time.AfterFunc(200*time.Millisecond, func() { _ = d.WriteReply(xdr.Accepted(xid, xdr.Success), nil) })
	})
	srv := &oncrpc.Server{Handler: &mux}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.ServeUDP(ctx, pc, network); close(done) }()
	t.Cleanup(func() { cancel(); <-done; _ = pc.Close() })
	return s
}

// uaddr is the service's universal address on host.
func (s *testService) uaddr(host string) string {
	return host + "." + strconv.Itoa(int(s.port>>8)) + "." + strconv.Itoa(int(s.port&0xff))
}

// startForwarding serves a portmapper that forwards with cfg, with the
// service registered on udp at its wildcard address.
func startForwarding(t *testing.T, cfg ForwardConfig, svc *testService) (*testServer, *Forwarder) {
	t.Helper()
	fw, err := OpenForwarder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fw.Close(); err != nil {
			t.Errorf("closing the forwarder: %v", err)
		}
	})
	s := startPortmapper(t, func(pm *Portmapper) { pm.Forwarder = fw })
	if _, err := s.reg.Set(registry.Caller{Transport: registry.Internal},
		registry.Entry{Prog: progSvc, Vers: 1, Netid: netid.UDP, Addr: svc.uaddr("0.0.0.0")}); err != nil {
		t.Fatal(err)
	}
	return s, fw
}

// rmtArgs encodes the arguments of a remote call with a uint32 argument.
func rmtArgs(prog, vers, proc uint32, arg ...uint32) []byte {
	var args xdr.Encoder
	for _, a := range arg {
		args.Uint32(a)
	}
	var e xdr.Encoder
	(&xdr.CallArgs{Prog: prog, Vers: vers, Proc: proc, Args: args.Bytes()}).Encode(&e)
	return e.Bytes()
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// TestForwardRemoteCalls: with a Forwarder, each remote-call procedure
// reaches the service and relays its answer with the caller's xid, from
// the socket the caller called, in the shape of its version; errors are
// INDIRECT's alone to hear about.
func TestForwardRemoteCalls(t *testing.T) {
	svc := startService(t, "udp4")
	s, _ := startForwarding(t, ForwardConfig{}, svc)
	const xid = 0x01020304
	none := xdr.OpaqueAuth{}
	here := svc.uaddr("127.0.0.1")
	v3result := func(results ...uint32) []byte {
		var e xdr.Encoder
		var r []byte
		for _, v := range results {
			r = binary.BigEndian.AppendUint32(r, v)
		}
		(&xdr.RmtCallResult{Addr: here, Results: r}).Encode(&e)
		return append(reply(xdr.Accepted(xid, xdr.Success)), e.Bytes()...)
	}
	sys := authSys(xdr.AuthSysParms{Stamp: 7, MachineName: "caller", UID: 1000, GID: 100, GIDs: []uint32{100, 27}})
	tests := []struct {
		name       string
		vers, proc uint32
		cred, verf xdr.OpaqueAuth
		args       []byte
		want       []byte // nil: no answer
	}{
		{"v2 CALLIT", 2, 5, none, none, rmtArgs(progSvc, 1, procDouble, 21), reply(xdr.Accepted(xid, xdr.Success), uint32(svc.port), 4, 42)},
		{"v3 CALLIT", 3, 5, none, none, rmtArgs(progSvc, 1, procDouble, 21), v3result(42)},
		{"v4 BCAST", 4, 5, none, none, rmtArgs(progSvc, 1, procDouble, 21), v3result(42)},
		{"v4 INDIRECT", 4, 10, none, none, rmtArgs(progSvc, 1, procDouble, 21), v3result(42)},
		{"NULL through v3", 3, 5, none, none, rmtArgs(progSvc, 1, 0), v3result()},
		{"an AUTH_SYS caller's verifier is not echoed", 3, 5, sys, xdr.OpaqueAuth{Flavor: xdr.AuthSys, Body: []byte{9, 9, 9, 9}}, rmtArgs(progSvc, 1, procDouble, 1), v3result(2)},
		{"CALLIT to a failing procedure", 2, 5, none, none, rmtArgs(progSvc, 1, procFail), nil},
		{"BCAST to a failing procedure", 4, 5, none, none, rmtArgs(progSvc, 1, procFail), nil},
		{"INDIRECT to a failing procedure", 4, 10, none, none, rmtArgs(progSvc, 1, procFail), reply(xdr.Accepted(xid, xdr.SystemErr))},
		{"INDIRECT to a procedure the service lacks", 4, 10, none, none, rmtArgs(progSvc, 1, 99), reply(xdr.Accepted(xid, xdr.SystemErr))},
		{"CALLIT to an unregistered program", 3, 5, none, none, rmtArgs(progSvc+1, 1, 0), nil},
		{"INDIRECT to an unregistered program", 4, 10, none, none, rmtArgs(progSvc+1, 1, 0), reply(xdr.Accepted(xid, xdr.ProgUnavail))},
		{"CALLIT to another version", 3, 5, none, none, rmtArgs(progSvc, 2, 0), nil},
		{"INDIRECT to another version", 4, 10, none, none, rmtArgs(progSvc, 2, 0), reply(mismatch(xid, 1, 1))},
		{"CALLIT to a blocked program", 2, 5, none, none, rmtArgs(progNFS, 3, 1), reply(xdr.Denied(xid, xdr.AuthTooWeak))},
		{"INDIRECT to the portmapper's SET", 4, 10, none, none, rmtArgs(xdr.PmapProg, 2, 1), reply(xdr.Denied(xid, xdr.AuthTooWeak))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := call(xid, 2, xdr.PmapProg, tc.vers, tc.proc, tc.cred, tc.verf, tc.args)
			wait := 5 * time.Second
			if tc.want == nil {
				wait = 300 * time.Millisecond
			}
			// exchangeUDPFrom's socket is connected to the portmapper's
			// address: an answer from anywhere else is not seen.
			got := exchangeUDPFrom(t, netip.Addr{}, s.udp, req, wait)
			if !bytes.Equal(got, tc.want) {
				t.Errorf("answer\n got %x\nwant %x", got, tc.want)
			}
		})
	}
	t.Run("over TCP nothing is forwarded or answered", func(t *testing.T) {
		before := svc.calls[procDouble].Load()
		for _, vp := range [][2]uint32{{2, 5}, {3, 5}, {4, 5}, {4, 10}} {
			req := call(xid, 2, xdr.PmapProg, vp[0], vp[1], none, none, rmtArgs(progSvc, 1, procDouble, 1))
			if got, closed := exchangeTCP(t, s.tcp, xdr.AppendRecord(nil, req, 0)); got != nil || closed {
				t.Errorf("v%d proc %d over TCP: answer %x, closed %v; want silence on an open connection", vp[0], vp[1], got, closed)
			}
		}
		if n := svc.calls[procDouble].Load() - before; n != 0 {
			t.Errorf("the service was called %d times", n)
		}
	})
	t.Run("the credential is passed on", func(t *testing.T) {
		got := exchangeUDPFrom(t, netip.Addr{}, s.udp, call(xid, 2, xdr.PmapProg, 3, 5, sys, none, rmtArgs(progSvc, 1, procCred)), 5*time.Second)
		_, results, err := xdr.DecodeReply(got)
		if err != nil {
			t.Fatal(err)
		}
		var r xdr.RmtCallResult
		d := xdr.NewDecoder(results)
		r.Decode(d)
		cd := xdr.NewDecoder(r.Results)
		flavor, uid, gid, machine := cd.Uint32(), cd.Uint32(), cd.Uint32(), cd.String("", 255)
		if err := d.Err(); err != nil || flavor != uint32(xdr.AuthSys) || uid != 1000 || gid != 100 || machine != "caller" {
			t.Errorf("the service saw flavour %d, uid %d, gid %d, machine %q (%v); want the caller's AUTH_SYS", flavor, uid, gid, machine, err)
		}
		got = exchangeUDPFrom(t, netip.Addr{}, s.udp, call(xid, 2, xdr.PmapProg, 3, 5, none, none, rmtArgs(progSvc, 1, procCred)), 5*time.Second)
		if want := v3result(uint32(xdr.AuthNone)); !bytes.Equal(got, want) {
			t.Errorf("AUTH_NONE caller: answer %x, want %x", got, want)
		}
	})
}

// TestForwardDeny: a program of ForwardConfig.Deny is refused as rpcbind
// refuses those of check_callit (AUTH_TOOWEAK, the service never called,
// nothing counted in GETSTAT), any procedure but NULL; rpcbind's own list
// is refused whatever Deny says.
func TestForwardDeny(t *testing.T) {
	svc := startService(t, "udp4", progKeyserv, progAutofs)
	// Deny lists, in the order of the calls' refused columns: portmapd's
	// default, the default with one more program, none (rpcbind's
	// behaviour).
	denyLists := []struct {
		name string
		deny []uint32
	}{
		{"default", DefaultForwardDeny()},
		{"an extra program", append(DefaultForwardDeny(), progSvc)},
		{"none", nil},
	}
	calls := []struct {
		name       string
		vers, proc uint32 // the portmapper's
		prog, call uint32 // what the call calls
		refused    [3]bool
	}{
		{"INDIRECT to keyserv", 4, 10, progKeyserv, procDouble, [3]bool{true, true, false}},
		{"v2 CALLIT to autofs", 2, 5, progAutofs, procDouble, [3]bool{true, true, false}},
		{"v3 CALLIT to keyserv's NULL", 3, 5, progKeyserv, 0, [3]bool{false, false, false}},
		{"BCAST to autofs's NULL", 4, 5, progAutofs, 0, [3]bool{false, false, false}},
		{"INDIRECT to another program", 4, 10, progSvc, procDouble, [3]bool{false, true, false}},
		{"INDIRECT to another program's NULL", 4, 10, progSvc, 0, [3]bool{false, false, false}},
		{"INDIRECT to NFS (rpcbind's list)", 4, 10, progNFS, 1, [3]bool{true, true, true}},
		{"v2 CALLIT to the portmapper's SET (rpcbind's list)", 2, 5, xdr.PmapProg, xdr.PmapProcSet, [3]bool{true, true, true}},
	}
	for i, list := range denyLists {
		t.Run(list.name, func(t *testing.T) {
			s, _ := startForwarding(t, ForwardConfig{Deny: list.deny}, svc)
			for _, prog := range []uint32{progKeyserv, progAutofs} {
				if _, err := s.reg.Set(registry.Caller{Transport: registry.Internal},
					registry.Entry{Prog: prog, Vers: 1, Netid: netid.UDP, Addr: svc.uaddr("0.0.0.0")}); err != nil {
					t.Fatal(err)
				}
			}
			counted := map[[2]uint32]bool{}
			for xid, c := range calls {
				t.Run(c.name, func(t *testing.T) {
					before := svc.calls[c.call].Load()
					req := call(uint32(xid), 2, xdr.PmapProg, c.vers, c.proc, xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, rmtArgs(c.prog, 1, c.call, 21))
					got := exchangeUDPFrom(t, netip.Addr{}, s.udp, req, 5*time.Second)
					if c.refused[i] {
						if want := reply(xdr.Denied(uint32(xid), xdr.AuthTooWeak)); !bytes.Equal(got, want) {
							t.Errorf("answer %x, want AUTH_TOOWEAK %x", got, want)
						}
						if n := svc.calls[c.call].Load() - before; n != 0 {
							t.Errorf("refused, but the service was called %d times", n)
						}
						return
					}
					if h, _, err := xdr.DecodeReply(got); err != nil || h.XID != uint32(xid) || h.Stat != xdr.MsgAccepted || h.Accept != xdr.Success {
						t.Errorf("answer %x (%+v, %v), want the service's SUCCESS", got, h, err)
					}
					if n := svc.calls[c.call].Load() - before; n != 1 {
						t.Errorf("the service was called %d times, want once", n)
					}
					counted[[2]uint32{c.prog, c.call}] = true
				})
			}
			st, err := s.client(t, "tcp", "").GetStat(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			rows := map[[2]uint32]bool{}
			for _, v := range st {
				for _, r := range v.RmtInfo {
					rows[[2]uint32{r.Prog, r.Proc}] = true
				}
			}
			if !maps.Equal(rows, counted) {
				t.Errorf("GETSTAT counts remote calls to (program, procedure) %v, want those forwarded only, %v", rows, counted)
			}
		})
	}
}

// TestForwardCountsRemoteCalls: forwarded calls are counted in GETSTAT's
// remote-call lists as rpcbind counts them, once per call received.
func TestForwardCountsRemoteCalls(t *testing.T) {
	svc := startService(t, "udp4")
	s, _ := startForwarding(t, ForwardConfig{}, svc)
	for i, vp := range [][2]uint32{{2, 5}, {3, 5}, {4, 10}, {4, 10}} {
		req := call(uint32(i+1), 2, xdr.PmapProg, vp[0], vp[1], xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, rmtArgs(progSvc, 1, 0))
		if exchangeUDPFrom(t, netip.Addr{}, s.udp, req, 5*time.Second) == nil {
			t.Fatalf("call %d not answered", i)
		}
	}
	st, err := s.client(t, "tcp", "").GetStat(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	// rpcbind starts each row's indirect count at one.
	want := [3][]xdr.RmtCallStat{
		{{Prog: progSvc, Vers: 1, Proc: 0, Success: 1, Indirect: 1, Netid: "udp"}},
		{{Prog: progSvc, Vers: 1, Proc: 0, Success: 1, Indirect: 1, Netid: "udp"}},
		{{Prog: progSvc, Vers: 1, Proc: 0, Success: 2, Indirect: 2, Netid: "udp"}},
	}
	for i := range want {
		if len(st[i].RmtInfo) != 1 || st[i].RmtInfo[0] != want[i][0] {
			t.Errorf("version %d remote calls %+v, want %+v", i+2, st[i].RmtInfo, want[i])
		}
	}
}

// TestForwardDuplicates: a retransmission of a call whose answer is still
// awaited is not forwarded again; once answered, the same xid is.
func TestForwardDuplicates(t *testing.T) {
	svc := startService(t, "udp4")
	s, fw := startForwarding(t, ForwardConfig{}, svc)
	conn, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(s.udp))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	silent := call(0x51, 2, xdr.PmapProg, 3, 5, xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, rmtArgs(progSvc, 1, procSilent))
	for range 3 {
		if _, err := conn.Write(silent); err != nil {
			t.Fatal(err)
		}
	}
	netlimittest.WaitFor(t, "the first call reaches the service", func() bool { return svc.calls[procSilent].Load() >= 1 })
	// The calls are handled in order on one socket; a NULL sent after
	// them and answered shows that all three were handled.
	if exchangeUDPFrom(t, netip.Addr{}, s.udp, call(0x52, 2, xdr.PmapProg, 2, 0, xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, nil), 5*time.Second) == nil {
		t.Fatal("NULL not answered")
	}
	time.Sleep(100 * time.Millisecond)
	if n := svc.calls[procSilent].Load(); n != 1 {
		t.Errorf("three sends of one call reached the service %d times, want 1", n)
	}
	if n := fw.Pending(); n != 1 {
		t.Errorf("%d calls waiting, want 1", n)
	}
	// The same xid again, for a procedure that answers: a call of its own.
	slow := call(0x53, 2, xdr.PmapProg, 3, 5, xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, rmtArgs(progSvc, 1, procSlowish))
	for range 2 {
		if _, err := conn.Write(slow); err != nil {
			t.Fatal(err)
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1024)
	n, err := conn.Read(buf)
	if err != nil || n < 4 || binary.BigEndian.Uint32(buf) != 0x53 {
		t.Fatalf("answer % x, %v; want one to xid 0x53", buf[:n], err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := conn.Read(buf); err == nil {
		t.Errorf("a second answer: % x", buf[:n])
	}
	if n := svc.calls[procSlowish].Load(); n != 1 {
		t.Errorf("a call sent twice while awaited reached the service %d times", n)
	}
	// Answered, the call is no longer awaited: sent again, it is forwarded.
	if got := exchangeUDPFrom(t, netip.Addr{}, s.udp, slow, 5*time.Second); got == nil {
		t.Error("the call sent again after its answer was not answered")
	}
	if n := svc.calls[procSlowish].Load(); n != 2 {
		t.Errorf("the service saw %d calls, want 2", n)
	}
}

// TestForwardPendingBound: no more calls wait for their answers than the
// bound, however many arrive; an answer after the timeout is dropped.
func TestForwardPendingBound(t *testing.T) {
	svc := startService(t, "udp4")
	s, fw := startForwarding(t, ForwardConfig{MaxPending: 4}, svc)
	for i := range 20 {
		req := call(uint32(0x100+i), 2, xdr.PmapProg, 3, 5, xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, rmtArgs(progSvc, 1, procSilent))
		exchangeUDPFrom(t, netip.Addr{}, s.udp, req, time.Millisecond)
	}
	netlimittest.WaitFor(t, "every call reaches the service", func() bool { return svc.calls[procSilent].Load() == 20 })
	if n := fw.Pending(); n != 4 {
		t.Errorf("%d calls waiting, want the bound, 4", n)
	}
	// The newest calls hold the places: an answer still comes through.
	if got := exchangeUDPFrom(t, netip.Addr{}, s.udp, call(0x200, 2, xdr.PmapProg, 3, 5, xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, rmtArgs(progSvc, 1, 0)), 5*time.Second); got == nil {
		t.Error("a call with every place taken was not answered")
	}

	svc = startService(t, "udp4")
	s, fw = startForwarding(t, ForwardConfig{Timeout: time.Nanosecond}, svc)
	if got := exchangeUDPFrom(t, netip.Addr{}, s.udp, call(0x300, 2, xdr.PmapProg, 3, 5, xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, rmtArgs(progSvc, 1, procSlowish)), time.Second); got != nil {
		t.Errorf("an answer after the timeout was relayed: %x", got)
	}
	if svc.calls[procSlowish].Load() != 1 {
		t.Error("the call was not forwarded")
	}
	netlimittest.WaitFor(t, "the late answer is dropped", func() bool { return fw.Pending() == 0 })
}

// TestForwardSourceRate: a remote source may have only its burst of calls
// forwarded at once; loopback callers are not limited, and the source's
// calls that are dropped are not counted against anyone else.
func TestForwardSourceRate(t *testing.T) {
	remote := netlimittest.RemoteSource(t)
	svc := startService(t, "udp4")
	s, _ := startForwarding(t, ForwardConfig{Rate: netlimit.NewSourceBuckets(0.001, 3)}, svc)
	null := func(xid uint32) []byte {
		return call(xid, 2, xdr.PmapProg, 3, 5, xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, rmtArgs(progSvc, 1, 0))
	}
	answered := 0
	for i := range 10 {
		wait := 5 * time.Second
		if i >= 3 {
			wait = 100 * time.Millisecond
		}
		if exchangeUDPFrom(t, remote, s.udp, null(uint32(0x400+i)), wait) != nil {
			answered++
		}
	}
	if answered != 3 {
		t.Errorf("%d of 10 calls from one remote source answered, want its burst, 3", answered)
	}
	if n := svc.calls[0].Load(); n != 3 {
		t.Errorf("the service saw %d calls, want 3", n)
	}
	for i := range 10 {
		if exchangeUDPFrom(t, netip.Addr{}, s.udp, null(uint32(0x500+i)), 5*time.Second) == nil {
			t.Fatalf("loopback call %d not answered", i)
		}
	}
}

// TestForwardReplyRatio: an answer much larger than its call reaches a
// loopback caller, not a remote one: CALLIT hears nothing, INDIRECT
// SYSTEM_ERR.
func TestForwardReplyRatio(t *testing.T) {
	remote := netlimittest.RemoteSource(t)
	svc := startService(t, "udp4")
	s, _ := startForwarding(t, ForwardConfig{ReplyRatio: 2}, svc)
	const xid = 0x600
	big := func(proc, n uint32) []byte {
		return call(xid, 2, xdr.PmapProg, 4, proc, xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, rmtArgs(progSvc, 1, procBig, n))
	}
	// The call is 60 bytes; its answer carries the uaddr (20 bytes with
	// its length), the results' length and n bytes after a 24-byte header.
	if got := exchangeUDPFrom(t, remote, s.udp, big(5, 64), 5*time.Second); got == nil {
		t.Error("an answer within the ratio was dropped")
	}
	if got := exchangeUDPFrom(t, remote, s.udp, big(5, 1000), 300*time.Millisecond); got != nil {
		t.Errorf("a 1000-byte answer to a remote BCAST was relayed (%d bytes)", len(got))
	}
	if got, want := exchangeUDPFrom(t, remote, s.udp, big(10, 1000), 5*time.Second), reply(xdr.Accepted(xid, xdr.SystemErr)); !bytes.Equal(got, want) {
		t.Errorf("INDIRECT with a 1000-byte answer: %x, want %x", got, want)
	}
	if got := exchangeUDPFrom(t, netip.Addr{}, s.udp, big(5, 1000), 5*time.Second); len(got) < 1000 {
		t.Errorf("a loopback caller got %d bytes, want the whole answer", len(got))
	}
}

// TestForwardTarget: remote calls go to this host only: the loopback
// address for a service on the wildcard or loopback address, the address
// itself for another of this host's, and nowhere for another host's.
func TestForwardTarget(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		id    netid.ID
		uaddr string
		want  string // "" for none
	}{
		{"udp", "0.0.0.0.4.1", "127.0.0.1:1025"},
		{"udp", "127.0.0.2.4.1", "127.0.0.2:1025"},
		{"udp", "192.0.2.10.4.1", "192.0.2.10:1025"},
		{"udp", "192.0.2.11.4.1", ""},
		{"udp", "198.51.100.1.0.53", ""},
		{"udp", "0.0.0.0.0.0", ""},
		{"udp", "garbage", ""},
		{"udp6", "::.4.1", "[::1]:1025"},
		{"udp6", "::1.4.1", "[::1]:1025"},
		{"udp6", "2001:db8::10.4.1", "[2001:db8::10]:1025"},
		{"udp6", "2001:db8::11.4.1", ""},
		{"udp6", "fe80::10.4.1", ""},
		{"udp6", "::ffff:127.0.0.1.4.1", ""},
		{"udp6", "ff02::202.4.1", ""},
		{"local", "/run/x.sock", ""},
	}
	for _, tc := range tests {
		got, ok := h.pm.forwardTarget(tc.id, tc.uaddr)
		if s := ""; ok {
			s = got.String()
			if s != tc.want {
				t.Errorf("%s %s: target %s, want %q", tc.id, tc.uaddr, s, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("%s %s: no target, want %s", tc.id, tc.uaddr, tc.want)
		}
	}
}

// TestForwardNotToAnotherHost: a service registered at another host's
// address is never called; CALLIT hears nothing, INDIRECT SYSTEM_ERR.
func TestForwardNotToAnotherHost(t *testing.T) {
	elsewhere, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer elsewhere.Close()
	svc := startService(t, "udp4")
	s, _ := startForwarding(t, ForwardConfig{}, svc)
	// 192.0.2.1 is no address of this host (TEST-NET-1).
	if _, err := s.reg.Set(registry.Caller{Transport: registry.Internal},
		registry.Entry{Prog: progSvc + 1, Vers: 1, Netid: netid.UDP, Addr: "192.0.2.1.0.53"}); err != nil {
		t.Fatal(err)
	}
	const xid = 0x700
	for _, tc := range []struct {
		proc uint32
		want []byte
	}{{5, nil}, {10, reply(xdr.Accepted(xid, xdr.SystemErr))}} {
		got := exchangeUDPFrom(t, netip.Addr{}, s.udp, call(xid, 2, xdr.PmapProg, 4, tc.proc, xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, rmtArgs(progSvc+1, 1, 0)), time.Second)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("proc %d: %x, want %x", tc.proc, got, tc.want)
		}
	}
}

// TestForwardUDP6: over udp6 a call is forwarded from the IPv6 socket and
// answered with an IPv6 universal address.
func TestForwardUDP6(t *testing.T) {
	svc := startService(t, "udp6")
	fw, err := OpenForwarder(ForwardConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	reg := registry.New(registry.Options{})
	pm := &Portmapper{Registry: reg, Forwarder: fw, Interfaces: func(netip.Addr) ([]ifaddrs.Addr, error) { return loopbackIfaces, nil }}
	var mux oncrpc.ServeMux
	pm.Register(&mux)
	if _, err := reg.Set(registry.Caller{Transport: registry.Internal}, registry.Entry{Prog: progSvc, Vers: 1, Netid: netid.UDP6, Addr: svc.uaddr("::")}); err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no udp6 loopback: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = (&oncrpc.Server{Handler: &mux}).ServeUDP(ctx, pc, "udp6") }()
	defer func() { cancel(); wg.Wait(); pc.Close() }()
	conn, err := net.DialUDP("udp6", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(call(0x800, 2, xdr.PmapProg, 3, 5, xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, rmtArgs(progSvc, 1, procDouble, 4))); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1024)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	_, results, err := xdr.DecodeReply(buf[:n])
	var r xdr.RmtCallResult
	if err == nil {
		d := xdr.NewDecoder(results)
		r.Decode(d)
		err = d.Finish()
	}
	if err != nil || r.Addr != svc.uaddr("::1") || !bytes.Equal(r.Results, u32(8)) {
		t.Errorf("answer %+v, %v; want %s with 8", r, err, svc.uaddr("::1"))
	}
	// Version 2 answers with a port, which it has only for IPv4.
	if _, err := conn.Write(call(0x801, 2, xdr.PmapProg, 2, 5, xdr.OpaqueAuth{}, xdr.OpaqueAuth{}, rmtArgs(progSvc, 1, procDouble, 4))); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := conn.Read(buf); err == nil {
		t.Errorf("a version 2 CALLIT over udp6 was answered: %x", buf[:n])
	}
	if n := svc.calls[procDouble].Load(); n != 1 {
		t.Errorf("the service was called %d times, want once", n)
	}
}

// TestClientRemoteCalls: the client's remote calls, through a forwarding
// portmapper, return what each version answers.
func TestClientRemoteCalls(t *testing.T) {
	svc := startService(t, "udp4")
	s, _ := startForwarding(t, ForwardConfig{}, svc)
	c := s.client(t, "udp", "")
	double := xdr.CallArgs{Prog: progSvc, Vers: 1, Proc: procDouble, Args: u32(5)}
	r2, err := c.PmapCallit(ctxT(t), double)
	if err != nil || r2.Port != uint32(svc.port) || !bytes.Equal(r2.Res, u32(10)) {
		t.Errorf("PmapCallit: %+v, %v; want port %d, results 10", r2, err, svc.port)
	}
	for _, vers := range []uint32{3, 4} {
		r, err := c.RpcbCallit(ctxT(t), vers, double)
		if err != nil || r.Addr != svc.uaddr("127.0.0.1") || !bytes.Equal(r.Results, u32(10)) {
			t.Errorf("RpcbCallit v%d: %+v, %v", vers, r, err)
		}
	}
	if _, err := c.RpcbCallit(ctxT(t), 2, double); err == nil {
		t.Error("RpcbCallit accepted version 2")
	}
	r, err := c.Indirect(ctxT(t), double)
	if err != nil || r.Addr != svc.uaddr("127.0.0.1") || !bytes.Equal(r.Results, u32(10)) {
		t.Errorf("Indirect: %+v, %v", r, err)
	}
	_, err = c.Indirect(ctxT(t), xdr.CallArgs{Prog: progSvc + 1, Vers: 1})
	var re *xdr.ReplyError
	if !errors.As(err, &re) || re.Header.Accept != xdr.ProgUnavail {
		t.Errorf("Indirect to an unregistered program: %v, want PROG_UNAVAIL", err)
	}
}

// TestBroadcast: a broadcast on loopback's broadcast address reaches a
// forwarding portmapper, whose answers to the version 3 and the version 2
// call of each round name the service; a callback that has had enough
// ends the broadcast, and without an interface to broadcast on there is
// none.
func TestBroadcast(t *testing.T) {
	svc := startService(t, "udp4")
	s, _ := startForwarding(t, ForwardConfig{}, svc)
	lo := func() ([]ifaddrs.Addr, error) {
		return []ifaddrs.Addr{{Prefix: netip.MustParsePrefix("127.0.0.1/8"), Index: 1, Name: "lo", Up: true, Loopback: true,
			Broadcast: true, BroadcastAddr: netip.MustParseAddr("127.255.255.255")}}, nil
	}
	cfg := BroadcastConfig{Port: s.udp.Port(), Wait: 200 * time.Millisecond, MaxWait: 400 * time.Millisecond, Interfaces: lo,
		Cred: authSys(xdr.AuthSysParms{MachineName: "bcast", UID: 1000, GID: 1000})}
	double := xdr.CallArgs{Prog: progSvc, Vers: 1, Proc: procDouble, Args: u32(8)}
	var got []BroadcastReply
	if err := Broadcast(ctxT(t), cfg, double, func(r BroadcastReply) bool { got = append(got, r); return false }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Errorf("%d answers in two rounds, want 4 (versions 3 and 2 each round): %+v", len(got), got)
	}
	// The address of a version 3 answer is the portmapper's merge for
	// the caller; a version 2 answer's is the portmapper's own.
	for _, r := range got {
		if r.Netid != "udp" || r.Service.Port() != svc.port || r.From != s.udp || !bytes.Equal(r.Results, u32(16)) {
			t.Errorf("answer %+v, want the service's port %d with 16, from %v", r, svc.port, s.udp)
		}
	}
	n := 0
	if err := Broadcast(ctxT(t), cfg, double, func(BroadcastReply) bool { n++; return true }); err != nil || n != 1 {
		t.Errorf("a callback that is done after one answer: %d answers, %v", n, err)
	}
	cfg.Interfaces = func() ([]ifaddrs.Addr, error) {
		return []ifaddrs.Addr{{Prefix: netip.MustParsePrefix("127.0.0.1/8"), Index: 1, Name: "lo", Up: true, Loopback: true}}, nil
	}
	if err := Broadcast(ctxT(t), cfg, double, func(BroadcastReply) bool { return false }); !errors.Is(err, ErrNoBroadcast) {
		t.Errorf("no interface that can broadcast: %v, want ErrNoBroadcast", err)
	}
}
