package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/xdr"
)

// commandAsNobody makes cmd run as nobody.
func commandAsNobody(cmd *exec.Cmd) *exec.Cmd {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	return cmd
}

// Flood sizes for TestUserCannotExhaust, against caps set low so that the
// flood stays short: junk SETs (netid x, 4 KB addresses, as in the report),
// valid SETs past the entry cap, sleeping processes past the process cap.
const (
	floodJunk     = 200
	floodRPC      = 150
	floodRPCCap   = 100
	floodSleepers = 150
	floodProcCap  = 120
	// floodNofile is the open-file limit portmapd runs under, so its
	// default pidfd budget is floodNofile/4; without a budget, 150
	// pidfds would exhaust it.
	floodNofile = 128
)

// floodResult is what TestHelperFlood reports.
type floodResult struct {
	JunkRefused   int            `json:"junk_refused"`
	RPCAccepted   int            `json:"rpc_accepted"`
	RPCRefused    int            `json:"rpc_refused"`
	NamedAccepted int            `json:"named_accepted"`
	NamedRefused  int            `json:"named_refused"`
	Other         map[string]int `json:"other,omitempty"`
}

// TestHelperFlood is not a test: run with PORTMAPD_FLOOD_RPC set (as
// nobody, by TestUserCannotExhaust), it floods portmapd's local RPC socket
// with SETs and registers a name for each process in PORTMAPD_FLOOD_PIDS
// over the local HTTP socket, then prints what was accepted as JSON.
func TestHelperFlood(t *testing.T) {
	rpcSock := os.Getenv("PORTMAPD_FLOOD_RPC")
	if rpcSock == "" {
		t.Skip("helper process only")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := floodResult{Other: map[string]int{}}
	c, err := dialUnix(rpcSock)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	set := func(r xdr.RPCB) bool {
		ok, err := c.RpcbSet(ctx, xdr.RpcbVers, r)
		if err != nil {
			res.Other["set: "+err.Error()]++
		}
		return ok
	}
	junk := strings.Repeat("a", 4096)
	for i := range floodJunk {
		if !set(xdr.RPCB{Prog: 0x31000000 + uint32(i), Vers: 1, Netid: "x", Addr: junk}) {
			res.JunkRefused++
		}
	}
	for i := range floodRPC {
		addr := fmt.Sprintf("/run/flood/%090d.sock", i)
		if set(xdr.RPCB{Prog: 0x31100000 + uint32(i), Vers: 1, Netid: "local", Addr: addr}) {
			res.RPCAccepted++
		} else {
			res.RPCRefused++
		}
	}
	c.Close()
	hc := httpmap.NewLocalClient(os.Getenv("PORTMAPD_FLOOD_HTTP"))
	for i, p := range strings.Split(os.Getenv("PORTMAPD_FLOOD_PIDS"), ",") {
		pid, _ := strconv.Atoi(p)
		_, err := hc.Register(ctx, httpmap.Registration{PID: int32(pid), Services: []httpmap.ServiceSpec{{Service: fmt.Sprintf("w%d.flood.example.com", i), Port: "9000"}}})
		var he *httpmap.Error
		switch {
		case err == nil:
			res.NamedAccepted++
		case errors.As(err, &he) && he.Status == http.StatusForbidden:
			res.NamedRefused++
		default:
			res.Other["register: "+err.Error()]++
		}
	}
	json.NewEncoder(os.Stdout).Encode(res)
	os.Exit(0)
}

// TestUserCannotExhaust: an unprivileged user floods the local RPC socket
// with SETs of junk and with more entries than its cap, and registers
// names for more sleeping processes than its cap, while portmapd runs
// under a small open-file limit. The junk is refused, the user gets no
// more than its caps, the daemon holds no more pidfds than its budget,
// root's SET and root's named registration still succeed, and every
// registration of the user's processes, watched through a pidfd or
// polled, ends when they do.
func TestUserCannotExhaust(t *testing.T) {
	needRoot(t, "to act as nobody", "unshare", "prlimit")
	// Pruning is off: nobody's entries name the flood's pid, which exits.
	d := newDaemon(t, "--no-prune", "--max-rpc-per-uid", strconv.Itoa(floodRPCCap),
		"--max-processes-per-uid", strconv.Itoa(floodProcCap), "--proc-poll-interval", "100ms")
	// In a network namespace of its own, under a small open-file limit.
	d.wrap = []string{"unshare", "-n", "prlimit", fmt.Sprintf("--nofile=%d:%d", floodNofile, floodNofile), "--"}
	// nobody must reach the sockets, and run this test binary.
	for _, dir := range []string{d.dir, filepath.Dir(d.dir)} {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	helper := filepath.Join(d.dir, "flood.test")
	copyExecutable(t, os.Args[0], helper)
	d.start()

	var pids []string
	var sleepers []*exec.Cmd
	t.Cleanup(func() {
		for _, s := range sleepers {
			s.Process.Kill()
			s.Wait()
		}
	})
	for range floodSleepers {
		s := commandAsNobody(exec.Command("sleep", "300"))
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		sleepers = append(sleepers, s)
		pids = append(pids, strconv.Itoa(s.Process.Pid))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	flood := commandAsNobody(exec.CommandContext(ctx, helper, "-test.run=^TestHelperFlood$"))
	flood.Env = append(os.Environ(), "PORTMAPD_FLOOD_RPC="+d.rpc, "PORTMAPD_FLOOD_HTTP="+d.http, "PORTMAPD_FLOOD_PIDS="+strings.Join(pids, ","))
	out, err := flood.Output()
	var got floodResult
	if err != nil || json.Unmarshal(out, &got) != nil {
		t.Fatalf("flood as nobody: %v\n%s", err, out)
	}
	want := floodResult{
		JunkRefused: floodJunk,
		RPCAccepted: floodRPCCap, RPCRefused: floodRPC - floodRPCCap,
		NamedAccepted: floodProcCap, NamedRefused: floodSleepers - floodProcCap,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) && len(got.Other) == 0 {
		t.Errorf("nobody's flood: %+v, want %+v", got, want)
	}
	if len(got.Other) > 0 {
		t.Errorf("nobody's flood failed otherwise: %+v", got)
	}

	// Root is still served.
	c := d.rpcClient()
	defer c.Close()
	if ok, err := c.RpcbSet(ctx, xdr.RpcbVers, xdr.RPCB{Prog: 0x31200000, Vers: 1, Netid: "tcp", Addr: "127.0.0.1.8.1"}); !ok || err != nil {
		t.Fatalf("root's SET after the flood = %v, %v", ok, err)
	}
	rootSvc := exec.Command("sleep", "300")
	if err := rootSvc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { rootSvc.Process.Kill(); rootSvc.Wait() }()
	if _, err := httpmap.NewLocalClient(d.http).Register(ctx, httpmap.Registration{PID: int32(rootSvc.Process.Pid), Services: []httpmap.ServiceSpec{{Service: "root.example.com", Port: "9001"}}}); err != nil {
		t.Fatalf("root's named registration after the flood: %v\n%s", err, d.log.String())
	}

	// The registry holds no more of nobody's than the caps allow.
	entries, err := c.RpcbDump(ctx, xdr.RpcbVers)
	if err != nil {
		t.Fatal(err)
	}
	byOwner := map[string]int{}
	for _, e := range entries {
		byOwner[e.Owner]++
		if e.Netid == "x" {
			t.Fatalf("junk entry registered: %+v", e)
		}
	}
	if byOwner[strconv.Itoa(nobody)] != floodRPCCap || byOwner["superuser"] == 0 || len(byOwner) != 2 {
		t.Errorf("entries by owner %v, want %d of nobody's", byOwner, floodRPCCap)
	}
	l := d.listing()
	if l.Refused.RPC != floodRPC-floodRPCCap || l.Refused.Named != floodSleepers-floodProcCap {
		t.Errorf("refused %+v, want %d rpc, %d named", l.Refused, floodRPC-floodRPCCap, floodSleepers-floodProcCap)
	}
	if n := namedOf(l, nobody); n != floodProcCap {
		t.Errorf("%d named services of nobody's, want %d", n, floodProcCap)
	}
	n := pidfdsOf(t, d.cmd.Process.Pid)
	if n == 0 || n > floodNofile/4 {
		t.Errorf("portmapd holds %d pidfds, want 1 to %d", n, floodNofile/4)
	}
	t.Logf("%d processes watched, %d through pidfds", floodProcCap+1, n)

	// Every process ends its registrations, polled or not.
	for _, s := range sleepers {
		s.Process.Kill()
		s.Wait()
	}
	sleepers = nil
	deadline := time.Now().Add(30 * time.Second)
	for {
		l = d.listing()
		if namedOf(l, nobody) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d named services of nobody's left after its processes exited\n%s", namedOf(l, nobody), d.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if namedOf(l, 0) != 1 {
		t.Errorf("root's named service gone: %+v", l.Instances)
	}
}

// listing fetches and decodes the JSON listing.
func (d *daemon) listing() httpmap.Listing {
	d.t.Helper()
	return listingAt(d.t, d.http)
}

// listingAt fetches and decodes the JSON listing over the HTTP socket sock.
func listingAt(t testing.TB, sock string) httpmap.Listing {
	t.Helper()
	var l httpmap.Listing
	if err := json.Unmarshal([]byte(jsonListingAt(t, sock)), &l); err != nil {
		t.Fatal(err)
	}
	return l
}

// namedOf counts the named services (not RPC programs) of uid in l.
func namedOf(l httpmap.Listing, uid uint32) int {
	n := 0
	for _, in := range l.Instances {
		if in.RPC == nil && in.UID != nil && *in.UID == uid {
			n++
		}
	}
	return n
}

// pidfdsOf counts the pidfds process pid holds.
func pidfdsOf(t *testing.T, pid int) int {
	t.Helper()
	n, err := descriptorsOf(pid)
	if err != nil {
		t.Fatal(err)
	}
	return n.pidfds
}

// descriptorCount is what a process holds open, by kind.
type descriptorCount struct {
	total, sockets, pidfds int
}

// descriptorsOf counts the descriptors process pid holds.
func descriptorsOf(pid int) (descriptorCount, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return descriptorCount{}, err
	}
	n := descriptorCount{total: len(ents)}
	for _, e := range ents {
		switch l, _ := os.Readlink(filepath.Join(dir, e.Name())); {
		case strings.HasPrefix(l, "socket:"):
			n.sockets++
		case l == "anon_inode:[pidfd]":
			n.pidfds++
		}
	}
	return n, nil
}
