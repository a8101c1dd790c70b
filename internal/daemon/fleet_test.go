package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/portmapd/portmapd/fleet"
	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/internal/etcdtest"
	"github.com/portmapd/portmapd/internal/netns"
)

// fleetHost is one host of TestFleet: its namespace, its daemon and its
// HTTP socket.
type fleetHost struct {
	name string
	h    *netns.Host
	d    *netns.Proc
	sock string
	addr string
}

// fleetAt looks name up across the fleet through the daemon of f; nil
// when no host publishes it.
func fleetAt(t *testing.T, f *fleetHost, name string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hostTimeout)
	defer cancel()
	ins, err := httpmap.NewLocalClient(f.sock).LookupFleet(ctx, name)
	var he *httpmap.Error
	if errors.As(err, &he) && he.Status == http.StatusNotFound {
		return nil
	}
	if err != nil {
		t.Logf("fleet lookup of %s at %s: %v", name, f.name, err)
		return []string{"error"}
	}
	var out []string
	for _, in := range ins {
		out = append(out, fmt.Sprintf("%s:%s@%s", in.Host, in.Port, strings.Join(in.Addresses, ",")))
	}
	slices.Sort(out)
	return out
}

// waitFleet waits until a fleet lookup of name at f finds exactly want.
func waitFleet(t *testing.T, f *fleetHost, name string, want ...string) {
	t.Helper()
	var got []string
	if !eventually(hostTimeout, func() bool {
		got = fleetAt(t, f, name)
		return slices.Equal(got, want)
	}) {
		t.Fatalf("fleet lookup of %s at %s: %v, want %v", name, f.name, got, want)
	}
}

