package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/internal/etcdtest"
	"github.com/portmapd/portmapd/internal/netns"
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/netid/ifaddrs"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

// waitTimeout bounds every wait: generous, since the machine may be
// loaded; a pass never waits for it.
const waitTimeout = 30 * time.Second

// testTTL is the leases' in these tests: short, so that expiry is seen
// soon.
const testTTL = 2 * time.Second

// host is one simulated host: a registry and its mirror.
type host struct {
	t      *testing.T
	reg    *registry.Registry
	m      *Mirror
	log    *netns.Output
	cancel context.CancelFunc
	done   chan struct{}
}

// addrsOf returns a Source of the given addresses, on an interface that
// is up, with loopback's beside them.
func addrsOf(addrs ...string) ifaddrs.Source {
	list := []ifaddrs.Addr{{Prefix: netip.MustParsePrefix("127.0.0.1/8"), Name: "lo", Up: true, Loopback: true}}
	for _, a := range addrs {
		list = append(list, ifaddrs.Addr{Prefix: netip.MustParsePrefix(a), Name: "eth0", Up: true})
	}
	return func(netip.Addr) ([]ifaddrs.Addr, error) { return list, nil }
}

func newHost(t *testing.T, srv *etcdtest.Server, name string, reg *registry.Registry, opts ...func(*Config)) *host {
	t.Helper()
	if reg == nil {
		reg = registry.New(registry.Options{})
	}
	lb := &netns.Output{}
	cfg := Config{Endpoints: []string{srv.Endpoint}, Host: name, TTL: testTTL, Timeout: 2 * time.Second,
		Interfaces: addrsOf("192.0.2.1/24", "fe80::1/64"), Logger: slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, o := range opts {
		o(&cfg)
	}
	m, err := New(reg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &host{t: t, reg: reg, m: m, log: lb}
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			t.Logf("log of %s:\n%s", name, lb.String())
		}
	})
	return h
}

// start runs the mirror until stop.
func (h *host) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go func() {
		defer close(h.done)
		if err := h.m.Run(ctx); err != nil {
			h.t.Error(err)
		}
	}()
}

// stop ends the mirror as a killed daemon's ends: its lease is left to
// expire.
func (h *host) stop() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
		h.cancel = nil
	}
}

func local(uid uint32, pid int32) registry.Caller {
	return registry.Caller{Transport: registry.Local, Cred: &registry.Cred{UID: uid, GID: uid, PID: pid}}
}

func proc(uid uint32, pid int32) registry.Process {
	return registry.Process{PID: pid, UID: uid, GID: uid, Start: uint64(pid) * 10, Exe: "/usr/bin/svc"}
}

// register registers name on port over TCP for a process of uid 1000.
func (h *host) register(name string, port uint16, pid int32) {
	h.t.Helper()
	if _, err := h.reg.RegisterNamed(local(1000, pid), proc(1000, pid), []registry.Service{{Name: name, Network: netid.TCP, Port: port}}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *host) deregister(name string) {
	h.t.Helper()
	if _, err := h.reg.DeregisterName(local(1000, 0), name); err != nil {
		h.t.Fatal(err)
	}
}

// lookup asks through the mirror m (which must be running).
func lookup(t *testing.T, m *Mirror, names ...string) []httpmap.FleetInstance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ans, err := m.Lookup(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	return ans.Instances
}

// where lists the instances as "host:port", sorted.
func where(ins []httpmap.FleetInstance) []string {
	var out []string
	for _, in := range ins {
		out = append(out, in.Host+":"+in.Port)
	}
	slices.Sort(out)
	return out
}

// waitWhere waits until a lookup of name through m finds exactly want.
func waitWhere(t *testing.T, m *Mirror, name string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	var got []string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ans, err := m.Lookup(ctx, []string{name})
		cancel()
		if err == nil {
			if got = where(ans.Instances); slices.Equal(got, want) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("lookup of %s: %v, want %v", name, got, want)
}

// keysOf returns the keys under prefix with their leases.
func keysOf(t *testing.T, c *clientv3.Client, prefix string) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	resp, err := c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = kv.Lease
	}
	return out
}

