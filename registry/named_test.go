package registry

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
)

func localCaller(uid uint32, pid int32) Caller {
	return Caller{Transport: Local, Cred: &Cred{UID: uid, GID: uid, PID: pid}}
}

func proc(uid uint32, pid int32) Process {
	return Process{PID: pid, UID: uid, GID: uid, Start: uint64(pid) * 10, Exe: "/usr/bin/svc"}
}

func tcp(name string, port uint16, f NamedFlags) Service {
	return Service{Name: name, Network: netid.TCP, Port: port, Flags: f}
}

func TestValidateName(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	tests := []struct {
		name string
		ok   bool
	}{
		{"app.example.com", true},
		{"App.Example.COM", true},
		{"me@example.com", true},
		{"backup@region.example.com", true},
		{"first.last+tag@example.com", true},
		{"localhost", true},
		{"100003.oncrpc.alt", true},
		{"a-b.c", true},
		{long63 + ".com", true},
		{strings.Repeat(long63+".", 3) + strings.Repeat("a", 61), true},  // 253
		{strings.Repeat(long63+".", 3) + strings.Repeat("a", 62), false}, // 254
		{"", false},
		{long63 + "a.com", false},
		{"-app.example.com", false},
		{"app-.example.com", false},
		{"app..example.com", false},
		{".app.example.com", false},
		{"app.example.com.", false},
		{"app example.com", false},
		{"app\x00.com", false},
		{"app\n.com", false},
		{"app_x.com", false},
		{"app.exämple.com", false},
		{"@example.com", false},
		{"me@", false},
		{".me@example.com", false},
		{"me..you@example.com", false},
		{"me@you@example.com", false},
		{strings.Repeat("m", 65) + "@example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateName(tt.name)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidateName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadName) {
				t.Fatalf("error %v is not ErrBadName", err)
			}
		})
	}
}

