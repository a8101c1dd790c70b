package dnsmap

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/netid/ifaddrs"
	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/netlimit/netlimittest"
	"github.com/portmapd/portmapd/registry"
)

// testRegistry holds named services and RPC entries, some of which fail
// their checks.
func testRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	reg := registry.New(registry.Options{})
	internal := registry.Caller{Transport: registry.Internal}
	p := registry.Process{PID: 42, UID: 1000, GID: 1000, Start: 7}
	svcs, err := reg.RegisterNamed(internal, p, []registry.Service{
		{Name: "backup.example.com", Network: netid.TCP, Port: 9000},
		{Name: "backup.example.com", Network: netid.UDP, Port: 9001},
		{Name: "Backup.example.com", Network: netid.TCP, Port: 9002, Checks: registry.Checks{TTL: time.Minute}},
		{Name: "backup.example.com", Network: netid.Unix, Path: "/run/backup.sock"},
		{Name: "me@example.com", Network: netid.TCP, Port: 7000},
		{Name: "sick.example.com", Network: netid.TCP, Port: 7001, Checks: registry.Checks{TCP: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The TTL instance fails; sick.example.com was never checked.
	reg.SetHealth(svcs[2], registry.Health{Status: registry.Critical, Output: "ttl"})
	for _, e := range []registry.Entry{
		{Prog: 100000, Vers: 2, Netid: "udp", Addr: "0.0.0.0.0.111"},
		{Prog: 100000, Vers: 2, Netid: "tcp", Addr: "0.0.0.0.0.111"},
		{Prog: 100000, Vers: 4, Netid: "tcp6", Addr: "::.0.111"},
		{Prog: 100003, Vers: 3, Netid: "tcp", Addr: "0.0.0.0.8.1"},
		{Prog: 100003, Vers: 3, Netid: "tcp6", Addr: "::.8.1"},
		{Prog: 100003, Vers: 4, Netid: "tcp", Addr: "0.0.0.0.8.1"},
		{Prog: 100005, Vers: 3, Netid: "local", Addr: "/run/mountd.sock"},
		{Prog: 100021, Vers: 4, Netid: "udp", Addr: "0.0.0.0.128.2"},
	} {
		if ok, err := reg.Set(internal, e); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	nlm, _ := reg.LookupExact(100021, 4, "udp")
	reg.SetEntryHealth(nlm, registry.Health{Status: registry.Critical})
	return reg
}

// serve serves reg's DNS on loopback until the test ends, and returns its
// address.
func serve(t *testing.T, reg *registry.Registry, cfg Config) string {
	t.Helper()
	if cfg.Hostname == "" {
		cfg.Hostname = "testhost"
	}
	if cfg.RPCNames == "" {
		cfg.RPCNames = "../httpmap/testdata/rpc"
	}
	pc, ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(reg, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pc, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return pc.LocalAddr().String()
}

// ask sends one query over net and returns the answer's records, each in
// zone-file form without its TTL and class, and the rcode.
func ask(t *testing.T, addr, network, name string, qtype uint16) ([]string, []string, int) {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 10 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	return rrs(r.Answer), rrs(r.Extra), r.Rcode
}

func rrs(list []dns.RR) []string {
	var out []string
	for _, rr := range list {
		h := rr.Header()
		out = append(out, h.Name+" "+dns.TypeToString[h.Rrtype]+" "+strings.TrimPrefix(rr.String(), h.String()))
	}
	slices.Sort(out)
	return out
}

func TestAnswers(t *testing.T) {
	addr := serve(t, testRegistry(t), Config{})
	hostExtra := []string{"testhost. A 127.0.0.1", "testhost. AAAA ::1"}
	tests := []struct {
		name   string
		qtype  uint16
		answer []string
		extra  []string
		rcode  int
	}{
		{"_tcp.backup.example.com.", dns.TypeSRV, []string{"_tcp.backup.example.com. SRV 0 0 9000 testhost."}, hostExtra, dns.RcodeSuccess},
		{"_udp.Backup.Example.com.", dns.TypeSRV, []string{"_udp.Backup.Example.com. SRV 0 0 9001 testhost."}, hostExtra, dns.RcodeSuccess},
		{"backup.example.com.", dns.TypeSRV, []string{"backup.example.com. SRV 0 0 9000 testhost.", "backup.example.com. SRV 0 0 9001 testhost."}, hostExtra, dns.RcodeSuccess},
		{"backup.example.com.", dns.TypeA, []string{"backup.example.com. A 127.0.0.1"}, nil, dns.RcodeSuccess},
		{"backup.example.com.", dns.TypeAAAA, []string{"backup.example.com. AAAA ::1"}, nil, dns.RcodeSuccess},
		{"backup.example.com.", dns.TypeTXT, nil, nil, dns.RcodeSuccess},
		{"_tcp.me@example.com.", dns.TypeSRV, []string{`_tcp.me\@example.com. SRV 0 0 7000 testhost.`}, hostExtra, dns.RcodeSuccess},
		{`_tcp.me\.you@example.com.`, dns.TypeSRV, nil, nil, dns.RcodeNameError},
		{"_tcp.sick.example.com.", dns.TypeSRV, nil, nil, dns.RcodeNameError},
		{"_tcp.nobody.example.com.", dns.TypeSRV, nil, nil, dns.RcodeNameError},
		{"_sctp.backup.example.com.", dns.TypeSRV, nil, nil, dns.RcodeNameError},
		{"_v2._udp.portmapper.oncrpc.alt.", dns.TypeSRV, []string{"_v2._udp.portmapper.oncrpc.alt. SRV 0 0 111 testhost."}, hostExtra, dns.RcodeSuccess},
		{"_v2._tcp.100000.oncrpc.alt.", dns.TypeSRV, []string{"_v2._tcp.100000.oncrpc.alt. SRV 0 0 111 testhost."}, hostExtra, dns.RcodeSuccess},
		{"_v3._tcp.nfs.oncrpc.alt.", dns.TypeSRV, []string{"_v3._tcp.nfs.oncrpc.alt. SRV 0 0 2049 testhost."}, hostExtra, dns.RcodeSuccess},
		{"_v3._udp.nfs.oncrpc.alt.", dns.TypeSRV, nil, nil, dns.RcodeNameError},
		{"_tcp.nfs.oncrpc.alt.", dns.TypeSRV, []string{"_tcp.nfs.oncrpc.alt. SRV 0 0 2049 testhost."}, hostExtra, dns.RcodeSuccess},
		{"nfs.oncrpc.alt.", dns.TypeA, []string{"nfs.oncrpc.alt. A 127.0.0.1"}, nil, dns.RcodeSuccess},
		{"_v3._tcp.mountd.oncrpc.alt.", dns.TypeSRV, nil, nil, dns.RcodeNameError},   // a local socket only
		{"_v4._udp.nlockmgr.oncrpc.alt.", dns.TypeSRV, nil, nil, dns.RcodeNameError}, // critical
		{"_v3._tcp.backup.example.com.", dns.TypeSRV, nil, nil, dns.RcodeNameError},
		{"testhost.", dns.TypeA, []string{"testhost. A 127.0.0.1"}, nil, dns.RcodeSuccess},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range tests {
			t.Run(network+"/"+tc.name+"/"+dns.TypeToString[tc.qtype], func(t *testing.T) {
				ans, extra, rcode := ask(t, addr, network, tc.name, tc.qtype)
				if rcode != tc.rcode || !slices.Equal(ans, tc.answer) || !slices.Equal(extra, tc.extra) {
					t.Errorf("rcode %s, answer %q, extra %q; want %s, %q, %q",
						dns.RcodeToString[rcode], ans, extra, dns.RcodeToString[tc.rcode], tc.answer, tc.extra)
				}
			})
		}
	}
}

// TestHealthFollowed checks that an instance leaves the answers as soon
// as it stops passing, and comes back when it passes again.
func TestHealthFollowed(t *testing.T) {
	reg := testRegistry(t)
	addr := serve(t, reg, Config{})
	s := reg.LookupNamed("me@example.com")[0]
	want := []string{`_tcp.me\@example.com. SRV 0 0 7000 testhost.`}
	for _, step := range []struct {
		status registry.Status
		answer []string
	}{{registry.Critical, nil}, {registry.Passing, want}, {registry.Warning, nil}} {
		reg.SetHealth(s, registry.Health{Status: step.status})
		if ans, _, _ := ask(t, addr, "udp", "_tcp.me@example.com.", dns.TypeSRV); !slices.Equal(ans, step.answer) {
			t.Errorf("%v: %q, want %q", step.status, ans, step.answer)
		}
	}
}

// TestRemoteClient checks what a client not on loopback is given as the
// host's addresses: the interfaces', not loopback, not link-local.
func TestRemoteClient(t *testing.T) {
	s := NewServer(testRegistry(t), Config{Hostname: "testhost", Interfaces: func(netip.Addr) ([]ifaddrs.Addr, error) {
		return []ifaddrs.Addr{
			{Prefix: netip.MustParsePrefix("127.0.0.1/8"), Up: true, Loopback: true},
			{Prefix: netip.MustParsePrefix("192.0.2.7/24"), Up: true},
			{Prefix: netip.MustParsePrefix("2001:db8::7/64"), Up: true},
			{Prefix: netip.MustParsePrefix("fe80::7/64"), Up: true},
			{Prefix: netip.MustParsePrefix("198.51.100.7/24")},
		}, nil
	}})
	ans, extra, rcode := s.answer(dns.Question{Name: "_tcp.backup.example.com.", Qtype: dns.TypeSRV, Qclass: dns.ClassINET}, netip.MustParseAddr("192.0.2.99"))
	if rcode != dns.RcodeSuccess || len(ans) != 1 {
		t.Fatalf("%v %v", ans, rcode)
	}
	if got, want := rrs(extra), []string{"testhost. A 192.0.2.7", "testhost. AAAA 2001:db8::7"}; !slices.Equal(got, want) {
		t.Errorf("extra %q, want %q", got, want)
	}
}

// TestDig asks the server with dig, as a person would, where dig is
// installed.
func TestDig(t *testing.T) {
	dig, err := exec.LookPath("dig")
	if err != nil {
		t.Skip("dig not installed: apt-get install bind9-dnsutils")
	}
	addr := serve(t, testRegistry(t), Config{})
	host, port, _ := net.SplitHostPort(addr)
	for _, q := range []struct{ name, want string }{
		{"_v2._udp.portmapper.oncrpc.alt", "0 0 111 testhost."},
		{"_v3._tcp.nfs.oncrpc.alt", "0 0 2049 testhost."},
		{"_tcp.backup.example.com", "0 0 9000 testhost."},
	} {
		for _, proto := range []string{"+notcp", "+tcp"} {
			out, err := exec.Command(dig, "@"+host, "-p", port, proto, "+short", "SRV", q.name).Output()
			if err != nil {
				t.Fatalf("dig %s: %v", q.name, err)
			}
			if got := strings.TrimSpace(string(out)); got != q.want {
				t.Errorf("dig %s %s: %q, want %q", proto, q.name, got, q.want)
			}
		}
	}
}

// TestTruncated checks that a UDP answer too large for the client is cut
// with the TC bit set, and comes whole over TCP.
func TestTruncated(t *testing.T) {
	reg := registry.New(registry.Options{})
	internal := registry.Caller{Transport: registry.Internal}
	var svcs []registry.Service
	for port := range uint16(60) {
		svcs = append(svcs, registry.Service{Name: "many.example.com", Network: netid.TCP, Port: 10000 + port})
	}
	if _, err := reg.RegisterNamed(internal, registry.Process{PID: 1, Start: 1}, svcs); err != nil {
		t.Fatal(err)
	}
	addr := serve(t, reg, Config{Hostname: "a-rather-long-host-name.example.com"})
	m := new(dns.Msg)
	m.SetQuestion("_tcp.many.example.com.", dns.TypeSRV)
	r, _, err := (&dns.Client{Net: "udp", Timeout: 10 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	r.Compress = true
	if !r.Truncated || r.Len() > dns.MinMsgSize || len(r.Answer) == 0 {
		t.Errorf("UDP answer of %d bytes and %d records, truncated %v", r.Len(), len(r.Answer), r.Truncated)
	}
	r, _, err = (&dns.Client{Net: "tcp", Timeout: 10 * time.Second}).Exchange(m, addr)
	if err != nil || r.Truncated || len(r.Answer) != 60 {
		t.Errorf("TCP answer: %d records, truncated %v, %v", len(r.Answer), r != nil && r.Truncated, err)
	}
}

// TestLimitsObserved checks that the DNS face tells its Observer, as the
// other faces tell theirs, of a UDP reply withheld from a remote source
// past its reply budget and of a TCP connection turned away or evicted
// at the connection cap.
func TestLimitsObserved(t *testing.T) {
	hits := &netlimittest.Hits{}
	s := NewServer(testRegistry(t), Config{Hostname: "testhost", RPCNames: "../httpmap/testdata/rpc",
		ReplyLimit: netlimit.NewReplyBuckets(1, 1), Observer: hits})
	q := new(dns.Msg)
	q.SetQuestion("_tcp.backup.example.com.", dns.TypeSRV)
	w := &recordingWriter{remote: &net.UDPAddr{IP: net.ParseIP("192.0.2.9"), Port: 5353}}
	s.ServeDNS(w, q)
	if w.sent != nil {
		t.Errorf("a reply past the source's budget was sent: %v", w.sent)
	}
	if got := hits.List(); !slices.Equal(got, []string{"dns udp_reply_rate withheld"}) {
		t.Errorf("limit hits observed %q, want one withheld reply on dns", got)
	}

	conns := &netlimittest.Hits{}
	addr := serve(t, testRegistry(t), Config{Limits: netlimit.Limits{MaxConns: 1}, Observer: conns})
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	deadline := time.Now().Add(30 * time.Second)
	for !slices.ContainsFunc(conns.List(), func(h string) bool { return strings.HasPrefix(h, "dns total ") }) {
		if time.Now().After(deadline) {
			t.Fatalf("limit hits observed %q, want the total cap on dns", conns.List())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recordingWriter is a dns.ResponseWriter that keeps what is sent.
type recordingWriter struct {
	remote net.Addr
	sent   *dns.Msg
}

func (w *recordingWriter) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}
func (w *recordingWriter) RemoteAddr() net.Addr        { return w.remote }
func (w *recordingWriter) WriteMsg(m *dns.Msg) error   { w.sent = m; return nil }
func (w *recordingWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *recordingWriter) Close() error                { return nil }
func (w *recordingWriter) TsigStatus() error           { return nil }
func (w *recordingWriter) TsigTimersOnly(bool)         {}
func (w *recordingWriter) Hijack()                     {}