// TestPublishAndLookup publishes two hosts' registrations and looks them
// up: each instance with its host and the host's addresses, nothing
// other hosts may not see (an AF_UNIX socket, a pid), RPC programs by
// number, not the portmapper's own; a removal is gone from etcd.
func TestPublishAndLookup(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a := newHost(t, srv, "alpha", nil)
	b := newHost(t, srv, "Beta", nil, func(c *Config) { c.Interfaces = addrsOf("192.0.2.2/24") })
	a.register("backup.example.com", 9000, 41)
	if _, err := a.reg.RegisterNamed(local(1000, 42), proc(1000, 42), []registry.Service{{Name: "backup.example.com", Network: netid.Unix, Path: "/run/backup.sock"}}); err != nil {
		t.Fatal(err)
	}
	internal := registry.Caller{Transport: registry.Internal}
	for _, e := range []registry.Entry{
		{Prog: xdr.PmapProg, Vers: 2, Netid: netid.TCP, Addr: "0.0.0.0.0.111"},
		{Prog: 100003, Vers: 3, Netid: netid.TCP, Addr: "0.0.0.0.8.1"},
		{Prog: 100003, Vers: 3, Netid: netid.Local, Addr: "/run/nfs.sock"},
	} {
		if _, err := a.reg.Set(internal, e); err != nil {
			t.Fatal(err)
		}
	}
	a.start()
	b.start()
	b.register("backup.example.com", 9100, 43)
	waitWhere(t, a.m, "backup.example.com", "alpha:9000", "beta:9100")
	waitWhere(t, b.m, "100003.oncrpc.alt", "alpha:2049")

	ins := lookup(t, b.m, "Backup.Example.COM")
	for _, in := range ins {
		if in.PID != 0 || in.StartTime != 0 || in.GID != nil {
			t.Errorf("published with its process: %+v", in)
		}
		if in.Protocol != netid.TCP {
			t.Errorf("published an instance other hosts cannot reach: %+v", in)
		}
		if in.UID == nil || *in.UID != 1000 {
			t.Errorf("owner: %+v", in)
		}
	}
	if got := ins[0].Addresses; !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Errorf("alpha's addresses: %v, want only the one other hosts reach", got)
	}
	if got := lookup(t, a.m, "portmapper.oncrpc.alt", "100000.oncrpc.alt"); len(got) != 0 {
		t.Errorf("the portmapper's own entries were published: %v", where(got))
	}
	all := lookup(t, a.m)
	if got := where(all); !slices.Equal(got, []string{"alpha:2049", "alpha:9000", "beta:9100"}) {
		t.Errorf("every instance: %v", got)
	}

	a.deregister("backup.example.com")
	waitWhere(t, b.m, "backup.example.com", "beta:9100")
	for k := range keysOf(t, srv.Client(), "/portmap/") {
		if strings.Contains(k, "backup.example.com") && strings.Contains(k, "alpha") {
			t.Errorf("key of a removed registration left: %s", k)
		}
	}
}

// TestOutageCatchUp stops etcd, changes the registry, starts etcd again:
// the mirror writes the changes it missed, from the index etcd held,
// under the lease it held (etcd keeps leases across its restarts),
// while the registry took its changes without waiting.
func TestOutageCatchUp(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a := newHost(t, srv, "alpha", nil)
	a.register("old.example.com", 9000, 41)
	a.start()
	waitWhere(t, a.m, "old.example.com", "alpha:9000")
	before := keysOf(t, srv.Client(), "/portmap/alpha/")

	srv.Stop()
	start := time.Now()
	a.register("new.example.com", 9001, 42)
	a.deregister("old.example.com")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("registering while etcd is down took %v", d)
	}
	srv.Restart()
	waitWhere(t, a.m, "new.example.com", "alpha:9001")
	waitWhere(t, a.m, "old.example.com")
	if n := strings.Count(a.log.String(), "published the host's entries"); n != 1 {
		t.Errorf("the host was compared whole %d times; want once, at the start:\n%s", n, a.log.String())
	}
	after := keysOf(t, srv.Client(), "/portmap/alpha/")
	if before["/portmap/alpha/_host"] != after["/portmap/alpha/_host"] {
		t.Errorf("lease changed across a short outage: %x, then %x", before["/portmap/alpha/_host"], after["/portmap/alpha/_host"])
	}
}

// TestStartWhileEtcdIsDown starts the mirror with etcd down: the client
// it makes (which logs in when a user is configured, and so waits for
// etcd) is retried like any write, the daemon it serves keeps running
// (Run does not return, which would stop it), and once etcd is back the
// host is published.
func TestStartWhileEtcdIsDown(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	srv.Stop()
	a := newHost(t, srv, "alpha", nil, func(c *Config) { c.Timeout = time.Second })
	a.register("early.example.com", 9000, 41)
	a.start()
	eventuallyLogs(t, a.log, "cannot publish to etcd")
	select {
	case <-a.done:
		t.Fatal("Run ended while etcd was down")
	default:
	}
	srv.Restart()
	waitWhere(t, a.m, "early.example.com", "alpha:9000")
}

