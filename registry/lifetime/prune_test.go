package lifetime

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid/ifaddrs"
	"github.com/portmapd/portmapd/registry"
)

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int32 {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return int32(cmd.Process.Pid)
}

func TestPrunePolicy(t *testing.T) {
	self := int32(os.Getpid())
	dead := deadPID(t)
	const ownNS, otherNS = 3, 4580
	localIn := func(pid int32, ns uint64) registry.Caller {
		return registry.Caller{Transport: registry.Local, Cred: &registry.Cred{UID: 0, PID: pid, NetNS: ns}}
	}
	local := func(pid int32) registry.Caller { return localIn(pid, 0) }
	loopback := registry.Caller{Transport: registry.Network, Addr: netip.MustParseAddrPort("127.0.0.1:4000")}
	internal := registry.Caller{Transport: registry.Internal}
	type want []bool // present after each check
	for _, tc := range []struct {
		name   string
		caller registry.Caller
		entry  registry.Entry
		bound  bool
		// age is how old the registration is at the first check.
		age  time.Duration
		want want
	}{
		{"live process, port free", local(self), registry.Entry{Netid: "tcp", Addr: "0.0.0.0.4.1"}, false, time.Minute, want{true, true, true}},
		{"exited process, port bound", local(dead), registry.Entry{Netid: "tcp", Addr: "0.0.0.0.4.1"}, true, time.Minute, want{true, true, true}},
		{"exited process, port free", local(dead), registry.Entry{Netid: "udp6", Addr: "::.4.1"}, false, time.Minute, want{false}},
		{"exited process, within grace", local(dead), registry.Entry{Netid: "tcp", Addr: "0.0.0.0.4.1"}, false, 0, want{true}},
		{"exited process, local path free", local(dead), registry.Entry{Netid: "local", Addr: "/nonexistent/x.sock"}, false, time.Minute, want{false}},
		{"no process, port bound", loopback, registry.Entry{Netid: "udp", Addr: "0.0.0.0.4.1"}, true, time.Minute, want{true, true, true}},
		{"no process, port free: two checks", loopback, registry.Entry{Netid: "udp", Addr: "0.0.0.0.4.1"}, false, time.Minute, want{true, false}},
		{"another host's address", local(dead), registry.Entry{Netid: "tcp", Addr: "192.0.2.7.4.1"}, false, time.Minute, want{true, true, true}},
		{"loopback address", local(dead), registry.Entry{Netid: "tcp", Addr: "127.0.0.1.4.1"}, false, time.Minute, want{false}},
		{"the portmapper's own", internal, registry.Entry{Prog: 100000, Vers: 2, Netid: "tcp", Addr: "0.0.0.0.0.111"}, false, time.Minute, want{true, true, true}},
		{"exited process of this namespace, port free", localIn(dead, ownNS), registry.Entry{Netid: "tcp", Addr: "0.0.0.0.4.1"}, false, time.Minute, want{false}},
		{"exited process of another namespace, port free", localIn(dead, otherNS), registry.Entry{Netid: "tcp", Addr: "0.0.0.0.4.1"}, false, time.Minute, want{true, true, true}},
		{"unknown netid", local(dead), registry.Entry{Netid: "rdma", Addr: "0.0.0.0.4.1"}, false, time.Minute, want{true, true, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1_800_000_000, 0)
			reg := registry.New(registry.Options{Now: func() time.Time { return now }})
			e := tc.entry
			if e.Prog == 0 {
				e.Prog, e.Vers = 400000, 1
			}
			if _, err := reg.Set(tc.caller, e); errors.Is(err, registry.ErrRefused) {
				// SET refuses an unknown netid now; rpcbind's
				// warm-start files can still bring one back.
				e.Owner, e.PID, e.NetNS, e.Registered = tc.caller.Owner(), tc.caller.PID(), tc.caller.NetNS(), now
				reg.Restore([]registry.Entry{e}, nil)
			} else if err != nil {
				t.Fatal(err)
			}
			clock := now.Add(tc.age)
			table := &Table{ports: map[portKey]bool{}, paths: map[string]bool{}}
			if tc.bound {
				table.ports[portKey{TCP, 0x401}] = true
				table.ports[portKey{UDP, 0x401}] = true
			}
			p := newPruner(reg, pruneConfig{
				Grace: 30 * time.Second,
				Now:   func() time.Time { return clock },
				Table: func() (*Table, error) { return table, nil },
				Interfaces: func(netip.Addr) ([]ifaddrs.Addr, error) {
					return []ifaddrs.Addr{{Prefix: netip.MustParsePrefix("198.51.100.1/24"), Index: 2, Name: "eth0", Up: true}}, nil
				},
				NetNS: ownNS,
			})
			// The registration time is the fake clock's; a real
			// process started long before it, so "running" holds.
			for i, w := range tc.want {
				p.check()
				_, got := reg.LookupExact(e.Prog, e.Vers, e.Netid)
				if got != w {
					t.Fatalf("after check %d: present %v, want %v", i+1, got, w)
				}
			}
			events, n := reg.RecentEvents()
			if removed := !tc.want[len(tc.want)-1]; removed != (n == registry.Removals{RPC: 1} && len(events) == 1) {
				t.Errorf("events %+v, count %d", events, n)
			}
		})
	}
}

