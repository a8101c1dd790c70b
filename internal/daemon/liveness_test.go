package daemon_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

// Short pruning times for the tests: a check every 100 ms, 300 ms grace.
var pruneFlags = []string{"--prune-grace", "300ms", "--prune-interval", "100ms"}

// TestHelperService is not a test: run with PORTMAPD_HELPER set, it is a
// service that listens on a TCP port, registers it over portmapd's local
// socket (so portmapd records its pid) and waits. With
// PORTMAPD_HELPER=fork it then hands the socket to a child that keeps it,
// prints the child's pid and exits, as a daemon that forks does.
func TestHelperService(t *testing.T) {
	mode := os.Getenv("PORTMAPD_HELPER")
	if mode == "" {
		t.Skip("helper process only")
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	prog, _ := strconv.Atoi(os.Getenv("PORTMAPD_HELPER_PROG"))
	c, err := dialUnix(os.Getenv("PORTMAPD_HELPER_SOCKET"))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	ok, err := c.PmapSet(context.Background(), xdr.Mapping{Prog: uint32(prog), Vers: 1, Prot: netid.ProtoTCP, Port: uint32(port)})
	if err != nil || !ok {
		fmt.Println("error", ok, err)
		os.Exit(1)
	}
	c.Close()
	if mode == "fork" {
		f, _ := ln.(*net.TCPListener).File()
		child := exec.Command("sleep", "60")
		child.ExtraFiles = []*os.File{f}
		if err := child.Start(); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("child", child.Process.Pid, port)
		os.Exit(0)
	}
	fmt.Println("ready", port)
	time.Sleep(time.Minute)
	os.Exit(0)
}

// startService runs TestHelperService registering prog with d and returns
// it and the first word and number of what it printed.
func startService(t *testing.T, d *daemon, mode string, prog uint32) (*exec.Cmd, string, int) {
	t.Helper()
	return startHelper(t, exec.Command(os.Args[0], "-test.run=^TestHelperService$"), d, mode, prog)
}

// startHelper starts cmd, which runs TestHelperService (itself or through
// a wrapper such as unshare) registering prog with d, and returns it and
// the first word and number of what it printed.
func startHelper(t *testing.T, cmd *exec.Cmd, d *daemon, mode string, prog uint32) (*exec.Cmd, string, int) {
	t.Helper()
	cmd.Env = append(os.Environ(), "PORTMAPD_HELPER="+mode, "PORTMAPD_HELPER_SOCKET="+d.rpc, fmt.Sprintf("PORTMAPD_HELPER_PROG=%d", prog))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	f := strings.Fields(line)
	if len(f) < 2 || f[0] == "error" {
		t.Fatalf("helper: %q", line)
	}
	n, _ := strconv.Atoi(f[1])
	go io.Copy(io.Discard, out)
	return cmd, f[0], n
}

// eventually polls cond until it holds or timeout passes.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

func (d *daemon) has(prog uint32, prot uint32) bool {
	_, ok := d.mappings()[[2]uint32{prog, prot}]
	return ok
}

// udpPort is the daemon's RPC port, from its own registration.
func (d *daemon) udpPort() uint32 {
	return d.mappings()[[2]uint32{xdr.PmapProg, netid.ProtoUDP}]
}

// loopbackSet makes a v2 SET over UDP from 127.0.0.1: no process known.
func (d *daemon) loopbackSet(prog uint32, prot uint32, port int) {
	d.t.Helper()
	c, err := rpcbind.Dial(context.Background(), "udp4", fmt.Sprintf("127.0.0.1:%d", d.udpPort()))
	if err != nil {
		d.t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if ok, err := c.PmapSet(ctx, xdr.Mapping{Prog: prog, Vers: 1, Prot: prot, Port: uint32(port)}); !ok || err != nil {
		d.t.Fatalf("loopback SET: %v %v", ok, err)
	}
}

// jsonListing fetches /portmap as JSON over the local HTTP socket.
func (d *daemon) jsonListing() string {
	d.t.Helper()
	return jsonListingAt(d.t, d.http)
}

// jsonListingAt fetches /portmap as JSON over the HTTP socket sock.
func jsonListingAt(t testing.TB, sock string) string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	req, _ := http.NewRequest("GET", "http://localhost/portmap", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestLiveness(t *testing.T) {
	t.Run("killed service disappears", func(t *testing.T) {
		d := newDaemon(t, pruneFlags...)
		d.start()
		const prog = 0x31000001
		svc, _, _ := startService(t, d, "serve", prog)
		if !d.has(prog, netid.ProtoTCP) {
			t.Fatal("not registered")
		}
		svc.Process.Signal(syscall.SIGKILL)
		svc.Wait()
		if !eventually(5*time.Second, func() bool { return !d.has(prog, netid.ProtoTCP) }) {
			t.Fatal("registration of a killed service was not pruned")
		}
		if j := d.jsonListing(); !strings.Contains(j, "recent_removals") || !strings.Contains(j, "has exited and nothing is bound to tcp port") {
			t.Errorf("JSON view shows no removal:\n%s", j)
		}
		// The pruner logs after removing, so the line may trail the removal.
		if !eventually(5*time.Second, func() bool { return strings.Contains(d.log.String(), "pruned registration") }) {
			t.Error("removal not logged")
		}
	})
	t.Run("forked service stays", func(t *testing.T) {
		d := newDaemon(t, pruneFlags...)
		d.start()
		const prog = 0x31000002
		_, word, child := startService(t, d, "fork", prog)
		if word != "child" {
			t.Fatalf("helper said %q", word)
		}
		t.Cleanup(func() { syscall.Kill(child, syscall.SIGKILL) })
		time.Sleep(800 * time.Millisecond) // past the grace, several checks
		if !d.has(prog, netid.ProtoTCP) {
			t.Fatal("registration pruned although the forked child holds the port")
		}
		syscall.Kill(child, syscall.SIGKILL)
		if !eventually(5*time.Second, func() bool { return !d.has(prog, netid.ProtoTCP) }) {
			t.Fatal("not pruned once the child holding the port died")
		}
	})
	t.Run("loopback registrations", func(t *testing.T) {
		d := newDaemon(t, pruneFlags...)
		d.start()
		bound, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer bound.Close()
		d.loopbackSet(0x31000003, netid.ProtoUDP, bound.LocalAddr().(*net.UDPAddr).Port)
		for attempt := uint32(0); ; attempt++ {
			prog := 0x31000004 + attempt<<8
			hold, port := holdUDPPort(t)
			d.loopbackSet(prog, netid.ProtoUDP, port)
			hold.Close() // nothing is bound to the port from here on
			if eventually(5*time.Second, func() bool { return !d.has(prog, netid.ProtoUDP) }) {
				break
			}
			// Only another socket binding the port explains it.
			if !udpPortTaken(port) || attempt == 2 {
				t.Fatalf("loopback registration of unbound port %d not pruned", port)
			}
			t.Logf("another socket bound port %d after the test let it go; again with another port", port)
		}
		if !d.has(0x31000003, netid.ProtoUDP) {
			t.Fatal("loopback registration of a bound port pruned")
		}
		if !eventually(5*time.Second, func() bool { return strings.Contains(d.log.String(), "for 2 checks") }) {
			t.Error("log does not give the two-check reason")
		}
	})
	t.Run("no-prune keeps everything", func(t *testing.T) {
		d := newDaemon(t, append([]string{"--no-prune"}, pruneFlags...)...)
		d.start()
		const prog = 0x31000005
		svc, _, _ := startService(t, d, "serve", prog)
		svc.Process.Signal(syscall.SIGKILL)
		svc.Wait()
		hold, port := holdUDPPort(t)
		d.loopbackSet(0x31000006, netid.ProtoUDP, port)
		hold.Close()
		time.Sleep(900 * time.Millisecond)
		if !d.has(prog, netid.ProtoTCP) || !d.has(0x31000006, netid.ProtoUDP) {
			t.Fatal("--no-prune pruned")
		}
	})
}

// holdUDPPort binds a UDP port on every address of both families and
// returns it with the socket holding it, which the test closes once the
// port is registered and must be unbound. The port is below the
// kernel's ephemeral range when there is room: the kernel hands ports of
// that range to sockets bound to port 0 and to those sending unbound, so
// one from it, once let go, may soon be another socket's, and pruning
// would rightly spare its registration.
func holdUDPPort(t *testing.T) (net.PacketConn, int) {
	t.Helper()
	lo, hi := 0, 0 // port 0: the kernel chooses
	if first := ephemeralFirst(); first > 10000 {
		lo, hi = 10000, first
	} else if first > 1024 {
		lo, hi = 1024, first
	}
	var err error
	for range 100 {
		port := 0
		if hi > lo {
			port = lo + rand.IntN(hi-lo)
		}
		var c net.PacketConn
		if c, err = net.ListenPacket("udp", fmt.Sprintf(":%d", port)); err == nil {
			return c, c.LocalAddr().(*net.UDPAddr).Port
		}
	}
	t.Fatalf("no UDP port free below %d: %v", hi, err)
	return nil, 0
}

// ephemeralFirst is the first port of the kernel's ephemeral range, or 0
// when it cannot be read.
func ephemeralFirst() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// udpPortTaken reports whether a socket is bound to the UDP port.
func udpPortTaken(port int) bool {
	c, err := net.ListenPacket("udp", fmt.Sprintf(":%d", port))
	if err != nil {
		return true
	}
	c.Close()
	return false
}