// TestHistoryOverrun loses more changes during an outage than the
// registry's history keeps: the mirror compares the whole host instead,
// and etcd ends up holding what the registry holds.
func TestHistoryOverrun(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a := newHost(t, srv, "alpha", registry.New(registry.Options{FeedSize: 2}))
	a.register("gone.example.com", 9000, 41)
	a.start()
	waitWhere(t, a.m, "gone.example.com", "alpha:9000")
	srv.Stop()
	a.deregister("gone.example.com")
	for i := range 5 {
		a.register("n"+string(rune('a'+i))+".example.com", uint16(9100+i), int32(50+i))
	}
	srv.Restart()
	waitWhere(t, a.m, "ne.example.com", "alpha:9104")
	waitWhere(t, a.m, "gone.example.com")
	eventuallyLogs(t, a.log, "comparing the whole host")
	if got := where(lookup(t, a.m)); len(got) != 5 {
		t.Errorf("after the overrun: %v", got)
	}
}

// TestLeaseExpiry stops a mirror without a word to etcd, as a killed
// daemon: its host's entries go when the lease expires, and its
// by-name copies with them.
func TestLeaseExpiry(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a := newHost(t, srv, "alpha", nil)
	b := newHost(t, srv, "beta", nil)
	a.register("svc.example.com", 9000, 41)
	b.register("svc.example.com", 9000, 41)
	a.start()
	b.start()
	waitWhere(t, b.m, "svc.example.com", "alpha:9000", "beta:9000")
	a.stop()
	waitWhere(t, b.m, "svc.example.com", "beta:9000")
	for k := range keysOf(t, srv.Client(), "/portmap/") {
		if strings.Contains(k, "alpha") {
			t.Errorf("key of an expired host left: %s", k)
		}
	}
}