// TestPrunedLogLine checks that the line logged for a removal names what
// is known and leaves out what is not: no "pid=0" for a registration
// without a process, and no namespace cookie, which is the daemon's own
// for every registration it prunes.
func TestPrunedLogLine(t *testing.T) {
	dead := deadPID(t)
	loopback := registry.Caller{Transport: registry.Network, Addr: netip.MustParseAddrPort("127.0.0.1:4000")}
	local := registry.Caller{Transport: registry.Local, Cred: &registry.Cred{UID: 1000, PID: dead, NetNS: 3}}
	for _, tc := range []struct {
		name        string
		caller      registry.Caller
		want, avoid []string
	}{
		{"no process", loopback, []string{"prog=400000", "netid=udp", "addr=0.0.0.0.4.1", "owner=unknown", `reason="no registering process is known`}, []string{"pid=", "netns="}},
		{"exited process", local, []string{"prog=400000", "owner=1000", "pid=" + strconv.Itoa(int(dead)), `reason="registering process`}, []string{"netns="}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1_800_000_000, 0)
			reg := registry.New(registry.Options{Now: func() time.Time { return now }})
			e := registry.Entry{Prog: 400000, Vers: 1, Netid: "udp", Addr: "0.0.0.0.4.1"}
			if _, err := reg.Set(tc.caller, e); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			p := newPruner(reg, pruneConfig{
				Now:    func() time.Time { return now.Add(time.Minute) },
				Table:  func() (*Table, error) { return newTable(), nil },
				NetNS:  3,
				Logger: slog.New(slog.NewTextHandler(&out, nil)),
			})
			for range UnknownMisses {
				p.check()
			}
			line := out.String()
			if strings.Count(line, "pruned registration") != 1 {
				t.Fatalf("want one pruned line, got:\n%s", line)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("line lacks %q: %s", w, line)
				}
			}
			for _, a := range tc.avoid {
				if strings.Contains(line, a) {
					t.Errorf("line has %q: %s", a, line)
				}
			}
		})
	}
}

func TestParseInet(t *testing.T) {
	tcp := []byte(`  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:006F 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   2: 0100007F:2710 0100007F:C351 06 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 100 0 0 10 0
`)
	tb := &Table{ports: map[portKey]bool{}, paths: map[string]bool{}}
	parseInet(tcp, TCP, tb)
	for _, c := range []struct {
		port uint16
		want bool
	}{{111, true}, {8080, true}, {10000, false}, {22, false}} {
		if got := tb.Bound(TCP, c.port); got != c.want {
			t.Errorf("tcp %d bound %v, want %v", c.port, got, c.want)
		}
	}
	unix := []byte(`Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 21812 /run/rpcbind.sock
0000000000000000: 00000003 00000000 00000000 0001 03 21813
`)
	parseUnix(unix, tb)
	if !tb.BoundPath("/run/rpcbind.sock") || tb.BoundPath("/run/other.sock") {
		t.Error("unix paths misread")
	}
	if _, err := ReadTable("/proc"); err != nil {
		t.Errorf("ReadTable(/proc): %v", err)
	}
}
