package daemon_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/xdr"
)

// srvAnswer asks the DNS face at addr for name's SRV records and returns
// them as "PRIORITY WEIGHT PORT TARGET", dig +short's form.
func srvAnswer(t *testing.T, addr, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeSRV)
	r, _, err := (&dns.Client{Timeout: 10 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatalf("SRV %s: %v", name, err)
	}
	var out []string
	for _, rr := range r.Answer {
		if srv, ok := rr.(*dns.SRV); ok {
			out = append(out, "0 0 "+strconv.Itoa(int(srv.Port))+" "+srv.Target)
		}
	}
	return out
}

// TestDNS runs the daemon with --dns: dig (and miekg/dns's client) find
// NFS's port through nfs.oncrpc.alt once NFS registers over rpcbind's
// protocol, and a named service's through its name; an instance whose
// TCP check stops passing leaves the answers within its check interval.
func TestDNS(t *testing.T) {
	d := newDaemon(t, "--dns", "127.0.0.1:0")
	logs := d.startLog()
	var addr string
	if !eventually(10*time.Second, func() bool {
		m := regexp.MustCompile(`msg="serving DNS" addr=(\S+)`).FindStringSubmatch(logs())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	}) {
		t.Fatalf("portmapd did not say where it serves DNS:\n%s", logs())
	}
	host, _ := os.Hostname()
	target := dns.Fqdn(host)
	c := d.rpcClient()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ok, err := c.PmapSet(ctx, xdr.Mapping{Prog: 100003, Vers: 3, Prot: netid.ProtoTCP, Port: 2049}); !ok || err != nil {
		t.Fatalf("SET nfs: %v %v", ok, err)
	}
	c.Close()
	if got := srvAnswer(t, addr, "_v3._tcp.nfs.oncrpc.alt"); len(got) != 1 || got[0] != "0 0 2049 "+target {
		t.Errorf("_v3._tcp.nfs.oncrpc.alt: %q, want 0 0 2049 %s", got, target)
	}
	if dig, err := exec.LookPath("dig"); err == nil {
		h, p, _ := net.SplitHostPort(addr)
		out, err := exec.Command(dig, "@"+h, "-p", p, "+short", "SRV", "_v3._tcp.nfs.oncrpc.alt").Output()
		if err != nil || strings.TrimSpace(string(out)) != "0 0 2049 "+target {
			t.Errorf("dig: %q, %v; want 0 0 2049 %s", out, err, target)
		}
	} else {
		t.Log("dig not installed (apt-get install bind9-dnsutils): asked with miekg/dns only")
	}

	// A named service with a TCP check, on a port that answers.
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
	port := ln.Addr().(*net.TCPAddr).Port
	p := sleeperProc(t)
	reg := httpmap.Registration{PID: int32(p.Process.Pid), Services: []httpmap.ServiceSpec{{
		Service: "backup.example.com", Port: httpmap.Port(strconv.Itoa(port)),
		Checks: &httpmap.CheckSpec{TCP: true, Interval: "1s"},
	}}}
	if _, err := httpmap.NewLocalClient(d.http).Register(ctx, reg); err != nil {
		t.Fatal(err)
	}
	want := "0 0 " + strconv.Itoa(port) + " " + target
	if !eventually(30*time.Second, func() bool {
		got := srvAnswer(t, addr, "_tcp.backup.example.com")
		return len(got) == 1 && got[0] == want
	}) {
		t.Fatalf("backup.example.com never answered once passing:\n%s", logs())
	}
	ln.Close()
	start := time.Now()
	if !eventually(30*time.Second, func() bool { return len(srvAnswer(t, addr, "_tcp.backup.example.com")) == 0 }) {
		t.Fatalf("backup.example.com still answered after its port closed:\n%s", logs())
	}
	t.Logf("gone from the DNS %v after its port closed (check interval 1s)", time.Since(start).Round(time.Millisecond))
	ins, err := httpmap.NewLocalClient(d.http).List(ctx, httpmap.Filter{Services: []string{"backup.example.com"}})
	if err != nil || len(ins) != 1 || ins[0].Health != "critical" {
		t.Errorf("the listing shows %+v, %v; want it critical", ins, err)
	}
	var he *httpmap.Error
	if _, err := httpmap.NewLocalClient(d.http).WithPassing().Lookup(ctx, "backup.example.com"); !errors.As(err, &he) || he.Status != 404 {
		t.Errorf("a lookup of passing instances: %v, want 404", err)
	}
}
