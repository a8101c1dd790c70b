package health

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

var (
	owner = registry.Caller{Transport: registry.Local, Cred: &registry.Cred{UID: 1000, GID: 1000, PID: 10}}
	other = registry.Caller{Transport: registry.Local, Cred: &registry.Cred{UID: 1001, GID: 1001, PID: 11}}
	proc  = registry.Process{PID: 10, UID: 1000, GID: 1000, Start: 100}
)

// patience bounds every wait for a check to notice something: far longer
// than the checks take, for a loaded machine.
const patience = 30 * time.Second

// run starts a Checker of reg and stops it at the end of the test.
func run(t *testing.T, reg *registry.Registry, cfg Config) *Checker {
	t.Helper()
	c := New(reg, cfg)
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	t.Cleanup(func() {
		c.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return c
}

func register(t *testing.T, reg *registry.Registry, s registry.Service) registry.Service {
	t.Helper()
	added, err := reg.RegisterNamed(owner, proc, []registry.Service{s})
	if err != nil || len(added) != 1 {
		t.Fatalf("register %+v: %v", s, err)
	}
	return added[0]
}

// waitStatus waits until name's one instance has the status a check
// found (not the one it registered with), and returns it.
func waitStatus(t *testing.T, reg *registry.Registry, name string, want registry.Status) registry.Service {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		s := reg.LookupNamed(name)
		if len(s) == 1 && s[0].Health.Status == want && s[0].Health.Output != "not checked yet" {
			return s[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %+v, not %v after %v", name, s, want, patience)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTTL checks that a registration with a TTL turns critical when it is
// not refreshed, recovers when it is, and that a refresh that changes
// nothing wakes no watcher.
func TestTTL(t *testing.T) {
	reg := registry.New(registry.Options{})
	c := run(t, reg, Config{})
	register(t, reg, registry.Service{Name: "ttl.example.com", Network: netid.TCP, Port: 9, Checks: registry.Checks{TTL: time.Second}})
	if s := reg.LookupNamed("ttl.example.com")[0]; s.Health.Status != registry.Passing {
		t.Fatalf("a new TTL registration is %v", s.Health.Status)
	}
	s := waitStatus(t, reg, "ttl.example.com", registry.Critical)
	if s.Health.Output == "" {
		t.Error("critical without saying why")
	}
	got, err := c.Refresh(owner, "TTL.example.com", registry.Passing, "back")
	if err != nil || len(got) != 1 || got[0].Health.Status != registry.Passing {
		t.Fatalf("Refresh: %+v, %v", got, err)
	}
	if s := reg.LookupNamed("ttl.example.com")[0]; s.Health.Status != registry.Passing || s.Health.Output != "back" {
		t.Fatalf("after refresh: %+v", s.Health)
	}
	index, woke := reg.Watch()
	if _, err := c.Refresh(owner, "ttl.example.com", registry.Passing, "still fine"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-woke:
		t.Errorf("a refresh that changed nothing woke a watcher (index %d -> %d)", index, reg.Index())
	default:
	}
	if _, err := c.Refresh(owner, "ttl.example.com", registry.Warning, "slow"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, reg, "ttl.example.com", registry.Warning)
}

// TestRefreshRefused checks who may refresh what.
func TestRefreshRefused(t *testing.T) {
	reg := registry.New(registry.Options{})
	c := New(reg, Config{})
	register(t, reg, registry.Service{Name: "ttl.example.com", Network: netid.TCP, Port: 9, Checks: registry.Checks{TTL: time.Minute}})
	register(t, reg, registry.Service{Name: "plain.example.com", Network: netid.TCP, Port: 10})
	tests := []struct {
		name   string
		caller registry.Caller
		svc    string
		want   error
	}{
		{"another user's", other, "ttl.example.com", registry.ErrNotFound},
		{"from the network", registry.Caller{Transport: registry.Network}, "ttl.example.com", registry.ErrNotLocal},
		{"without a ttl", owner, "plain.example.com", ErrNoTTL},
		{"unregistered", owner, "none.example.com", registry.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.Refresh(tc.caller, tc.svc, registry.Passing, ""); !errors.Is(err, tc.want) {
				t.Fatalf("Refresh: %v, want %v", err, tc.want)
			}
		})
	}
	root := registry.Caller{Transport: registry.Local, Cred: &registry.Cred{UID: 0, PID: 1}}
	if _, err := c.Refresh(root, "ttl.example.com", registry.Passing, ""); err != nil {
		t.Errorf("root's refresh: %v", err)
	}
}

// TestTCPCheckAndDeregisterAfter checks that a TCP check finds a
// listening port passing, a closed one critical, and that
// deregister_after then removes the registration and says so.
func TestTCPCheckAndDeregisterAfter(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	reg := registry.New(registry.Options{})
	var mu sync.Mutex
	var removed []registry.Service
	causes := &removals{}
	run(t, reg, Config{Removed: func(s []registry.Service) {
		mu.Lock()
		removed = append(removed, s...)
		mu.Unlock()
	}, Observer: causes})
	s := register(t, reg, registry.Service{Name: "tcp.example.com", Network: netid.TCP, Port: port,
		Checks: registry.Checks{TCP: true, Interval: time.Second, DeregisterAfter: 2 * time.Second}})
	if s.Health.Status != registry.Critical {
		t.Errorf("before its first check: %v, want critical", s.Health.Status)
	}
	waitStatus(t, reg, "tcp.example.com", registry.Passing)
	ln.Close()
	dead := waitStatus(t, reg, "tcp.example.com", registry.Critical)
	t.Logf("critical: %s", dead.Health.Output)
	deadline := time.Now().Add(patience)
	// Removed is told after the registry has changed: wait for both.
	told := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(removed) > 0
	}
	for len(reg.LookupNamed("tcp.example.com")) > 0 || !told() {
		if time.Now().After(deadline) {
			t.Fatal("still registered, or Removed not told, long after deregister_after")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(removed) != 1 || removed[0].Name != "tcp.example.com" {
		t.Errorf("Removed told %+v", removed)
	}
	if got := causes.list(); !slices.Equal(got, []string{"named " + CauseCritical}) {
		t.Errorf("Observer told of removals %q, want one named, critical", got)
	}
	events, counts := reg.RecentEvents()
	if counts.Named != 1 || len(events) != 1 {
		t.Fatalf("removals %+v %+v, want one named", events, counts)
	}
	t.Logf("removal: %s", events[0].Reason)
}

// TestHTTPCheck checks the HTTP check's reading of status codes, and that
// it follows no redirect.
func TestHTTPCheck(t *testing.T) {
	var elsewhere atomic.Bool
	away := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Store(true) }))
	defer away.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusNoContent)
		case "/busy":
			w.WriteHeader(http.StatusTooManyRequests)
		case "/away":
			http.Redirect(w, r, away.URL+"/", http.StatusFound)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	eps := serviceEndpoints(registry.Service{Network: netid.TCP, Port: uint16(port)})
	tests := []struct {
		path string
		want registry.Status
	}{
		{"/ok", registry.Passing},
		{"/busy", registry.Warning},
		{"/down", registry.Critical},
		{"/away", registry.Critical},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			defer cancel()
			h := probeHTTP(ctx, eps, tc.path)
			if h.Status != tc.want {
				t.Errorf("%s: %+v, want %v", tc.path, h, tc.want)
			}
		})
	}
	if elsewhere.Load() {
		t.Error("the check followed a redirect")
	}
}

