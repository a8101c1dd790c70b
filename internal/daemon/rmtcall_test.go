package daemon_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portmapd/portmapd/internal/netns"
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

// progEcho is a service that answers procedure 1 with its uint32
// argument, counting the calls by argument.
const progEcho = 0x2fff0b01

type echoService struct {
	mu    sync.Mutex
	calls map[uint32]int
	port  uint16
}

func (s *echoService) count(arg uint32) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[arg]
}

// startEcho serves the echo service on UDP 127.0.0.1 inside h and
// registers it on udp with the portmapper there.
func startEcho(t *testing.T, h *netns.Host) *echoService {
	t.Helper()
	pc, err := h.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoService{calls: map[uint32]int{}, port: uint16(pc.LocalAddr().(*net.UDPAddr).Port)}
	var mux oncrpc.ServeMux
	mux.HandleFunc(progEcho, 1, 1, func(w oncrpc.ReplyWriter, c *oncrpc.Call) {
		var v uint32
		c.DecodeArgs(func(d *xdr.Decoder) { v = d.Uint32() })
		s.mu.Lock()
		s.calls[v]++
		s.mu.Unlock()
		_ = oncrpc.ReplyUint32(w, c, v)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = (&oncrpc.Server{Handler: &mux}).ServeUDP(ctx, pc.(*net.UDPConn), "udp"); close(done) }()
	t.Cleanup(func() { cancel(); <-done; _ = pc.Close() })
	local, err := rpcbind.DialLocal(ctx, filepath.Join(h.Run, "rpcbind.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	r := xdr.RPCB{Prog: progEcho, Vers: 1, Netid: string(netid.UDP), Addr: netid.WildcardUaddr(netid.UDP, s.port)}
	if ok, err := local.RpcbSet(ctx, xdr.RpcbVers, r); err != nil || !ok {
		t.Fatalf("SET %+v: %v %v", r, ok, err)
	}
	return s
}

// udpClientFrom returns a portmapper client in h calling addr over UDP
// from src.
func udpClientFrom(t *testing.T, h *netns.Host, src, addr string) *rpcbind.Client {
	t.Helper()
	var conn *net.UDPConn
	if err := h.Do(func() error {
		var err error
		conn, err = net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(src+":0")), net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c := rpcbind.NewClient(conn)
	c.Retransmit = 200 * time.Millisecond
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Sizes of the flood of TestRemoteCallFlood: bounded in count and time.
const (
	rmtFloodCalls = 2000
	rmtFloodFor   = 20 * time.Second
	rmtRate       = 4
	rmtBurst      = 16
)

// TestRemoteCallFlood: a flood of CALLIT from one source, on the loopback
// interface of a host of its own, is throttled to its source's rate: the
// service sees the burst and the rate's worth of it, while another source's
// remote calls and loopback's ordinary and remote calls are all served.
func TestRemoteCallFlood(t *testing.T) {
	h := netns.NewHost(t, "rmtf")
	// Addresses on lo that are not loopback addresses: callers limited as
	// remote ones, whose datagrams never leave the host.
	const flooder, other = "10.77.0.1", "10.77.0.2"
	h.AddAddr("lo", flooder+"/32")
	h.AddAddr("lo", other+"/32")
	p := h.Start(h.Command(portmapdBin(t), "-f", "-r", "--http", "off",
		"--rmtcall-rate", fmt.Sprint(rmtRate), "--rmtcall-burst", fmt.Sprint(rmtBurst)))
	waitRPC(t, h, p, "127.0.0.1:111")
	svc := startEcho(t, h)

	const floodArg, otherArg, loopArg = 1, 2, 3
	echo := func(arg uint32) xdr.CallArgs {
		return xdr.CallArgs{Prog: progEcho, Vers: 1, Proc: 1, Args: binary.BigEndian.AppendUint32(nil, arg)}
	}
	start := time.Now()
	floodDone := make(chan int, 1)
	go func() {
		var conn *net.UDPConn
		_ = h.Do(func() error {
			var err error
			conn, err = net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(flooder+":0")), net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:111")))
			return err
		})
		if conn == nil {
			floodDone <- -1
			return
		}
		defer conn.Close()
		var args xdr.Encoder
		a := echo(floodArg)
		a.Encode(&args)
		sent := 0
		for i := range rmtFloodCalls {
			if time.Since(start) > rmtFloodFor {
				break
			}
			var e xdr.Encoder
			(&xdr.CallHeader{XID: 0x70000000 + uint32(i), RPCVers: xdr.RPCVersion, Prog: xdr.PmapProg, Vers: xdr.PmapVers, Proc: xdr.PmapProcCallit}).Encode(&e)
			if _, err := conn.Write(append(e.Bytes(), args.Bytes()...)); err == nil {
				sent++
			}
		}
		floodDone <- sent
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	otherC := udpClientFrom(t, h, other, "127.0.0.1:111")
	loopC := udpClientFrom(t, h, "127.0.0.1", "127.0.0.1:111")
	for i := range 10 {
		if r, err := otherC.PmapCallit(ctx, echo(otherArg)); err != nil || r.Port != uint32(svc.port) {
			t.Errorf("remote call %d from another source during the flood: %+v, %v", i, r, err)
		}
		if _, err := loopC.RpcbCallit(ctx, xdr.RpcbVers, echo(loopArg)); err != nil {
			t.Errorf("loopback remote call %d during the flood: %v", i, err)
		}
		if port, err := loopC.GetPort(ctx, xdr.PmapProg, xdr.PmapVers, netid.ProtoUDP); err != nil || port != 111 {
			t.Errorf("GETPORT %d during the flood: %d, %v", i, port, err)
		}
	}
	sent := <-floodDone
	if sent <= 0 {
		t.Fatal("the flood could not be sent")
	}
	// Wait until the flood's last calls are handled: the service's count
	// stops changing.
	last, stable := -1, time.Now()
	for time.Since(stable) < 500*time.Millisecond {
		if n := svc.count(floodArg); n != last {
			last, stable = n, time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start).Seconds()
	bound := rmtBurst + int(rmtRate*elapsed) + 1
	t.Logf("%d remote calls from one source in %.1fs: %d forwarded (bound %d)", sent, elapsed, last, bound)
	if last == 0 || last > bound {
		t.Errorf("%d of %d flooding calls forwarded in %.1fs, want at least 1 and at most the burst and the rate's worth, %d", last, sent, elapsed, bound)
	}
	if n := svc.count(otherArg); n < 10 {
		t.Errorf("the other source's calls reached the service %d times, want 10", n)
	}
	if !p.Stop(hostTimeout) {
		t.Fatalf("portmapd ignored SIGTERM:\n%s", p.Output())
	}
	if n := strings.Count(p.Output(), "remote calls not forwarded"); n == 0 || n > 5 {
		t.Errorf("the log has %d lines about the dropped calls, want a few:\n%s", n, p.Output())
	}
}

// memberOf reports whether the interface dev of h is in the multicast
// group ff02::202 (as /proc/net/igmp6 spells it).
func memberOf(t *testing.T, h *netns.Host, dev string) bool {
	t.Helper()
	out, err := h.Command("cat", "/proc/net/igmp6").Output()
	if err != nil {
		t.Fatalf("/proc/net/igmp6: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[1] == dev && f[2] == "ff020000000000000000000000000202" {
			return true
		}
	}
	return false
}

// TestRemoteCallsMulticast: with -r, the udp6 socket joins ff02::202 on
// the interfaces up at start and on those that come later, and a udp6
// broadcast CALLIT from another host is answered with the address of the
// link it came over; without -r nothing joins.
func TestRemoteCallsMulticast(t *testing.T) {
	for _, rmt := range []bool{false, true} {
		t.Run(fmt.Sprintf("remote calls %v", rmt), func(t *testing.T) {
			srv, cli := netns.NewHost(t, "mcs"), netns.NewHost(t, "mcc")
			first := netns.Connect(t, srv, cli)
			srv.AddAddr(first.A, "fe80::2/64")
			cli.AddAddr(first.B, "fe80::1/64")
			args := []string{portmapdBin(t), "-f", "--http", "off"}
			if rmt {
				args = append(args, "-r")
			}
			p := srv.Start(srv.Command(args...))
			waitRPC(t, srv, p, "127.0.0.1:111")
			if got := memberOf(t, srv, first.A); got != rmt {
				t.Fatalf("member of ff02::202 on a link up at start: %v, want %v", got, rmt)
			}
			later := netns.Connect(t, srv, cli)
			if !rmt {
				time.Sleep(200 * time.Millisecond)
				if memberOf(t, srv, later.A) {
					t.Error("without -r, a member on a link that came later")
				}
				return
			}
			waitFor(t, "membership on a link that came later", func() bool { return memberOf(t, srv, later.A) })

			var conn *net.UDPConn
			if err := cli.Do(func() error {
				var err error
				conn, err = net.ListenUDP("udp6", &net.UDPAddr{IP: net.ParseIP("fe80::1"), Zone: first.B})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var e xdr.Encoder
			(&xdr.CallHeader{XID: 0x0c0c0c0c, RPCVers: xdr.RPCVersion, Prog: xdr.PmapProg, Vers: xdr.RpcbVers, Proc: xdr.RpcbProcCallit}).Encode(&e)
			(&xdr.CallArgs{Prog: xdr.PmapProg, Vers: xdr.RpcbVers4, Proc: 0}).Encode(&e)
			group := &net.UDPAddr{IP: net.ParseIP("ff02::202"), Port: 111, Zone: first.B}
			buf := make([]byte, 1024)
			var r xdr.RmtCallResult
			waitFor(t, "an answer to a udp6 broadcast", func() bool {
				if _, err := conn.WriteToUDP(e.Bytes(), group); err != nil {
					t.Fatal(err)
				}
				_ = conn.SetReadDeadline(time.Now().Add(time.Second))
				n, _, err := conn.ReadFromUDP(buf)
				if err != nil {
					return false
				}
				h, res, err := xdr.DecodeReply(buf[:n])
				if err != nil || h.XID != 0x0c0c0c0c {
					t.Fatalf("answer %x: %v", buf[:n], err)
				}
				d := xdr.NewDecoder(res)
				r.Decode(d)
				return d.Finish() == nil
			})
			if r.Addr != "fe80::2.0.111" {
				t.Errorf("answer names %q, want the link's address fe80::2.0.111", r.Addr)
			}
			if !p.Stop(hostTimeout) {
				t.Fatalf("portmapd ignored SIGTERM:\n%s", p.Output())
			}
		})
	}
}
