package registry

import (
	"errors"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
)

func TestCheckServiceChecks(t *testing.T) {
	svc := func(network netid.ID, c Checks) Service {
		s := Service{Name: "a.example.com", Network: network, Checks: c}
		if network == netid.Unix {
			s.Path = "/run/a.sock"
		} else {
			s.Port = 80
		}
		return s
	}
	// A unix socket registered for TCPMUX is a hand-off socket.
	handoff := func(c Checks) Service {
		s := svc(netid.Unix, c)
		s.Flags = TCPMux
		return s
	}
	tests := []struct {
		name string
		s    Service
		ok   bool
	}{
		{"none", svc(netid.TCP, Checks{}), true},
		{"ttl", svc(netid.UDP, Checks{TTL: 30 * time.Second}), true},
		{"ttl too short", svc(netid.TCP, Checks{TTL: time.Millisecond}), false},
		{"ttl too long", svc(netid.TCP, Checks{TTL: 25 * time.Hour}), false},
		{"tcp", svc(netid.TCP, Checks{TCP: true}), true},
		{"tcp on a socket", svc(netid.Unix, Checks{TCP: true}), true},
		{"tcp on udp", svc(netid.UDP, Checks{TCP: true}), false},
		{"http", svc(netid.TCP, Checks{HTTP: "/healthz?full=1", Interval: 5 * time.Second, Timeout: time.Second}), true},
		{"http on udp", svc(netid.UDP, Checks{HTTP: "/healthz"}), false},
		{"http to another host", svc(netid.TCP, Checks{HTTP: "http://elsewhere.example/"}), false},
		{"http to another host by //", svc(netid.TCP, Checks{HTTP: "//elsewhere.example/"}), false},
		{"http with a space", svc(netid.TCP, Checks{HTTP: "/a b"}), false},
		{"rpc", svc(netid.UDP, Checks{RPC: true, RPCProg: 100003, RPCVers: 3}), true},
		{"rpc without a program", svc(netid.TCP, Checks{RPC: true}), false},
		{"program without rpc", svc(netid.TCP, Checks{RPCProg: 100003}), false},
		{"timeout past interval", svc(netid.TCP, Checks{TCP: true, Interval: time.Second, Timeout: 2 * time.Second}), false},
		{"interval without an active check", svc(netid.TCP, Checks{TTL: time.Minute, Interval: time.Second}), false},
		{"deregister after", svc(netid.TCP, Checks{TCP: true, DeregisterAfter: time.Minute}), true},
		{"deregister after without a check", svc(netid.TCP, Checks{DeregisterAfter: time.Minute}), false},
		{"ttl on a hand-off socket", handoff(Checks{TTL: time.Minute, DeregisterAfter: time.Minute}), true},
		{"tcp on a hand-off socket", handoff(Checks{TCP: true}), false},
		{"http on a hand-off socket", handoff(Checks{HTTP: "/healthz"}), false},
		{"rpc on a hand-off socket", handoff(Checks{RPC: true, RPCProg: 100003}), false},
		{"tcp on a spliced port", func() Service { s := svc(netid.TCP, Checks{TCP: true}); s.Flags = TCPMux; return s }(), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckService(tc.s)
			if (err == nil) != tc.ok {
				t.Fatalf("CheckService: %v, want ok %v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadCheck) {
				t.Errorf("error %v is not ErrBadCheck", err)
			}
		})
	}
}

// TestInitialHealth checks a new registration's health: critical until
// an active check has answered, passing with only a TTL or no check.
func TestInitialHealth(t *testing.T) {
	r := New(Options{})
	p := proc(1000, 10)
	added, err := r.RegisterNamed(localCaller(1000, 10), p, []Service{
		{Name: "plain.example.com", Network: netid.TCP, Port: 1},
		{Name: "ttl.example.com", Network: netid.TCP, Port: 2, Checks: Checks{TTL: time.Minute}},
		{Name: "tcp.example.com", Network: netid.TCP, Port: 3, Checks: Checks{TTL: time.Minute, TCP: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []Status{Passing, Passing, Critical} {
		if added[i].Health.Status != want {
			t.Errorf("%s starts %v, want %v", added[i].Name, added[i].Health.Status, want)
		}
	}
	if n := len(r.Checked()); n != 2 {
		t.Errorf("%d services with checks, want 2", n)
	}
}

func TestParseStatus(t *testing.T) {
	for _, s := range []Status{Passing, Warning, Critical} {
		if got, err := ParseStatus(s.String()); err != nil || got != s {
			t.Errorf("ParseStatus(%q) = %v, %v", s.String(), got, err)
		}
	}
	if _, err := ParseStatus("fine"); !errors.Is(err, ErrBadStatus) {
		t.Errorf("ParseStatus(fine): %v", err)
	}
}

// TestCommitToRegistration: the change runs, under the commit, only on
// the entry as it was registered, and what it reports is returned; a
// change it adds is published.
func TestCommitToRegistration(t *testing.T) {
	r := newTestRegistry(Options{})
	mustSet(t, r, root, Entry{Prog: 400000, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.4.1"})
	held, _ := r.LookupExact(400000, 1, "tcp")
	tests := []struct {
		name    string
		e       Entry
		reports bool // what the change reports
		runs    bool
		want    bool
	}{
		{"as registered, changed", held, true, true, true},
		{"as registered, unchanged", held, false, true, false},
		{"netid in another case", func() Entry { e := held; e.Netid = "TCP"; return e }(), true, true, true},
		{"registered again since", func() Entry { e := held; e.Registered = e.Registered.Add(-time.Second); return e }(), true, false, false},
		{"gone", Entry{Prog: 400001, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.4.1"}, true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := r.Index()
			ran := false
			got := r.commitToRegistration(tt.e, func(cs *changeSet, n nodeID) bool {
				ran = true
				if e := r.rpc.entry(n); e.Prog != held.Prog || e.Addr != held.Addr {
					t.Errorf("change ran on %+v", e)
				}
				if tt.reports {
					cs.add(OpEntryHealth, r.rpc.entry(n), "")
				}
				return tt.reports
			})
			if got != tt.want || ran != tt.runs {
				t.Errorf("reported %v, ran %v; want %v, %v", got, ran, tt.want, tt.runs)
			}
			if published := r.Index() != before; published != tt.want {
				t.Errorf("published %v, want %v", published, tt.want)
			}
		})
	}
}
