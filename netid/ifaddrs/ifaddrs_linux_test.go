package ifaddrs

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/portmapd/portmapd/internal/netns"
)

// TestReadAgreesWithNet compares Read with the standard library's view of
// the same interfaces, and checks getifaddrs's order: IPv4 before IPv6.
func TestReadAgreesWithNet(t *testing.T) {
	list, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var want []netip.Prefix
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			n := a.(*net.IPNet)
			ip, _ := netip.AddrFromSlice(n.IP)
			ones, _ := n.Mask.Size()
			want = append(want, netip.PrefixFrom(ip.Unmap(), ones))
		}
	}
	var got []netip.Prefix
	seen6 := false
	for _, a := range list {
		got = append(got, a.Prefix)
		if a.Prefix.Addr().Is6() {
			seen6 = true
		} else if seen6 {
			t.Errorf("IPv4 %s listed after an IPv6 address: %v", a.Prefix, list)
		}
		ifc, err := net.InterfaceByIndex(a.Index)
		if err != nil {
			t.Errorf("%s: interface %d: %v", a.Prefix, a.Index, err)
			continue
		}
		if a.Name != ifc.Name || a.Up != (ifc.Flags&net.FlagUp != 0) || a.Loopback != (ifc.Flags&net.FlagLoopback != 0) ||
			a.PointToPoint != (ifc.Flags&net.FlagPointToPoint != 0) || a.Broadcast != (ifc.Flags&net.FlagBroadcast != 0) ||
			a.Multicast != (ifc.Flags&net.FlagMulticast != 0) {
			t.Errorf("%s: %+v, but net says %s %v", a.Prefix, a, ifc.Name, ifc.Flags)
		}
	}
	cmp := func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) }
	slices.SortFunc(got, cmp)
	slices.SortFunc(want, cmp)
	if !slices.Equal(got, want) {
		t.Errorf("Read: %v\nnet:  %v", got, want)
	}
}

// TestTableReadsOnlyWhenNeeded counts the reads of a Table in a namespace
// whose addresses do not change while it runs.
func TestTableReadsOnlyWhenNeeded(t *testing.T) {
	tab, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	reads := 0
	list := []Addr{
		{Prefix: netip.MustParsePrefix("192.0.2.1/24"), Index: 2, Name: "eth0", Up: true},
		{Prefix: netip.MustParsePrefix("fe80::1/64"), Index: 2, Name: "eth0", Up: true},
		{Prefix: netip.MustParsePrefix("192.0.2.2/24"), Index: 3, Name: "eth1"},
		{Prefix: netip.MustParsePrefix("127.0.0.1/8"), Index: 1, Name: "lo", Up: true, Loopback: true},
	}
	tab.read = func() ([]Addr, error) { reads++; return list, nil }
	for _, step := range []struct {
		name  string
		dst   string
		reads int
	}{
		{"first call", "", 1},
		{"nothing announced", "", 1},
		{"an address it has", "192.0.2.1", 1},
		{"a link-local address with its zone", "fe80::1%eth0", 1},
		{"an address it lacks", "192.0.2.9", 2},
		{"an address it has on a link that is down", "192.0.2.2", 3},
		{"the broadcast address of a network it has", "192.0.2.255", 3},
		{"another address on loopback's network", "127.0.0.2", 3},
		{"multicast", "ff02::202", 3},
		{"limited broadcast", "255.255.255.255", 3},
		{"the broadcast address of a network it lacks", "192.0.3.255", 4},
	} {
		var dst netip.Addr
		if step.dst != "" {
			dst = netip.MustParseAddr(step.dst)
		}
		got, err := tab.Addrs(dst)
		if err != nil || len(got) != len(list) || reads != step.reads {
			t.Errorf("%s: %v %v after %d reads, want %d", step.name, got, err, reads, step.reads)
		}
	}
	tab.Close()
	tab.Addrs(netip.Addr{})
	tab.Addrs(netip.Addr{})
	if reads != 6 {
		t.Errorf("a closed Table read %d times in all, want 6 (every call)", reads)
	}
}