// rpcServer serves program 300100 version 2 (NULL only) over UDP, TCP
// and an AF_UNIX socket, as a real RPC service does, until the test ends.
func rpcServer(t *testing.T) (udp, tcp netip.AddrPort, sock string) {
	t.Helper()
	var mux oncrpc.ServeMux
	mux.HandleFunc(300100, 2, 0, func(w oncrpc.ReplyWriter, c *oncrpc.Call) { w.WriteReply(xdr.Accepted(c.XID, xdr.Success), nil) })
	srv := &oncrpc.Server{Handler: &mux}
	ctx, cancel := context.WithCancel(context.Background())
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sock = t.TempDir() + "/rpc.sock"
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { srv.ServeUDP(ctx, uc, "udp") })
	wg.Go(func() { srv.ServeStream(ctx, tl, "tcp") })
	wg.Go(func() { srv.ServeStream(ctx, ul, "local") })
	t.Cleanup(func() {
		cancel()
		uc.Close()
		tl.Close()
		ul.Close()
		wg.Wait()
	})
	return uc.LocalAddr().(*net.UDPAddr).AddrPort(), tl.Addr().(*net.TCPAddr).AddrPort(), sock
}

// TestRPCCheck runs NULL calls against a real RPC service, for named
// services over each transport and for RPC registrations.
func TestRPCCheck(t *testing.T) {
	udp, tcp, sock := rpcServer(t)
	reg := registry.New(registry.Options{})
	run(t, reg, Config{RPCInterval: time.Second, Interval: time.Second})
	named := []struct {
		svc  registry.Service
		want registry.Status
	}{
		{registry.Service{Name: "udp.example.com", Network: netid.UDP, Port: udp.Port(), Checks: registry.Checks{RPC: true, RPCProg: 300100, RPCVers: 2}}, registry.Passing},
		{registry.Service{Name: "tcp.example.com", Network: netid.TCP, Port: tcp.Port(), Checks: registry.Checks{RPC: true, RPCProg: 300100}}, registry.Passing},
		{registry.Service{Name: "sock.example.com", Network: netid.Unix, Path: sock, Checks: registry.Checks{RPC: true, RPCProg: 300100, RPCVers: 2}}, registry.Passing},
		{registry.Service{Name: "wrongvers.example.com", Network: netid.TCP, Port: tcp.Port(), Checks: registry.Checks{RPC: true, RPCProg: 300100, RPCVers: 3}}, registry.Critical},
		{registry.Service{Name: "wrongprog.example.com", Network: netid.TCP, Port: tcp.Port(), Checks: registry.Checks{RPC: true, RPCProg: 300101}}, registry.Critical},
	}
	for _, n := range named {
		register(t, reg, n.svc)
	}
	root := registry.Caller{Transport: registry.Internal}
	for _, e := range []registry.Entry{
		{Prog: 300100, Vers: 2, Netid: "udp", Addr: netid.FormatUaddr(udp)},
		{Prog: 300100, Vers: 2, Netid: "tcp", Addr: netid.WildcardUaddr(netid.TCP, tcp.Port())},
		{Prog: 300100, Vers: 2, Netid: "local", Addr: sock},
		{Prog: 300100, Vers: 7, Netid: "tcp", Addr: netid.FormatUaddr(tcp)},
	} {
		if ok, err := reg.Set(root, e); !ok || err != nil {
			t.Fatalf("Set %+v: %v %v", e, ok, err)
		}
	}
	for _, n := range named {
		s := waitStatus(t, reg, n.svc.Name, n.want)
		t.Logf("%s: %v: %s", s.Name, s.Health.Status, s.Health.Output)
	}
	want := map[string]registry.Status{"udp 2": registry.Passing, "tcp 2": registry.Passing, "local 2": registry.Passing, "tcp 7": registry.Critical}
	deadline := time.Now().Add(patience)
	for {
		got := map[string]registry.Status{}
		for _, e := range reg.Entries() {
			got[string(e.Netid)+" "+strconv.Itoa(int(e.Vers))] = e.Health.Status
		}
		if mapsEqual(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("entries' health %v, want %v", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEntryEndpoints checks which RPC registrations may be probed: only
// where the probe stays on this host.
func TestEntryEndpoints(t *testing.T) {
	host := func() []netip.Addr { return []netip.Addr{netip.MustParseAddr("192.0.2.7")} }
	tests := []struct {
		netid, addr string
		want        string // "" when it may not be probed
	}{
		{"tcp", "0.0.0.0.8.1", "tcp 127.0.0.1:2049"},
		{"udp6", "::.8.1", "udp [::1]:2049"},
		{"tcp", "127.0.0.1.8.1", "tcp 127.0.0.1:2049"},
		{"tcp", "192.0.2.7.8.1", "tcp 192.0.2.7:2049"},
		{"tcp", "198.51.100.1.8.1", ""}, // another host
		{"tcp6", "2001:db8::1.8.1", ""},
		{"local", "/run/rpc.sock", "unix /run/rpc.sock"},
		{"tcp", "garbage", ""},
		{"tcp", "0.0.0.0.0.0", ""},
		{"ticlts", "x", ""},
	}
	for _, tc := range tests {
		eps, ok := entryEndpoints(registry.Entry{Netid: netid.ID(tc.netid), Addr: tc.addr}, host)
		got := ""
		if ok {
			got = eps[0].network + " " + eps[0].addr
		}
		if got != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.netid, tc.addr, got, tc.want)
		}
	}
}

func mapsEqual(a, b map[string]registry.Status) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestUncheckedEntriesPass checks that an RPC registration's status from
// checks no longer made (a restart without --rpc-check-interval) does not
// stand: it is passing again.
func TestUncheckedEntriesPass(t *testing.T) {
	reg := registry.New(registry.Options{})
	e := registry.Entry{Prog: 300100, Vers: 2, Netid: "tcp", Addr: "0.0.0.0.8.1", Health: registry.Health{Status: registry.Critical, Output: "rpc: refused"}}
	reg.Restore([]registry.Entry{e}, nil)
	run(t, reg, Config{})
	deadline := time.Now().Add(patience)
	for {
		got, _ := reg.LookupExact(300100, 2, "tcp")
		if got.Health.Status == registry.Passing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("entry still %+v", got.Health)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removals is an Observer that lists the removals it is told of.
type removals struct {
	mu   sync.Mutex
	told []string
}

func (r *removals) Removed(kind, cause string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.told = append(r.told, kind+" "+cause)
}

func (r *removals) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.told)
}
