// The two-host scenario: the portmapper on one host, its callers on
// another, joined by a veth pair whose addresses come, change and go while
// the portmapper runs.
package conformance

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/internal/netns"
)

// The service twohosts.c registers with svc_register on the server host:
// a program in the transient range, on a fixed port so that no answer
// depends on the kernel's choice of port.
const (
	twoHostsProg    = "805285889" // 0x2fffb001
	twoHostsPort    = "41001"     // 160.41 in a universal address
	twoHostsUnknown = "805286143" // 0x2fffb0ff, never registered
)

// TestTwoHosts drives the portmapper from another host with rpcinfo and
// libtirpc (testdata/twohosts.c) and compares what they see with
// testdata/twohosts.txt, recorded from Debian's rpcbind -f in the same
// setup (-update re-records it).
func TestTwoHosts(t *testing.T) {
	requireSandbox(t, rpcinfoTool, gccTool)
	if _, err := os.Stat("/usr/include/tirpc/rpc/rpc.h"); err != nil {
		t.Skip("conformance tests need libtirpc's headers: apt-get install libtirpc-dev")
	}
	t.Parallel()
	prog := filepath.Join(t.TempDir(), "twohosts")
	cmd := exec.Command("gcc", "-O1", "-Wall", "-I/usr/include/tirpc", "-o", prog,
		filepath.Join("testdata", "twohosts.c"), "-ltirpc")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc twohosts.c: %v\n%s", err, out)
	}
	want := expectFile(t, filepath.Join("testdata", "twohosts.txt"), func() string {
		return twoHostsScenario(t, daemonArgv(t, true), prog)
	})
	got := twoHostsScenario(t, daemonArgv(t, false), prog)
	// Nothing is normalised: the service's port is fixed, link-local
	// addresses are set rather than derived from random MACs, and even
	// rpcinfo -m's counts are exact, since readiness is read from /proc and
	// the service's stdout, never polled by RPC. rpcinfo -b runs alongside
	// other steps, but its calls are the only ones counted in the
	// remote-call tables, so no row order depends on the interleaving.
	compareTranscripts(t, "twohosts", want, got, func(s string) string { return s })
}