// TestTableFollowsTheKernel changes a host's links and addresses after its
// Table is opened; each call sees the kernel's state at once, without
// sleeping or polling.
func TestTableFollowsTheKernel(t *testing.T) {
	h := netns.NewHost(t, "ifa")
	var tab *Table
	in := func(fn func()) {
		t.Helper()
		if err := h.Do(func() error { fn(); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	in(func() {
		var err error
		if tab, err = Open(); err != nil {
			t.Fatal(err)
		}
	})
	defer tab.Close()
	find := func(dst string, prefix string) (Addr, bool) {
		t.Helper()
		var list []Addr
		in(func() {
			var d netip.Addr
			if dst != "" {
				d = netip.MustParseAddr(dst)
			}
			var err error
			if list, err = tab.Addrs(d); err != nil {
				t.Fatal(err)
			}
		})
		p := netip.MustParsePrefix(prefix)
		for _, a := range list {
			if a.Prefix.Addr() == p.Addr() {
				return a, true
			}
		}
		return Addr{}, false
	}
	if a, ok := find("", "127.0.0.1/8"); !ok || !a.Loopback || !a.Up || a.Name != "lo" {
		t.Fatalf("loopback: %+v %v", a, ok)
	}
	// A link that appears after the Table, down, then up.
	h.MustIP("link", "add", "dum0", "type", "veth", "peer", "name", "dum1")
	h.AddAddr("dum0", "10.9.0.1/24")
	if a, ok := find("", "10.9.0.1/24"); !ok || a.Up || a.Name != "dum0" {
		t.Errorf("address on a new link that is down: %+v %v", a, ok)
	}
	h.MustIP("link", "set", "dum0", "up")
	if a, ok := find("", "10.9.0.1/24"); !ok || !a.Up {
		t.Errorf("after the link came up: %+v %v", a, ok)
	}
	// Changed: the same address with another prefix.
	h.DelAddr("dum0", "10.9.0.1/24")
	if a, ok := find("", "10.9.0.1/24"); ok {
		t.Errorf("removed address still listed: %+v", a)
	}
	h.AddAddr("dum0", "10.9.0.1/16")
	if a, ok := find("", "10.9.0.1/16"); !ok || a.Prefix.Bits() != 16 {
		t.Errorf("after the prefix changed: %+v %v", a, ok)
	}
	// IPv6 without DAD: usable before the kernel announces it, so a call
	// that names it must find it.
	h.AddAddr("dum0", "fd00:9::1/64")
	if a, ok := find("fd00:9::1", "fd00:9::1/64"); !ok || a.Prefix.Bits() != 64 {
		t.Errorf("IPv6 address named by the call: %+v %v", a, ok)
	}
	h.DelAddr("dum0", "fd00:9::1/64")
	if a, ok := find("", "fd00:9::1/64"); ok {
		t.Errorf("removed IPv6 address still listed: %+v", a)
	}
	h.MustIP("link", "del", "dum0")
	if a, ok := find("", "10.9.0.1/16"); ok {
		t.Errorf("address of a deleted link still listed: %+v", a)
	}
}

func BenchmarkRead(b *testing.B) {
	for b.Loop() {
		if _, err := Read(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTable is a call on a Table whose list has not changed, naming
// an address it holds, as GETADDR does.
func BenchmarkTable(b *testing.B) {
	tab, err := Open()
	if err != nil {
		b.Fatal(err)
	}
	defer tab.Close()
	list, err := tab.Addrs(netip.Addr{})
	if err != nil || len(list) == 0 {
		b.Fatalf("%v %v", list, err)
	}
	dst := list[len(list)-1].Prefix.Addr()
	for b.Loop() {
		if _, err := tab.Addrs(dst); err != nil {
			b.Fatal(err)
		}
	}
}

// TestWatch: Watch calls back once subscribed, then when a link appears
// in the namespace it watches, and returns once its context ends.
func TestWatch(t *testing.T) {
	h := netns.NewHost(t, "ifw")
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan struct{}, 100)
	done := make(chan error, 1)
	go func() {
		done <- h.Do(func() error {
			return Watch(ctx, func() {
				select {
				case changes <- struct{}{}:
				default:
				}
			})
		})
	}()
	wait := func(what string) {
		t.Helper()
		select {
		case <-changes:
		case err := <-done:
			t.Fatalf("Watch returned before it was stopped: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("no call %s within 10s", what)
		}
	}
	wait("once subscribed")
	h.MustIP("link", "add", "w0", "type", "veth", "peer", "name", "w0p")
	wait("for a new link")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watch: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return once its context ended")
	}
}

// TestReadBroadcastAddresses: an IPv4 address's broadcast address is the
// one it was given, if any, as getifaddrs reports it (rpc_broadcast sends
// only to those); the link's flags say whether it can broadcast and
// multicast.
func TestReadBroadcastAddresses(t *testing.T) {
	h := netns.NewHost(t, "ifb")
	h.MustIP("link", "add", "b0", "type", "veth", "peer", "name", "b1")
	h.MustIP("addr", "add", "10.8.0.1/24", "brd", "+", "dev", "b0")
	h.MustIP("addr", "add", "10.9.0.1/16", "dev", "b0")
	h.MustIP("addr", "add", "10.10.0.1/24", "brd", "10.10.0.7", "dev", "b0")
	var list []Addr
	if err := h.Do(func() error {
		var err error
		list, err = Read()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"10.8.0.1": "10.8.0.255", "10.9.0.1": "invalid IP", "10.10.0.1": "10.10.0.7", "127.0.0.1": "invalid IP"}
	for _, a := range list {
		w, ok := want[a.Prefix.Addr().String()]
		if !ok {
			continue
		}
		delete(want, a.Prefix.Addr().String())
		if got := a.BroadcastAddr.String(); got != w {
			t.Errorf("%s: broadcast address %s, want %s", a.Prefix, got, w)
		}
		if a.Name == "b0" && (!a.Broadcast || !a.Multicast) || a.Name == "lo" && (a.Broadcast || a.Multicast) {
			t.Errorf("%s on %s: broadcast %v, multicast %v", a.Prefix, a.Name, a.Broadcast, a.Multicast)
		}
	}
	if len(want) > 0 {
		t.Errorf("addresses not listed: %v", want)
	}
}
