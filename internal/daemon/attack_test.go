package daemon_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/internal/netns"
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

// Addresses of the two-host setup: the daemon's host, the attacker's
// sources (many, so that the listeners' totals and the descriptor budget
// are reached, not only the per-source caps) and a well-behaved remote
// caller, all on one veth link.
const (
	attackServer    = "10.0.0.2"
	attackSources   = 40 // 10.0.1.1 … 10.0.1.40
	attackLegit     = "10.0.2.1"
	attackPrefix    = "/16"
	attackNofile    = 2048 // the daemon's RLIMIT_NOFILE, hard and soft
	attackRPCConns  = 1100
	attackHTTPConns = 2200
)

func attackerSource(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 0, 1, byte(1 + i%attackSources)})
}

// longIdle are idle timeouts far longer than a test, so that only the
// connection limits can keep the daemon serving.
var longIdle = []string{"--idle-timeout", "1h", "--http-idle-timeout", "1h"}

// attackHosts starts portmapd with flags in a host of its own, under a
// descriptor limit of nofile, and joins it to a client host holding the
// attacker's and the legitimate caller's addresses.
func attackHosts(t *testing.T, nofile int, flags ...string) (server, client *netns.Host, log *netns.Proc) {
	t.Helper()
	server = netns.NewHost(t, "srv")
	client = netns.NewHost(t, "cli")
	link := netns.Connect(t, server, client)
	server.AddAddr(link.A, attackServer+attackPrefix)
	for i := range attackSources {
		client.AddAddr(link.B, attackerSource(i).String()+attackPrefix)
	}
	client.AddAddr(link.B, attackLegit+attackPrefix)
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit not installed: apt-get install util-linux")
	}
	log = server.Start(server.Command(append([]string{"prlimit", fmt.Sprintf("--nofile=%d:%d", nofile, nofile), "--",
		portmapdBin(t), "-f"}, flags...)...))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := log.WaitOutput(ctx, "portmapd serving"); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{attackServer + ":111", attackServer + ":8111"} {
		if err := client.WaitDial(ctx, "tcp4", addr); err != nil {
			t.Fatal(err)
		}
	}
	return server, client, log
}

// dialFromHost connects from src inside host h.
func dialFromHost(h *netns.Host, src netip.Addr, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() error {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		var err error
		c, err = d.Dial(network, addr)
		return err
	})
	return c, err
}

