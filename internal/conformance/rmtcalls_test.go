// The two-host scenario with remote calls on: rpcbind -r and portmapd -r
// driven from another host by rpcinfo -b, libtirpc's remote calls and
// broadcast, and portmapctl.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portmapd/portmapd/internal/netns"
	"github.com/portmapd/portmapd/xdr"
)

// buildTwoHosts compiles testdata/twohosts.c.
func buildTwoHosts(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/include/tirpc/rpc/rpc.h"); err != nil {
		t.Skip("conformance tests need libtirpc's headers: apt-get install libtirpc-dev")
	}
	prog := filepath.Join(t.TempDir(), "twohosts")
	cmd := exec.Command("gcc", "-O1", "-Wall", "-I/usr/include/tirpc", "-o", prog,
		filepath.Join("testdata", "twohosts.c"), "-ltirpc")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc twohosts.c: %v\n%s", err, out)
	}
	return prog
}

// TestTwoHostsRemoteCalls drives remote calls from another host against the
// portmapper with remote calls on: rpcinfo -b and portmapctl broadcast
// finding rpc.statd (over udp and udp6) and a libtirpc service,
// libtirpc's pmap_rmtcall, rpcb_rmtcall and rpc_broadcast, portmapctl call
// (CALLIT, BCAST, INDIRECT and INDIRECT's errors, the blocklist), silence
// over TCP, and the remote-call statistics; compared with
// testdata/rmtcalls.txt, recorded from Debian's rpcbind -f -r in the same
// setup (-update re-records it). Beyond the transcript, portmapd's own
// refusal of keyserv (checkLocalTrustRefused).
//
// rpcbind joins the udp6 broadcast group ff02::202 at start, but on a
// socket of its own that it closes at once, which leaves the group: its
// udp6 socket never hears a udp6 broadcast. For the recording the test
// holds the membership rpcbind means to have, so that the transcript shows
// what rpcbind answers a udp6 broadcast that reaches it; portmapd -r keeps
// its own membership (internal/daemon's TestRemoteCallsMulticast).
func TestTwoHostsRemoteCalls(t *testing.T) {
	requireSandbox(t, rpcinfoTool, gccTool, statdTool)
	prog := buildTwoHosts(t)
	ctl := portmapctlBin(t)
	t.Parallel()
	want := expectFile(t, filepath.Join("testdata", "rmtcalls.txt"), func() string {
		return rmtCallsScenario(t, append(daemonArgv(t, true), "-r"), prog, ctl, true)
	})
	got := rmtCallsScenario(t, append(daemonArgv(t, false), "-r"), prog, ctl, false)
	compareTranscripts(t, "rmtcalls", want, got, normaliseRmtCalls)
}

// statdProg is rpc.statd's program.
const statdProg = "100024"