// TestRestartTakesLeaseOver restarts a mirror within the TTL: it takes
// its lease over, and rewrites nothing that did not change.
func TestRestartTakesLeaseOver(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	reg := registry.New(registry.Options{})
	a := newHost(t, srv, "alpha", reg, func(c *Config) { c.TTL = 20 * time.Second })
	a.register("svc.example.com", 9000, 41)
	a.start()
	waitWhere(t, a.m, "svc.example.com", "alpha:9000")
	c := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	before, err := c.Get(ctx, "/portmap/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	a.stop()
	again := newHost(t, srv, "alpha", reg, func(c *Config) { c.TTL = 20 * time.Second })
	again.start()
	eventuallyLogs(t, again.log, "lease_taken_over=true keys_written=0")
	after, err := c.Get(ctx, "/portmap/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Kvs) != len(before.Kvs) || len(after.Kvs) != 3 {
		t.Fatalf("keys: %d before, %d after", len(before.Kvs), len(after.Kvs))
	}
	for i, kv := range after.Kvs {
		if kv.ModRevision != before.Kvs[i].ModRevision {
			t.Errorf("%s was written again", kv.Key)
		}
	}
}

// TestEtcdLosesItsData restarts etcd without its data: the lease is
// gone, and the mirror publishes everything under a new one.
func TestEtcdLosesItsData(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a := newHost(t, srv, "alpha", nil)
	a.register("svc.example.com", 9000, 41)
	a.start()
	waitWhere(t, a.m, "svc.example.com", "alpha:9000")
	srv.Kill()
	if err := os.RemoveAll(srv.Dir); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	waitWhere(t, a.m, "svc.example.com", "alpha:9000")
}

// TestNotRunning answers a lookup before the mirror runs with the
// store's unavailability, which the HTTP face turns into 503.
func TestNotRunning(t *testing.T) {
	m, err := New(registry.New(registry.Options{}), Config{Endpoints: []string{"http://127.0.0.1:1"}, Host: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Lookup(context.Background(), nil)
	if !errors.Is(err, httpmap.ErrFleetUnavailable) {
		t.Fatalf("lookup before Run: %v", err)
	}
}

func eventuallyLogs(t *testing.T, l *netns.Output, s string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(l.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("never logged %q", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNew refuses a configuration that cannot work, saying why, and
// reads the TLS files and the password file.
func TestNew(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	// Open to others, which a certificate may be and a password not.
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(junk, 0o644); err != nil {
		t.Fatal(err)
	}
	password := filepath.Join(dir, "password")
	if err := os.WriteFile(password, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := registry.New(registry.Options{})
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{"no endpoints", Config{Host: "a"}, ErrBadConfig},
		{"plain", Config{Endpoints: []string{"http://127.0.0.1:2379"}, Host: "a"}, nil},
		{"bare host:port", Config{Endpoints: []string{"127.0.0.1:2379"}, Host: "a"}, nil},
		{"https with the system's roots", Config{Endpoints: []string{"https://etcd:2379"}, Host: "a"}, nil},
		{"TLS files with http", Config{Endpoints: []string{"http://etcd:2379"}, Host: "a", CAFile: junk}, ErrBadConfig},
		{"a CA that is no certificate", Config{Endpoints: []string{"https://etcd:2379"}, Host: "a", CAFile: junk}, ErrBadConfig},
		{"a missing CA", Config{Endpoints: []string{"https://etcd:2379"}, Host: "a", CAFile: filepath.Join(dir, "none")}, ErrBadConfig},
		{"a certificate without its key", Config{Endpoints: []string{"https://etcd:2379"}, Host: "a", CertFile: junk}, ErrBadConfig},
		{"another scheme", Config{Endpoints: []string{"ftp://etcd:2379"}, Host: "a"}, ErrBadConfig},
		{"a prefix without /", Config{Endpoints: []string{"http://etcd:2379"}, Host: "a", Prefix: "portmap"}, ErrBadConfig},
		{"a TTL under a second", Config{Endpoints: []string{"http://etcd:2379"}, Host: "a", TTL: time.Millisecond}, ErrBadConfig},
		{"a transaction too small", Config{Endpoints: []string{"http://etcd:2379"}, Host: "a", MaxTxnOps: 2}, ErrBadConfig},
		{"a host with a slash", Config{Endpoints: []string{"http://etcd:2379"}, Host: "a/b"}, ErrBadHost},
		{"a host like the by-name keys", Config{Endpoints: []string{"http://etcd:2379"}, Host: "_name"}, ErrBadHost},
		{"a user and its password", Config{Endpoints: []string{"http://etcd:2379"}, Host: "a", Username: "a", PasswordFile: password}, nil},
		{"a user without a password", Config{Endpoints: []string{"http://etcd:2379"}, Host: "a", Username: "a"}, ErrBadConfig},
		{"a password without a user", Config{Endpoints: []string{"http://etcd:2379"}, Host: "a", PasswordFile: password}, ErrBadConfig},
		{"a password file open to others", Config{Endpoints: []string{"http://etcd:2379"}, Host: "a", Username: "a", PasswordFile: junk}, ErrBadPasswordFile},
		{"a missing password file", Config{Endpoints: []string{"http://etcd:2379"}, Host: "a", Username: "a", PasswordFile: filepath.Join(dir, "none")}, ErrBadConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(reg, tt.cfg)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("New: %v, want %v", err, tt.want)
			}
		})
	}
}

// TestKeys reads back the keys it spells, and nothing else.
func TestKeys(t *testing.T) {
	k := keys{"/portmap", "alpha"}
	if name, id, ok := k.splitInstance(k.instance("svc.example.com", "tcp.9000.abc")); !ok || name != "svc.example.com" || id != "tcp.9000.abc" {
		t.Errorf("splitInstance: %q %q %v", name, id, ok)
	}
	for _, key := range []string{k.hostRecord(), "/portmap/alpha/x", "/portmap/alphax/a/b", "/portmap/alpha/a/b/c"} {
		if _, _, ok := k.splitInstance(key); ok {
			t.Errorf("splitInstance(%q) ok", key)
		}
	}
	name, host, id, ok := splitByName("/portmap", k.byName("svc.example.com", "3.tcp"))
	if !ok || name != "svc.example.com" || host != "alpha" || id != "3.tcp" {
		t.Errorf("splitByName: %q %q %q %v", name, host, id, ok)
	}
	for _, key := range []string{"/portmap/_name/a/b", "/portmap/_name/a/b/c/d", "/portmap/alpha/_host", "/portmap/_name//b/c"} {
		if _, _, _, ok := splitByName("/portmap", key); ok {
			t.Errorf("splitByName(%q) ok", key)
		}
	}
}

// TestSmallTransactions publishes more than one transaction holds, at a
// resync and at a catch-up: each key goes with its by-name copy, and
// every registration arrives.
func TestSmallTransactions(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a := newHost(t, srv, "alpha", nil, func(c *Config) { c.MaxTxnOps = 5 })
	for i := range 7 {
		a.register(fmt.Sprintf("s%d.example.com", i), uint16(9000+i), int32(40+i))
	}
	a.start()
	waitWhere(t, a.m, "s6.example.com", "alpha:9006")
	for i := range 7 {
		a.register(fmt.Sprintf("t%d.example.com", i), uint16(9100+i), int32(60+i))
	}
	waitWhere(t, a.m, "t6.example.com", "alpha:9106")
	if got := lookup(t, a.m); len(got) != 14 {
		t.Errorf("%d instances published, want 14: %v", len(got), where(got))
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	resp, err := srv.Client().Get(ctx, "/portmap/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	// The revision a key was written at is its transaction's.
	written := map[string]int64{}
	for _, kv := range resp.Kvs {
		written[string(kv.Key)] = kv.ModRevision
	}
	for k, rev := range written {
		if name, id, ok := (keys{"/portmap", "alpha"}).splitInstance(k); ok {
			if copyRev := written[(keys{"/portmap", "alpha"}).byName(name, id)]; copyRev != rev {
				t.Errorf("%s written at revision %d, its by-name copy at %d", k, rev, copyRev)
			}
		}
	}
	if len(written) != 29 {
		t.Errorf("%d keys, want 29", len(written))
	}
}