// TestFloodOfIdleConnections is issue 9's denial of service from a second
// host: ~1,100 TCP RPC connections, half of which sent nothing and half
// made one call, all idle, and
// ~2,200 HTTP keep-alive connections (on :8111 and diverted from :111)
// that made one request and stay idle, against a daemon allowed 2,048
// descriptors. A remote caller's new TCP calls and HTTP requests, loopback
// TCP calls, local-socket calls and HTTP-socket registrations must all
// still be answered, and the log must account for the flood in a bounded
// number of lines.
func TestFloodOfIdleConnections(t *testing.T) {
	netns.Require(t)
	server, client, daemonLog := attackHosts(t, attackNofile, longIdle...)
	start := time.Now()

	// Half the attacker's RPC connections send nothing, as in the issue;
	// the other half, and every HTTP connection, are used once, so that
	// neither the record timeout nor anything else but the limits closes
	// them.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	null := xdr.AppendRecord(nil, nullCallBytes(1), 0)
	rpcOpened := 0
	for i := range attackRPCConns {
		c, err := dialFromHost(client, attackerSource(i), "tcp4", attackServer+":111")
		if err != nil {
			t.Fatalf("attacker connection %d: %v", i, err)
		}
		held = append(held, c)
		if i%2 == 0 {
			continue
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(null); err == nil {
			if _, err := xdr.NewRecordReader(c, 1<<16).Next(); err == nil {
				rpcOpened++
			}
		}
	}
	httpOpened := 0
	for i := range attackHTTPConns {
		port := "8111"
		if i%4 == 3 {
			port = "111" // diverted to the HTTP face
		}
		c, err := dialFromHost(client, attackerSource(i), "tcp4", attackServer+":"+port)
		if err != nil {
			t.Fatalf("attacker HTTP connection %d: %v", i, err)
		}
		held = append(held, c)
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := getHTTP(c, bufio.NewReader(c), "/portmap", false); err == nil {
			httpOpened++
		}
	}
	t.Logf("attacker opened %d RPC and %d HTTP connections, used once %d and %d, in %v",
		attackRPCConns, attackHTTPConns, rpcOpened, httpOpened, time.Since(start).Round(time.Millisecond))
	if rpcOpened < attackRPCConns/4 || httpOpened < attackHTTPConns/2 {
		t.Fatalf("the flood itself was not served: %d RPC and %d HTTP connections answered", rpcOpened, httpOpened)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	legit := netip.MustParseAddr(attackLegit)
	t.Run("remote TCP call", func(t *testing.T) {
		for i := range 3 {
			c, err := dialFromHost(client, legit, "tcp4", attackServer+":111")
			if err != nil {
				t.Fatal(err)
			}
			cl := rpcbind.NewClient(c)
			if _, err := cl.GetPort(ctx, xdr.PmapProg, xdr.PmapVers, netid.ProtoTCP); err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			cl.Close()
		}
	})
	t.Run("loopback TCP call", func(t *testing.T) {
		c, err := server.Dial("tcp4", "127.0.0.1:111")
		if err != nil {
			t.Fatal(err)
		}
		cl := rpcbind.NewClient(c)
		defer cl.Close()
		if err := cl.Null(ctx, xdr.PmapProg, xdr.RpcbVers4); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("local socket", func(t *testing.T) {
		cl, err := rpcbind.DialLocal(ctx, filepath.Join(server.Run, "rpcbind.sock"))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ok, err := cl.RpcbSet(ctx, xdr.RpcbVers, xdr.RPCB{Prog: 0x31000077, Vers: 1, Netid: string(netid.TCP), Addr: "0.0.0.0.35.40"})
		if err != nil || !ok {
			t.Fatalf("v3 SET over the local socket: %v %v", ok, err)
		}
	})
	t.Run("HTTP socket registration", func(t *testing.T) {
		hc := httpmap.NewLocalClient(filepath.Join(server.Run, "portmapd.sock"))
		if _, err := hc.Register(ctx, httpmap.Registration{Services: []httpmap.ServiceSpec{{Service: "flood.example.com", Port: "9000"}}}); err != nil {
			t.Fatal(err)
		}
		got, err := hc.Lookup(ctx, "flood.example.com")
		if err != nil || len(got) != 1 {
			t.Fatalf("lookup after registering: %v %v", got, err)
		}
	})
	t.Run("remote HTTP request", func(t *testing.T) {
		c, err := dialFromHost(client, legit, "tcp4", attackServer+":8111")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		status, _, err := getHTTP(c, bufio.NewReader(c), "/portmap", true)
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusOK {
			t.Fatalf("status %d", status)
		}
	})

	// The log: no line per connection, but counts at most once per 10s per
	// listener (tcp, tcp6, http, and the local ones), and they show that
	// the limits did the work.
	elapsed := time.Since(start)
	out := daemonLog.Output()
	lines := strings.Count(out, "connection limits enforced")
	bound := 6 * (int(elapsed/(10*time.Second)) + 2)
	t.Logf("%d limit lines in %v", lines, elapsed.Round(time.Second))
	if lines > bound {
		t.Errorf("%d log lines about limits in %v, want at most %d:\n%s", lines, elapsed, bound, out)
	}
	if n := strings.Count(out, "\n"); n > bound+20 {
		t.Errorf("the flood wrote %d log lines:\n%s", n, out)
	}
	// Counts held back within an interval are written when it ends.
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`listener=tcp( \w+=\d+)* evicted_total=\d+`),
		regexp.MustCompile(`listener=tcp( \w+=\d+)* evicted_descriptors=\d+`),
		regexp.MustCompile(`listener=http( \w+=\d+)* evicted_total=\d+`),
	} {
		if err := waitLog(daemonLog, want, 30*time.Second); err != nil {
			t.Errorf("%v: the limits were not reached", err)
		}
	}
	var limitLines []string
	for _, l := range strings.Split(daemonLog.Output(), "\n") {
		if strings.Contains(l, "connection limits enforced") {
			limitLines = append(limitLines, l)
		}
	}
	t.Logf("the daemon's account of the flood:\n%s", strings.Join(limitLines, "\n"))
	select {
	case <-daemonLog.Done():
		t.Fatalf("portmapd exited: %v", daemonLog.Err())
	default:
	}
}

// getHTTP sends a GET of path on c, as an HTTP/1.1 client keeping the
// connection alive unless closeAfter, and reads the answer from r, which
// reads c (one bufio.Reader for all the requests of a connection). It
// returns the status and the body.
func getHTTP(c net.Conn, r *bufio.Reader, path string, closeAfter bool) (int, []byte, error) {
	conn := ""
	if closeAfter {
		conn = "Connection: close\r\n"
	}
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n"+conn+"\r\n"); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// nullCallBytes is a portmap v2 NULL call.
func nullCallBytes(xid uint32) []byte {
	var e xdr.Encoder
	h := xdr.CallHeader{XID: xid, RPCVers: xdr.RPCVersion, Prog: xdr.PmapProg, Vers: xdr.PmapVers, Proc: xdr.PmapProcNull}
	h.Encode(&e)
	return e.Bytes()
}

// waitLog waits until the process's output matches re.
func waitLog(p *netns.Proc, re *regexp.Regexp, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for !re.MatchString(p.Output()) {
		if time.Now().After(deadline) {
			return fmt.Errorf("log lacks %s after %v", re, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// TestRemoteRpcinfoWithinReplyLimit: with the default UDP reply limit, a
// remote host's rpcinfo still lists a normal table, over TCP (-p) and over
// UDP, run after run; but a burst of DUMP calls from one remote address,
// as spoofed calls would reflect at a victim, gets only the bucket's
// worth of replies, while loopback gets all.
func TestRemoteRpcinfoWithinReplyLimit(t *testing.T) {
	netns.Require(t)
	if _, err := exec.LookPath("rpcinfo"); err != nil {
		t.Skip("rpcinfo not installed: apt-get install rpcbind")
	}
	server, client, _ := attackHosts(t, attackNofile, longIdle...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	local, err := rpcbind.DialLocal(ctx, filepath.Join(server.Run, "rpcbind.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	// A busy NFS server's table: a score of programs on tcp and udp.
	const programs = 20
	for i := range programs {
		for _, id := range []netid.ID{netid.TCP, netid.UDP} {
			r := xdr.RPCB{Prog: 0x31000100 + uint32(i), Vers: 1, Netid: string(id), Addr: fmt.Sprintf("0.0.0.0.%d.%d", 100+i, i)}
			if ok, err := local.RpcbSet(ctx, xdr.RpcbVers, r); err != nil || !ok {
				t.Fatalf("SET %+v: %v %v", r, ok, err)
			}
		}
	}
	for run := range 5 {
		for _, args := range [][]string{{"-p", attackServer}, {"-T", "udp", attackServer}} {
			out, err := client.Command(append([]string{"rpcinfo"}, args...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("run %d: rpcinfo %s: %v\n%s", run, strings.Join(args, " "), err, out)
			}
			for i := range programs {
				if prog := fmt.Sprint(0x31000100 + i); !strings.Contains(string(out), prog) {
					t.Fatalf("run %d: rpcinfo %s does not list program %s:\n%s", run, strings.Join(args, " "), prog, out)
				}
			}
		}
	}

	dump := nullCallBytes(7)
	dump[23] = byte(xdr.PmapProcDump)
	burst := func(h *netns.Host, src, dst string) int {
		t.Helper()
		var conn *net.UDPConn
		if err := h.Do(func() error {
			var err error
			conn, err = net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(src+":0")), net.UDPAddrFromAddrPort(netip.MustParseAddrPort(dst+":111")))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		const calls = 60
		for range calls {
			if _, err := conn.Write(dump); err != nil {
				t.Fatal(err)
			}
		}
		got := 0
		buf := make([]byte, 1<<16)
		for {
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := conn.Read(buf); err != nil {
				return got
			}
			got++
		}
	}
	if got := burst(server, "127.0.0.1", "127.0.0.1"); got != 60 {
		t.Errorf("loopback got %d of 60 DUMP replies; loopback is never limited", got)
	}
	// About 1 KB of excess per reply against a 16 KiB burst and 4 KiB/s.
	got := burst(client, attackLegit, attackServer)
	t.Logf("one remote address got %d of 60 DUMP replies at once", got)
	if got == 0 || got > 40 {
		t.Errorf("one remote address got %d of 60 DUMP replies at once, want some and at most 40", got)
	}
}