func TestIsReservedName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"oncrpc.alt", true},
		{"nfs.oncrpc.alt", true},
		{"NFS.OncRpc.ALT", true},
		{"me@oncrpc.alt", true},
		{"x.nfs.oncrpc.alt", true},
		{"oncrpc.alt.example.com", false},
		{"xoncrpc.alt", false},
		{"example.alt", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsReservedName(tt.name); got != tt.want {
				t.Fatalf("IsReservedName(%q) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}

// TestNamedExclusivity is the matrix of (same uid, other uid) × (exclusive
// or not, on either side).
func TestNamedExclusivity(t *testing.T) {
	tests := []struct {
		name          string
		firstX, nextX bool
		sameUID       bool
		wantConflict  bool
	}{
		{"same uid, neither exclusive", false, false, true, false},
		{"same uid, first exclusive", true, false, true, true},
		{"same uid, second exclusive", false, true, true, true},
		{"same uid, both exclusive", true, true, true, true},
		{"other uid, neither exclusive", false, false, false, false},
		{"other uid, first exclusive", true, false, false, false},
		{"other uid, second exclusive", false, true, false, false},
		{"other uid, both exclusive", true, true, false, false},
	}
	flag := func(x bool) NamedFlags {
		if x {
			return Exclusive
		}
		return 0
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(Options{})
			if _, err := r.RegisterNamed(localCaller(1000, 10), proc(1000, 10), []Service{tcp("app.example.com", 80, flag(tt.firstX))}); err != nil {
				t.Fatal(err)
			}
			uid := uint32(1000)
			if !tt.sameUID {
				uid = 1001
			}
			// A different case still names the same service.
			_, err := r.RegisterNamed(localCaller(uid, 20), proc(uid, 20), []Service{tcp("APP.example.com", 81, flag(tt.nextX))})
			if tt.wantConflict {
				var ne *NamedError
				if !errors.As(err, &ne) || !errors.Is(err, ErrExclusive) {
					t.Fatalf("err = %v, want ErrExclusive", err)
				}
				if ne.Holder == nil || ne.Holder.UID != 1000 || ne.Holder.PID != 10 {
					t.Fatalf("holder = %+v, want uid 1000 pid 10", ne.Holder)
				}
				if !strings.Contains(err.Error(), "uid 1000") {
					t.Fatalf("message %q does not name the holder's uid", err)
				}
				if n := len(r.LookupNamed("app.example.com")); n != 1 {
					t.Fatalf("%d instances after conflict, want 1", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v, want none", err)
			}
			got := r.LookupNamed("app.EXAMPLE.com")
			if len(got) != 2 || got[0].Name != "app.example.com" || got[1].Name != "APP.example.com" {
				t.Fatalf("lookup = %+v, want both instances, displayed as registered", got)
			}
		})
	}
}

func TestNamedSameProcessExclusiveBatch(t *testing.T) {
	r := New(Options{})
	c, p := localCaller(1000, 10), proc(1000, 10)
	batch := []Service{tcp("x.example.com", 90, Exclusive), tcp("x.example.com", 91, Exclusive)}
	if _, err := r.RegisterNamed(c, p, batch); err != nil {
		t.Fatalf("one process registering two ports under its exclusive name: %v", err)
	}
	// And later, from the same process.
	if _, err := r.RegisterNamed(c, p, []Service{tcp("x.example.com", 92, Exclusive)}); err != nil {
		t.Fatal(err)
	}
	// The same service twice is not two instances.
	added, err := r.RegisterNamed(c, p, []Service{tcp("x.example.com", 92, Exclusive)})
	if err != nil || len(added) != 0 {
		t.Fatalf("re-registration added %v, %v", added, err)
	}
	if n := len(r.LookupNamed("x.example.com")); n != 3 {
		t.Fatalf("%d instances, want 3", n)
	}
}

func TestNamedAtomicBatch(t *testing.T) {
	tests := []struct {
		name  string
		batch []Service
		want  error
	}{
		{"bad name last", []Service{tcp("a.example.com", 1, 0), tcp("b..example.com", 2, 0)}, ErrBadName},
		{"reserved name last", []Service{tcp("a.example.com", 1, 0), tcp("nfs.oncrpc.alt", 2, 0)}, ErrReservedName},
		{"conflict last", []Service{tcp("a.example.com", 1, 0), tcp("held.example.com", 2, 0)}, ErrExclusive},
		{"bad port", []Service{tcp("a.example.com", 1, 0), tcp("b.example.com", 0, 0)}, ErrBadEndpoint},
		{"relative path", []Service{tcp("a.example.com", 1, 0), {Name: "b.example.com", Network: netid.Unix, Path: "run/b"}}, ErrBadEndpoint},
		{"unknown network", []Service{{Name: "b.example.com", Network: "sctp", Port: 1}}, ErrBadEndpoint},
		{"bare @", []Service{tcp("a.example.com", 1, 0), {Name: "b.example.com", Network: netid.Unix, Path: "@"}}, ErrBadEndpoint},
		{"tcpmux on udp", []Service{tcp("a.example.com", 1, 0), {Name: "b.example.com", Network: netid.UDP, Port: 53, Flags: TCPMux}}, ErrBadEndpoint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(Options{})
			if _, err := r.RegisterNamed(localCaller(1000, 5), proc(1000, 5), []Service{tcp("held.example.com", 9, Exclusive)}); err != nil {
				t.Fatal(err)
			}
			_, err := r.RegisterNamed(localCaller(1000, 6), proc(1000, 6), tt.batch)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if got := r.NamedServices(); len(got) != 1 {
				t.Fatalf("batch partly applied: %+v", got)
			}
		})
	}
}

func TestNamedCap(t *testing.T) {
	for _, tt := range []struct {
		name string
		cap  int
		want int
	}{
		{"default", 0, DefaultMaxNamedPerProcess},
		{"configured", 3, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := New(Options{MaxNamedPerProcess: tt.cap})
			c, p := localCaller(1000, 10), proc(1000, 10)
			var batch []Service
			for i := range tt.want {
				batch = append(batch, tcp("s.example.com", uint16(1000+i), 0))
			}
			if _, err := r.RegisterNamed(c, p, batch); err != nil {
				t.Fatal(err)
			}
			if _, err := r.RegisterNamed(c, p, []Service{tcp("one.more.example.com", 1, 0)}); !errors.Is(err, ErrCapReached) {
				t.Fatalf("err = %v, want ErrCapReached", err)
			}
			// The cap is per process: a sibling of the same uid may register.
			if _, err := r.RegisterNamed(c, proc(1000, 11), []Service{tcp("one.more.example.com", 1, 0)}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNamedWhoMayRegister(t *testing.T) {
	tests := []struct {
		name   string
		caller Caller
		p      Process
		want   error
	}{
		{"own process", localCaller(1000, 1), proc(1000, 2), nil},
		{"root for anyone", localCaller(0, 1), proc(1000, 2), nil},
		{"internal", Caller{Transport: Internal}, proc(1000, 2), nil},
		{"another uid's process", localCaller(1001, 1), proc(1000, 2), ErrNotYours},
		{"local without credentials", Caller{Transport: Local}, proc(1000, 2), ErrNotLocal},
		{"loopback tcp", Caller{Transport: Network, Addr: netip.MustParseAddrPort("127.0.0.1:700")}, proc(0, 2), ErrNotLocal},
		{"remote", Caller{Transport: Network, Addr: netip.MustParseAddrPort("192.0.2.1:700")}, proc(0, 2), ErrNotLocal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(Options{})
			_, err := r.RegisterNamed(tt.caller, tt.p, []Service{tcp("a.example.com", 1, 0)})
			if !errors.Is(err, tt.want) && !(tt.want == nil && err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNamedDeregister(t *testing.T) {
	r := New(Options{Now: func() time.Time { return time.Unix(1, 0) }})
	mine, theirs := localCaller(1000, 10), localCaller(1001, 20)
	if _, err := r.RegisterNamed(mine, proc(1000, 10), []Service{tcp("a.example.com", 1, 0), {Name: "a.example.com", Network: netid.Unix, Path: "/run/a"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.RegisterNamed(theirs, proc(1001, 20), []Service{tcp("a.example.com", 1, 0)}); err != nil {
		t.Fatal(err)
	}
	// All or none: the second is not mine to remove.
	if _, err := r.DeregisterNamed(mine, []Service{tcp("A.example.com", 1, 0), tcp("a.example.com", 2, 0)}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if n := len(r.NamedServices()); n != 3 {
		t.Fatalf("%d services, want 3", n)
	}
	got, err := r.DeregisterNamed(mine, []Service{tcp("A.example.com", 1, 0), tcp("a.example.com", 1, 0)})
	if err != nil || len(got) != 1 || got[0].UID != 1000 {
		t.Fatalf("deregister = %+v, %v; want uid 1000's one service", got, err)
	}
	if _, err := r.DeregisterNamed(Caller{Transport: Network, Addr: netip.MustParseAddrPort("127.0.0.1:1")}, []Service{tcp("a.example.com", 1, 0)}); !errors.Is(err, ErrNotLocal) {
		t.Fatalf("err = %v, want ErrNotLocal", err)
	}
	got, err = r.DeregisterName(localCaller(0, 1), "a.EXAMPLE.com")
	if err != nil || len(got) != 2 {
		t.Fatalf("root removing the name = %+v, %v", got, err)
	}
	if _, err := r.DeregisterName(mine, "a.example.com"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

func TestNamedDropProcess(t *testing.T) {
	r := New(Options{})
	p := proc(1000, 10)
	if _, err := r.RegisterNamed(localCaller(1000, 10), p, []Service{tcp("a.example.com", 1, 0), tcp("b.example.com", 2, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.RegisterNamed(localCaller(1000, 11), proc(1000, 11), []Service{tcp("a.example.com", 3, 0)}); err != nil {
		t.Fatal(err)
	}
	// A later process with the same pid but another start time is not it.
	if got := r.DropProcess(10, p.Start+1); len(got) != 0 {
		t.Fatalf("dropped %+v for a reused pid", got)
	}
	if got := r.DropProcess(10, p.Start); len(got) != 2 {
		t.Fatalf("dropped %d, want 2", len(got))
	}
	if got := r.NamedServices(); len(got) != 1 || got[0].Port != 3 {
		t.Fatalf("left %+v", got)
	}
	if r.ProcessServices(10, p.Start) != 0 || r.ProcessServices(11, proc(1000, 11).Start) != 1 {
		t.Fatal("ProcessServices disagrees")
	}
}

func TestSnapshot(t *testing.T) {
	r := New(Options{})
	if ok, err := r.Set(Caller{Transport: Internal}, Entry{Prog: 100000, Vers: 2, Netid: "tcp", Addr: "0.0.0.0.0.111"}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, err := r.RegisterNamed(Caller{Transport: Internal}, proc(0, 1), []Service{tcp("a.example.com", 1, Public)}); err != nil {
		t.Fatal(err)
	}
	entries, svcs := r.Snapshot()
	if len(entries) != 1 || len(svcs) != 1 || svcs[0].Exe != "/usr/bin/svc" || svcs[0].Flags.String() != "P" {
		t.Fatalf("snapshot = %+v, %+v", entries, svcs)
	}
}

func TestNamedFlagsString(t *testing.T) {
	for _, tt := range []struct {
		f    NamedFlags
		want string
	}{
		{0, ""},
		{Exclusive | Public, "XP"},
		{TCPMux, "M"},
		{Exclusive | TCPMux | MuxHelp, "XMH"},
	} {
		if got := tt.f.String(); got != tt.want {
			t.Errorf("%#x.String() = %q, want %q", uint8(tt.f), got, tt.want)
		}
	}
}

// TestServiceKey: a service's key is its name in any case, its endpoint
// and its process incarnation; nothing else it carries tells it apart.
func TestServiceKey(t *testing.T) {
	base := Service{Name: "web.example", Network: netid.TCP, Port: 8080, Process: proc(1000, 42)}
	tests := []struct {
		name   string
		change func(*Service)
		same   bool
	}{
		{"name in another case", func(s *Service) { s.Name = "Web.EXAMPLE" }, true},
		{"flags, owner, exe and times", func(s *Service) {
			s.Flags = Exclusive
			s.UID, s.GID, s.Exe = 0, 0, "/other"
			s.Registered = time.Unix(1, 0)
			s.Health = Health{Status: Critical}
		}, true},
		{"another name", func(s *Service) { s.Name = "db.example" }, false},
		{"another port", func(s *Service) { s.Port = 8081 }, false},
		{"another network", func(s *Service) { s.Network = netid.UDP }, false},
		{"a path", func(s *Service) { s.Network, s.Port, s.Path = netid.Unix, 0, "/run/web.sock" }, false},
		{"another pid", func(s *Service) { s.PID++ }, false},
		{"a later process with the same pid", func(s *Service) { s.Start++ }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base
			tt.change(&s)
			if same := s.Key() == base.Key(); same != tt.same {
				t.Errorf("%+v and %+v: same key %v, want %v", s, base, same, tt.same)
			}
		})
	}
}