// rmtCallsScenario plays the scenario against the portmapper argv starts
// and returns the transcript. reference says it is rpcbind, for which the
// test holds the udp6 broadcast group.
func rmtCallsScenario(t *testing.T, argv []string, prog, ctl string, reference bool) string {
	srv := netns.NewHost(t, "rsrv")
	cli := netns.NewHost(t, "rcli")
	for _, h := range []*netns.Host{srv, cli} {
		h.Sysctl("net.ipv6.conf.default.addr_gen_mode=1")
		h.Sysctl("net.ipv6.conf.default.accept_dad=0")
	}
	link := netns.Connect(t, srv, cli)
	for _, end := range []struct {
		h    *netns.Host
		name string
		v4   string
		v6   []string
	}{
		{srv, link.A, "10.0.0.2/24", []string{"fd00:1:1:1::2/64", "fe80::2/64"}},
		{cli, link.B, "10.0.0.1/24", []string{"fd00:1:1:1::1/64", "fe80::1/64"}},
	} {
		end.h.MustIP("link", "set", end.name, "down")
		end.h.MustIP("link", "set", end.name, "name", "veth0")
		end.h.MustIP("link", "set", "veth0", "up")
		end.h.MustIP("addr", "add", end.v4, "brd", "+", "dev", "veth0")
		for _, a := range end.v6 {
			end.h.AddAddr("veth0", a)
		}
	}
	daemon := srv.Start(srv.Command(argv...))
	waitServing(t, srv, daemon)
	if reference {
		holdRPCBMulticast(t, srv, "veth0")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	service := srv.Start(srv.Command(prog, "serve", twoHostsProg, "1", twoHostsPort))
	if err := service.WaitOutput(ctx, "ready"); err != nil {
		t.Fatalf("the service did not register: %v\n%s", err, service.Output())
	}
	statd := srv.Start(srv.Command("sh", "-c", "mkdir -p /run/statd/sm /run/statd/sm.bak && exec rpc.statd -F -n localhost -P /run/statd --no-notify"))
	for {
		// Lookups are counted, but not in the remote-call tables the
		// transcript shows.
		if _, code := runCmd(5*time.Second, srv.Command("rpcinfo", "-T", "udp", "127.0.0.1", statdProg, "1")); code == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("rpc.statd did not register:\n%s", statd.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}

	var tr transcript
	note := func(s string) { fmt.Fprintf(&tr, "## %s\n", s) }
	type step struct {
		shown string
		cmd   *exec.Cmd
		// sorted: the output is a broadcast's answers, whose number and
		// order depend on timing; shown sorted, each line once.
		sorted bool
		// server: the step runs on the server, over loopback.
		server bool
	}
	runStep := func(s step) string {
		who := "client"
		if s.server {
			who = "server"
		}
		out, code := runCmd(60*time.Second, s.cmd)
		if s.sorted {
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			slices.Sort(lines)
			out = strings.Join(slices.Compact(lines), "\n") + "\n"
			if out == "\n" {
				out = ""
			}
		}
		if out != "" && !strings.HasSuffix(out, "\n") {
			out += "\n"
		}
		return fmt.Sprintf("### %s: %s\n%sexit=%d\n", who, s.shown, out, code)
	}
	on := func(h *netns.Host, argv ...string) step {
		shown := strings.Join(argv, " ")
		switch argv[0] {
		case prog:
			shown = strings.Join(append([]string{"twohosts"}, argv[1:]...), " ")
		case ctl:
			shown = strings.Join(append([]string{"portmapctl"}, argv[1:]...), " ")
		}
		return step{shown: shown, cmd: h.Command(argv...), server: h == srv}
	}
	client := func(argv ...string) step { return on(cli, argv...) }
	sorted := func(s step) step { s.sorted = true; return s }

	note("broadcasts from the client, all at once: each round reaches the server over udp (10.0.0.255) and udp6 (ff02::202, once per IPv6 address of the client's link)")
	broadcasts := []step{
		sorted(client("rpcinfo", "-b", statdProg, "1")),
		sorted(client(ctl, "broadcast", statdProg, "1")),
		sorted(client("rpcinfo", "-b", twoHostsProg, "1")),
		sorted(client(ctl, "broadcast", twoHostsProg, "1")),
		client(prog, "broadcast", twoHostsProg, "1", "udp"),
		client(prog, "broadcast", twoHostsUnknown, "1", "udp"),
	}
	outs := make([]string, len(broadcasts))
	var wg sync.WaitGroup
	for i, s := range broadcasts {
		wg.Add(1)
		go func() { defer wg.Done(); outs[i] = runStep(s) }()
	}
	wg.Wait()
	for _, o := range outs {
		tr.WriteString(o)
	}

	note("libtirpc's remote calls from the client")
	for _, s := range []step{
		client(prog, "rmtcall", "10.0.0.2", twoHostsProg, "1"),
		client(prog, "rpcbrmtcall", "10.0.0.2", twoHostsProg, "1", "udp"),
		client(prog, "rmtcall", "10.0.0.2", twoHostsUnknown, "1"),
	} {
		tr.WriteString(runStep(s))
	}

	note("the same on the server, over loopback")
	for _, s := range []step{
		on(srv, prog, "rmtcall", "127.0.0.1", twoHostsProg, "1"),
		on(srv, prog, "rpcbrmtcall", "127.0.0.1", twoHostsProg, "1", "udp"),
		on(srv, prog, "rpcbrmtcall", "::1", statdProg, "1", "udp6"),
		on(srv, ctl, "call", "--indirect", "127.0.0.1", twoHostsProg, "1", "1", "00000015"),
		on(srv, ctl, "call", "-T", "udp6", "--indirect", "::1", statdProg, "1", "0"),
	} {
		tr.WriteString(runStep(s))
	}

	note("portmapctl call: CALLIT, BCAST and INDIRECT, INDIRECT's errors, the blocklist")
	getportArgs := "000186a0" + "00000002" + "00000011" + "00000000"
	for _, s := range []step{
		client(ctl, "call", "10.0.0.2", twoHostsProg, "1", "1", "00000015"),
		client(ctl, "call", "--version", "2", "10.0.0.2", twoHostsProg, "1", "1", "00000015"),
		client(ctl, "call", "--version", "4", "10.0.0.2", twoHostsProg, "1", "1", "00000015"),
		client(ctl, "call", "--indirect", "10.0.0.2", twoHostsProg, "1", "1", "00000015"),
		client(ctl, "call", "--indirect", "10.0.0.2", twoHostsUnknown, "1", "0"),
		client(ctl, "call", "--indirect", "10.0.0.2", twoHostsProg, "2", "0"),
		client(ctl, "call", "--indirect", "10.0.0.2", twoHostsProg, "1", "7"),
		client(ctl, "call", "--indirect", "10.0.0.2", "nfs", "3", "1"),
		client(ctl, "call", "--version", "2", "10.0.0.2", "100000", "2", "3", getportArgs),
		client(ctl, "call", "-T", "udp6", "fd00:1:1:1::2", statdProg, "1", "0"),
		client(ctl, "call", "-T", "udp6", "fe80::2%veth0", statdProg, "1", "0"),
	} {
		tr.WriteString(runStep(s))
	}

	note("over TCP a remote call is never answered, and the connection stays open")
	fmt.Fprintf(&tr, "### client: CALLIT over tcp to 10.0.0.2\n%s\n", tcpRemoteCall(t, cli, "10.0.0.2:111"))

	note("what the portmapper counted: its remote-call tables")
	out, code := runCmd(30*time.Second, cli.Command("rpcinfo", "-m", "10.0.0.2"))
	fmt.Fprintf(&tr, "### client: rpcinfo -m 10.0.0.2 (remote-call tables)\n%sexit=%d\n", rmtCallTables(out), code)

	if !reference {
		// After the tables: a call this forwards would be counted.
		checkLocalTrustRefused(t, srv, cli, prog, ctl)
	}

	statd.Kill()
	service.Kill()
	if !daemon.Stop(10 * time.Second) {
		t.Errorf("%s did not stop on SIGTERM", argv[0])
	}
	return tr.String()
}

// keyservProg is keyserv's program, which portmapd -r does not call on a
// caller's behalf by default (--rmtcall-deny), where rpcbind -r does.
const keyservProg = "100029"

// checkLocalTrustRefused checks, against portmapd -r alone, that a
// service registered on the server under keyserv's program, which trusts
// callers on its own host, is not called from the client through the
// portmapper but for its NULL procedure, while the service registered
// under another program is. rpcbind calls keyserv, so this is no part of
// the transcript.
func checkLocalTrustRefused(t *testing.T, srv, cli *netns.Host, prog, ctl string) {
	t.Helper()
	keyserv := srv.Start(srv.Command(prog, "serve", keyservProg, "1", "41002"))
	defer keyserv.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := keyserv.WaitOutput(ctx, "ready"); err != nil {
		t.Fatalf("the service did not register as keyserv: %v\n%s", err, keyserv.Output())
	}
	const refused = "portmapctl: RPC: Authentication error; why = Client credential too weak\n"
	for _, c := range []struct {
		args     []string
		want     string
		wantExit int
	}{
		{[]string{"call", "10.0.0.2", keyservProg, "1", "1", "00000015"}, refused, 1},
		{[]string{"call", "--version", "2", "10.0.0.2", keyservProg, "1", "1", "00000015"}, refused, 1},
		{[]string{"call", "--indirect", "10.0.0.2", keyservProg, "1", "1", "00000015"}, refused, 1},
		{[]string{"call", "10.0.0.2", keyservProg, "1", "0"}, "address 10.0.0.2.160.42\nresults \n", 0},
		{[]string{"call", "10.0.0.2", twoHostsProg, "1", "1", "00000015"}, "address 10.0.0.2.160.41\nresults 0000002a\n", 0},
	} {
		out, code := runCmd(30*time.Second, cli.Command(append([]string{ctl}, c.args...)...))
		if out != c.want || code != c.wantExit {
			t.Errorf("client: portmapctl %s:\n%sexit=%d\nwant:\n%sexit=%d", strings.Join(c.args, " "), out, code, c.want, c.wantExit)
		}
	}
}

// holdRPCBMulticast keeps a socket of h a member of ff02::202 on dev
// until the test ends.
func holdRPCBMulticast(t *testing.T, h *netns.Host, dev string) {
	t.Helper()
	var conn *net.UDPConn
	err := h.Do(func() error {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		if conn, err = net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6unspecified}); err != nil {
			return err
		}
		raw, err := conn.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		mreq := unix.IPv6Mreq{Multiaddr: netip.MustParseAddr("ff02::202").As16(), Interface: uint32(ifc.Index)}
		if err := raw.Control(func(fd uintptr) {
			serr = unix.SetsockoptIPv6Mreq(int(fd), unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP, &mreq)
		}); err != nil {
			return err
		}
		return serr
	})
	if err != nil {
		t.Fatalf("joining ff02::202 on %s: %v", dev, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
}

// tcpRemoteCall sends a version 2 CALLIT of the service's NULL procedure
// over TCP from h and says what came of it.
func tcpRemoteCall(t *testing.T, h *netns.Host, addr string) string {
	t.Helper()
	conn, err := h.Dial("tcp4", addr)
	if err != nil {
		return fmt.Sprintf("cannot connect: %v", err)
	}
	defer conn.Close()
	var e xdr.Encoder
	(&xdr.CallHeader{XID: 0x0a0b0c0d, RPCVers: xdr.RPCVersion, Prog: xdr.PmapProg, Vers: xdr.PmapVers, Proc: xdr.PmapProcCallit}).Encode(&e)
	(&xdr.CallArgs{Prog: 0x2fffb001, Vers: 1, Proc: 0}).Encode(&e)
	if _, err := conn.Write(xdr.AppendRecord(nil, e.Bytes(), 0)); err != nil {
		return fmt.Sprintf("cannot send: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := conn.Read(make([]byte, 512))
	var ne net.Error
	switch {
	case err == nil:
		return fmt.Sprintf("answered with %d bytes", n)
	case errors.As(err, &ne) && ne.Timeout():
		return "no answer, connection open"
	}
	return fmt.Sprintf("connection closed: %v", err)
}

// rmtCallTables keeps the remote-call tables of rpcinfo -m's output: each
// from its title to the blank line after it.
func rmtCallTables(out string) string {
	var b strings.Builder
	in := false
	for _, line := range strings.SplitAfter(out, "\n") {
		if strings.Contains(line, "RMTCALL") {
			in = true
		}
		if in {
			b.WriteString(line)
			if strings.TrimSpace(line) == "" {
				in = false
			}
		}
	}
	return b.String()
}

// statdSection is a step of the transcript whose output shows rpc.statd's
// addresses, whose ports are the kernel's choice.
var statdSection = regexp.MustCompile(`^### (client|server): .*\b(100024|status)\b`)

// normaliseRmtCalls folds out statd's ports and sorts the rows of the
// statistics, whose order is that of the concurrent broadcasts' calls.
func normaliseRmtCalls(s string) string {
	lines := strings.Split(s, "\n")
	statdOutput := false
	for i, line := range lines {
		if strings.HasPrefix(line, "### ") {
			statdOutput = statdSection.MatchString(line)
			continue
		}
		if statdOutput {
			lines[i] = statdUaddr.ReplaceAllString(line, "${1}.P.P")
		}
	}
	return sortStatRows(strings.Join(lines, "\n"))
}