// TestFleet runs three hosts that publish to one etcd, on a fourth host
// that all of them reach over one bridge, as a site's hosts reach its
// etcd: each finds the others' services with their hosts and addresses,
// never an AF_UNIX socket; a host whose daemon is killed (SIGKILL) is
// gone once its lease expires; and after etcd restarts, the changes made
// while it was away are there. etcd's auth is on: each host logs in as
// its own user, confined as the README says, and one that etcd refuses
// serves its host all the same. The leases are 2 s, so that all of this
// takes seconds.
func TestFleet(t *testing.T) {
	netns.Require(t)
	etcdtest.Require(t)
	portmapd, ctl := tools(t)
	hub := netns.NewHost(t, "etcd")
	// br0 has an address of its own. A bridge without one takes the
	// lowest of its ports' addresses, so a host joining later could
	// change it under the hosts that already talk to etcd: their ARP
	// caches keep the old address, br0 drops what they send to it, and
	// a daemon loses its lease and its lookups time out for the tens of
	// seconds that the stale entry lasts.
	const hubMAC = "02:00:00:00:01:00"
	hub.MustIP("link", "add", "br0", "address", hubMAC, "type", "bridge")
	hub.MustIP("link", "set", "br0", "up")
	hub.AddAddr("br0", "10.77.0.1/24")
	// etcd's auth is on; each host logs in as a user of its own, whose
	// role holds the least the README has an operator grant. (Tokens
	// expiring are fleet's tests'.)
	srv := etcdtest.Start(t, etcdtest.Options{
		Host:    "10.77.0.1",
		Command: hub.Command,
		Dial:    func(_ context.Context, network, addr string) (net.Conn, error) { return hub.Dial(network, addr) },
	})
	srv.EnableAuth()
	secrets := t.TempDir()
	startHost := func(i int, name, password string) *fleetHost {
		t.Helper()
		h := netns.NewHost(t, name)
		l := netns.Connect(t, hub, h)
		// Each port's address is lower than the ports' before it, each
		// one an address that br0 would take if it had none of its own.
		hub.MustIP("link", "set", l.A, "address", fmt.Sprintf("02:00:00:00:00:%02x", 0x10-i))
		hub.MustIP("link", "set", l.A, "master", "br0")
		if got := strings.Fields(run(t, exec.Command("ip", "-n", hub.Name, "-br", "link", "show", "br0"))); len(got) < 3 || got[2] != hubMAC {
			t.Fatalf("br0's address changed as %s joined: %v, want %s", name, got, hubMAC)
		}
		addr := fmt.Sprintf("10.77.0.%d", i+2)
		h.AddAddr(l.B, addr+"/24")
		pwFile := filepath.Join(secrets, name)
		if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		d := h.Start(h.Command(portmapd, "-f", "--etcd", srv.Endpoint, "--etcd-host", name, "--etcd-ttl", "2s", "--etcd-timeout", "2s",
			"--etcd-user", name, "--etcd-password-file", pwFile))
		waitRPC(t, h, d, "127.0.0.1:111")
		return &fleetHost{name: name, h: h, d: d, sock: filepath.Join(h.Run, "portmapd.sock"), addr: addr}
	}
	hosts := make([]*fleetHost, 3)
	for i := range hosts {
		name := fmt.Sprintf("host%d", i+1)
		srv.AddUser(name, name+"-secret", etcdtest.HostGrants(fleet.DefaultPrefix, name)...)
		hosts[i] = startHost(i, name, name+"-secret")
	}
	at := func(i int, port string) string { return fmt.Sprintf("host%d:%s@%s", i+1, port, hosts[i].addr) }
	shared := make([]*netns.Proc, 3)
	for i, f := range hosts {
		shared[i] = f.h.Start(f.h.Command(ctl, "register", "shared.example.com", fmt.Sprint(9001+i), "--", "sleep", "600"))
	}
	only2 := hosts[1]
	only2.h.Start(only2.h.Command(ctl, "register", "only2.example.com", "9100", "--", "sleep", "600"))
	hosts[0].h.Start(hosts[0].h.Command(ctl, "register", "shared.example.com", "/run/shared.sock", "--", "sleep", "600"))

	t.Run("publishing and fleet lookup", func(t *testing.T) {
		for _, f := range hosts {
			waitFleet(t, f, "shared.example.com", at(0, "9001"), at(1, "9002"), at(2, "9003"))
		}
		waitFleet(t, hosts[2], "only2.example.com", at(1, "9100"))
		out := run(t, hosts[0].h.Command(ctl, "lookup", "--fleet", "only2.example.com"))
		if !strings.Contains(out, "host2") || !strings.Contains(out, "9100") || !strings.Contains(out, hosts[1].addr) {
			t.Errorf("portmapctl lookup --fleet:\n%s", out)
		}
		if local := namedAt(t, hosts[2].sock); len(local) != 1 {
			t.Errorf("host3's own listing holds other hosts' services: %v", local)
		}
		// host1's socket instance is in its own listing, never in the
		// fleet's.
		ctx, cancel := context.WithTimeout(context.Background(), hostTimeout)
		defer cancel()
		ins, err := httpmap.NewLocalClient(hosts[0].sock).Lookup(ctx, "shared.example.com")
		if err != nil || len(ins) != 2 {
			t.Errorf("host1's own instances: %v, %v", ins, err)
		}
	})

	t.Run("a host that etcd refuses", func(t *testing.T) {
		// etcd knows the user, not with this password: the daemon
		// serves its host as before, says once why it cannot publish,
		// and answers fleet lookups 503, as when etcd is away.
		srv.AddUser("host4", "host4-secret", etcdtest.HostGrants(fleet.DefaultPrefix, "host4")...)
		refused := startHost(3, "host4", "a-guess")
		refused.h.Start(refused.h.Command(ctl, "register", "refused.example.com", "9300", "--", "sleep", "600"))
		const said = "cannot publish to etcd: it refuses the user's login"
		waitFor(t, "host4 says etcd refuses its login", func() bool { return strings.Contains(refused.d.Output(), said) })
		waitFor(t, "host4 serves its own registration", func() bool {
			_, ok := namedAt(t, refused.sock)["refused.example.com"]
			return ok
		})
		waitRPC(t, refused.h, refused.d, "127.0.0.1:111")
		ctx, cancel := context.WithTimeout(context.Background(), hostTimeout)
		defer cancel()
		_, err := httpmap.NewLocalClient(refused.sock).LookupFleet(ctx, "shared.example.com")
		var he *httpmap.Error
		if !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable {
			t.Errorf("fleet lookup at host4: %v, want HTTP 503", err)
		}
		waitFleet(t, hosts[0], "refused.example.com")
		if n := strings.Count(refused.d.Output(), said); n != 1 {
			t.Errorf("host4 said %d times that etcd refuses it, want once:\n%s", n, refused.d.Output())
		}
		refused.d.Kill()
	})

	t.Run("lease expiry when a daemon is killed", func(t *testing.T) {
		if err := only2.d.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-only2.d.Done()
		waitFleet(t, hosts[0], "only2.example.com")
		waitFleet(t, hosts[2], "shared.example.com", at(0, "9001"), at(2, "9003"))
	})

	t.Run("resync after etcd restarts", func(t *testing.T) {
		srv.Stop()
		shared[2].Kill()
		hosts[0].h.Start(hosts[0].h.Command(ctl, "register", "new.example.com", "9200", "--", "sleep", "600"))
		waitFor(t, "new.example.com is registered on host1", func() bool {
			_, ok := namedAt(t, hosts[0].sock)["new.example.com"]
			return ok
		})
		// Longer than the lease's TTL: the daemon gives its keep-alive
		// up, while etcd keeps the lease across its restart.
		waitFor(t, "host1 finds etcd gone", func() bool {
			return strings.Contains(hosts[0].d.Output(), "cannot publish to etcd")
		})
		srv.Restart()
		waitFleet(t, hosts[2], "new.example.com", at(0, "9200"))
		waitFleet(t, hosts[0], "shared.example.com", at(0, "9001"))
		if out := hosts[0].d.Output(); !strings.Contains(out, "publishing to etcd again") {
			t.Errorf("host1 did not say it publishes again:\n%s", out)
		}
	})
}