// twoHostsScenario plays the scenario against the portmapper argv starts
// and returns the transcript.
func twoHostsScenario(t *testing.T, argv []string, prog string) string {
	srv := netns.NewHost(t, "srv")
	cli := netns.NewHost(t, "cli")
	for _, h := range []*netns.Host{srv, cli} {
		// Links made from now on get no automatic link-local address
		// (its value would come from a random MAC) and no duplicate
		// address detection (which would hold every address back).
		h.Sysctl("net.ipv6.conf.default.addr_gen_mode=1")
		h.Sysctl("net.ipv6.conf.default.accept_dad=0")
	}
	daemon := srv.Start(srv.Command(argv...))
	waitServing(t, srv, daemon)

	var tr transcript
	// on runs argv on h and records it; the program's own path, which
	// changes from run to run, is shown as its name.
	on := func(h *netns.Host, argv ...string) {
		who := "client"
		if h == srv {
			who = "server"
		}
		shown := strings.Join(argv, " ")
		if argv[0] == prog {
			shown = strings.Join(append([]string{"twohosts"}, argv[1:]...), " ")
		}
		fmt.Fprintf(&tr, "### %s: %s\n", who, shown)
		out, code := runCmd(30*time.Second, h.Command(argv...))
		tr.WriteString(out)
		if out != "" && !strings.HasSuffix(out, "\n") {
			tr.WriteString("\n")
		}
		fmt.Fprintf(&tr, "exit=%d\n", code)
	}
	tirpc := func(h *netns.Host, args ...string) { on(h, append([]string{prog}, args...)...) }
	note := func(s string) { fmt.Fprintf(&tr, "## %s\n", s) }

	note("the server has only loopback; a GETADDR from loopback, then the service registers")
	on(srv, "rpcinfo", "-T", "tcp", "127.0.0.1", "100000", "4")
	service := srv.Start(srv.Command(prog, "serve", twoHostsProg, "1", twoHostsPort))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := service.WaitOutput(ctx, "ready"); err != nil {
		t.Fatalf("the service did not register: %v\n%s", err, service.Output())
	}
	note("the service registered with svc_register (udp and tcp, port " + twoHostsPort + ")")
	on(srv, "rpcinfo", "-p")
	on(srv, "rpcinfo", "-T", "udp", "127.0.0.1", twoHostsProg, "1")

	note("a link comes up between the hosts, after the portmapper started")
	link := netns.Connect(t, srv, cli)
	for _, end := range []struct {
		h    *netns.Host
		name string
	}{{srv, link.A}, {cli, link.B}} {
		end.h.MustIP("link", "set", end.name, "down")
		end.h.MustIP("link", "set", end.name, "name", "veth0")
		end.h.MustIP("link", "set", "veth0", "up")
	}
	// brd +: rpcinfo -b sends to the interfaces' broadcast addresses.
	on(cli, "ip", "addr", "add", "10.0.0.1/24", "brd", "+", "dev", "veth0")
	on(cli, "ip", "addr", "add", "fd00:1:1:1::1/64", "dev", "veth0", "nodad")
	on(cli, "ip", "addr", "add", "fe80::1/64", "dev", "veth0", "nodad")

	note("the case that broke: a GETADDR from loopback, an address added, then at once a call from the other host")
	on(srv, "rpcinfo", "-T", "tcp", "127.0.0.1", twoHostsProg, "1")
	on(srv, "ip", "addr", "add", "10.0.0.2/24", "brd", "+", "dev", "veth0")
	tirpc(cli, "call", "10.0.0.2", twoHostsProg, "1", "tcp")
	on(cli, "rpcinfo", "-T", "tcp", "10.0.0.2", twoHostsProg, "1")
	tirpc(cli, "call", "10.0.0.2", twoHostsProg, "1", "udp")
	note("the same over IPv6: a unique local address, then a link-local one")
	on(srv, "rpcinfo", "-T", "tcp6", "::1", "100000", "4")
	on(srv, "ip", "addr", "add", "fd00:1:1:1::2/64", "dev", "veth0", "nodad")
	on(cli, "rpcinfo", "-T", "tcp6", "fd00:1:1:1::2", "100000", "4")
	tirpc(cli, "getaddr", "fd00:1:1:1::2", "100000", "4", "udp6")
	on(srv, "ip", "addr", "add", "fe80::2/64", "dev", "veth0", "nodad")
	on(cli, "rpcinfo", "-T", "udp6", "fe80::2%veth0", "100000", "4")
	tirpc(cli, "getaddr", "fe80::2%veth0", "100000", "4", "tcp6")

	note("with the addresses in place: every view from the client (rpcinfo -b runs meanwhile)")
	type result struct {
		out  string
		code int
	}
	broadcast := make(chan result, 1)
	go func() {
		out, code := runCmd(60*time.Second, cli.Command("rpcinfo", "-b", twoHostsProg, "1"))
		broadcast <- result{out, code}
	}()
	for _, host := range []string{"10.0.0.2", "fd00:1:1:1::2"} {
		on(cli, "rpcinfo", "-p", host)
		on(cli, "rpcinfo", host)
		on(cli, "rpcinfo", "-s", host)
	}
	on(cli, "rpcinfo", "-s", "fe80::2%veth0")
	on(cli, "rpcinfo", "-l", "10.0.0.2", "100000", "4")
	on(cli, "rpcinfo", "-l", "10.0.0.2", twoHostsProg, "1")
	on(cli, "rpcinfo", "-l", "-T", "udp6", "fd00:1:1:1::2", "100000", "4")
	on(cli, "rpcinfo", "-l", "-T", "tcp6", "fd00:1:1:1::2", twoHostsProg, "1")
	on(cli, "rpcinfo", "-l", "-T", "tcp6", "fe80::2%veth0", "100000", "3")
	for _, netid := range []string{"udp", "tcp"} {
		for _, pv := range [][]string{
			{"100000", "2"}, {"100000", "3"}, {"100000", "4"}, {"100000"},
			{twoHostsProg, "1"}, {twoHostsProg}, {twoHostsProg, "2"}, {twoHostsUnknown, "1"},
		} {
			on(cli, append([]string{"rpcinfo", "-T", netid, "10.0.0.2"}, pv...)...)
		}
	}
	for _, netid := range []string{"udp6", "tcp6"} {
		on(cli, "rpcinfo", "-T", netid, "fd00:1:1:1::2", "100000", "4")
		on(cli, "rpcinfo", "-T", netid, "fd00:1:1:1::2", twoHostsProg, "1")
		on(cli, "rpcinfo", "-T", netid, "fe80::2%veth0", "100000")
	}
	on(cli, "rpcinfo", "-a", "10.0.0.2.0.111", "-T", "tcp", "100000", "2")
	on(cli, "rpcinfo", "-a", "fd00:1:1:1::2.0.111", "-T", "udp6", "100000", "4")
	on(cli, "rpcinfo", "-a", "10.0.0.2.160.41", "-T", "udp", twoHostsProg, "1")
	on(cli, "rpcinfo", "-a", "10.0.0.2.160.41", "-T", "tcp", twoHostsProg)
	for _, netid := range []string{"udp", "tcp"} {
		tirpc(cli, "getaddr", "10.0.0.2", twoHostsProg, "1", netid)
		tirpc(cli, "getport", "10.0.0.2", twoHostsProg, "1", netid)
		tirpc(cli, "call", "10.0.0.2", twoHostsProg, "1", netid)
	}
	tirpc(cli, "getport", "10.0.0.2", twoHostsProg, "2", "udp")
	tirpc(cli, "getport", "10.0.0.2", twoHostsUnknown, "1", "tcp")
	tirpc(cli, "getaddr", "fd00:1:1:1::2", "100000", "3", "tcp6")
	tirpc(cli, "getaddr", "fd00:1:1:1::2", twoHostsProg, "1", "udp6")
	tirpc(cli, "call", "fd00:1:1:1::2", twoHostsProg, "1", "tcp6")
	b := <-broadcast
	fmt.Fprintf(&tr, "### client: rpcinfo -b %s 1 (run alongside the steps above)\n%sexit=%d\n", twoHostsProg, b.out, b.code)

	note("addresses change: 10.0.0.2 becomes 10.0.0.3, and at once the client calls")
	on(srv, "ip", "addr", "del", "10.0.0.2/24", "dev", "veth0")
	on(srv, "ip", "addr", "add", "10.0.0.3/24", "brd", "+", "dev", "veth0")
	tirpc(cli, "call", "10.0.0.3", twoHostsProg, "1", "tcp")
	on(cli, "rpcinfo", "-l", "10.0.0.3", "100000", "4")
	on(cli, "rpcinfo", "-T", "udp", "10.0.0.3", twoHostsProg, "1")
	on(srv, "ip", "addr", "del", "fd00:1:1:1::2/64", "dev", "veth0")
	on(srv, "ip", "addr", "add", "fd00:1:1:1::3/64", "dev", "veth0", "nodad")
	on(cli, "rpcinfo", "-l", "-T", "tcp6", "fd00:1:1:1::3", "100000", "4")
	tirpc(cli, "getaddr", "fd00:1:1:1::3", "100000", "3", "udp6")
	note("a second link-local address is added, then removed: link-local answers are by link, first listed first")
	on(srv, "ip", "addr", "add", "fe80::4/64", "dev", "veth0", "nodad")
	on(cli, "rpcinfo", "-l", "-T", "udp6", "fe80::4%veth0", "100000", "4")
	on(srv, "ip", "addr", "del", "fe80::4/64", "dev", "veth0")
	on(cli, "rpcinfo", "-l", "-T", "udp6", "fe80::2%veth0", "100000", "4")

	note("the server's link goes down and comes up again: IPv4 stays, IPv6 must be added again")
	on(srv, "ip", "link", "set", "veth0", "down")
	on(srv, "ip", "link", "set", "veth0", "up")
	// TCP first: it retries its SYN while the link's carrier comes up,
	// where a datagram lost then would be sent again and counted twice.
	tirpc(cli, "call", "10.0.0.3", twoHostsProg, "1", "tcp")
	on(cli, "rpcinfo", "-l", "10.0.0.3", twoHostsProg, "1")
	on(srv, "ip", "addr", "add", "fd00:1:1:1::3/64", "dev", "veth0", "nodad")
	on(cli, "rpcinfo", "-T", "tcp6", "fd00:1:1:1::3", "100000", "4")

	note("what the portmapper counted")
	on(cli, "rpcinfo", "-m", "10.0.0.3")
	on(cli, "rpcinfo", "-s", "10.0.0.3")
	service.Kill()
	if !daemon.Stop(10 * time.Second) {
		t.Errorf("%s did not stop on SIGTERM", argv[0])
	}
	return tr.String()
}

// waitServing waits until the daemon p in h is bound to port 111 for UDP
// and TCP on IPv4 and IPv6 and has made /run/rpcbind.sock, without sending
// it anything: polling by RPC would change what rpcinfo -m reports.
func waitServing(t *testing.T, h *netns.Host, p *netns.Proc) {
	t.Helper()
	procNet := "/proc/" + strconv.Itoa(p.Cmd.Process.Pid) + "/net/"
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-p.Done():
			t.Fatalf("%s exited before it served: %v\n%s", p.Cmd.Args[len(p.Cmd.Args)-1], p.Err(), p.Output())
		default:
		}
		_, sockErr := os.Stat(filepath.Join(h.Run, "rpcbind.sock"))
		if sockErr == nil && portBound(procNet+"udp", "07") && portBound(procNet+"tcp", "0A") &&
			portBound(procNet+"udp6", "07") && portBound(procNet+"tcp6", "0A") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving port 111 and /run/rpcbind.sock after 20s:\n%s", p.Output())
		}
	}
}
