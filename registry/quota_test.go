package registry

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
)

// usageOf returns how many RPC entries owner (an Entry.Owner string)
// holds, and their bytes as the byte cap counts them.
func (r *Registry) usageOf(owner string) (entries, bytes int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	u := r.usage[owner]
	return u.entries, u.bytes
}

// processesOf returns how many processes of uid hold named services.
func (r *Registry) processesOf(uid uint32) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.named.procsByUID[uid]
}

func TestCheckAddr(t *testing.T) {
	long := func(n int) string { return "/" + strings.Repeat("s", n-1) }
	tests := []struct {
		netid netid.ID
		addr  string
		want  error
	}{
		{"udp", "0.0.0.0.0.111", nil},
		{"tcp", "127.0.0.1.156.65", nil},
		{"TCP", "255.255.255.255.255.255", nil},
		{"udp6", "::.0.111", nil},
		{"tcp6", "fe80::1.8.1", nil},
		{"Tcp6", "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255.255.255", nil},
		{"tcp6", "::ffff:127.0.0.1.8.1", nil},
		{"local", "/run/rpcbind.sock", nil},
		{"local", "@/run/rpcbind.sock", nil},
		{"local", "", nil},
		{"unix", "/run/x.sock", nil},
		{"local", long(netid.MaxLocalAddrLen), nil},
		{"local", long(netid.MaxLocalAddrLen + 1), netid.ErrBadUaddr},
		{"local", "/run/a\x00b", netid.ErrBadUaddr},
		{"udp", "garbage", netid.ErrBadUaddr},
		{"udp", "", netid.ErrBadUaddr},
		{"udp", "127.0.0.1", netid.ErrBadUaddr},
		{"udp", "127.0.0.1.256.1", netid.ErrBadUaddr},
		{"udp", "::1.8.1", netid.ErrBadUaddr},
		{"udp6", "127.0.0.1.8.1", netid.ErrBadUaddr},
		{"udp6", "fe80::1%eth0.8.1", netid.ErrBadUaddr},
		{"tcp", "0.0.0.0.0.111" + strings.Repeat(" ", 4096), netid.ErrBadUaddr},
		{"tcp", "/run/x.sock", netid.ErrBadUaddr},
		{"x", strings.Repeat("a", 4096), netid.ErrUnknown},
		{"bogus", "whatever", netid.ErrUnknown},
		{"", "127.0.0.1.1.1", netid.ErrUnknown},
		{"rawip", "", netid.ErrUnknown},
	}
	for _, tc := range tests {
		t.Run(string(tc.netid)+" "+fmt.Sprintf("%.30q", tc.addr), func(t *testing.T) {
			err := checkAddr(tc.netid, tc.addr)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("checkAddr = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrRefused) {
				t.Fatalf("checkAddr = %v, want %v and ErrRefused", err, tc.want)
			}
		})
	}
}

// TestSetRefusesForms: a SET whose netid or address checkAddr refuses is
// FALSE with a *refusedError from every caller but the daemon itself, and
// adds nothing.
func TestSetRefusesForms(t *testing.T) {
	tests := []struct {
		name string
		c    Caller
		e    Entry
		want error
	}{
		{"the reported flood: netid x, 4 KB address", localCaller(65534, 7), Entry{Prog: 1, Vers: 1, Netid: "x", Addr: strings.Repeat("a", 4096)}, netid.ErrUnknown},
		{"root too", localCaller(0, 7), Entry{Prog: 1, Vers: 1, Netid: "x", Addr: "a"}, netid.ErrUnknown},
		{"empty netid", loUnpriv, Entry{Prog: 1, Vers: 1, Addr: "127.0.0.1.1.1"}, netid.ErrUnknown},
		{"garbage on udp", loUnpriv, Entry{Prog: 1, Vers: 1, Netid: "udp", Addr: "garbage"}, netid.ErrBadUaddr},
		{"long local path", uid1000, Entry{Prog: 1, Vers: 1, Netid: "local", Addr: "/" + strings.Repeat("p", 4096)}, netid.ErrBadUaddr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRegistry(Options{})
			ok, err := r.Set(tc.c, tc.e)
			var re *refusedError
			if ok || !errors.Is(err, tc.want) || !errors.As(err, &re) {
				t.Fatalf("Set = %v, %v; want false, %v", ok, err, tc.want)
			}
			if r.Len() != 0 {
				t.Fatalf("refused entry added: %q", keys(r))
			}
		})
	}
	t.Run("the daemon's own entries are not checked", func(t *testing.T) {
		r := newTestRegistry(Options{})
		mustSet(t, r, root, Entry{Prog: 1, Vers: 1, Netid: "bogus", Addr: "x"})
	})
}

// TestRPCCaps fills one owner to its cap and checks what is refused, what
// is still accepted, and that the count and the usage follow.
func TestRPCCaps(t *testing.T) {
	entry := func(prog uint32, addr string) Entry {
		return Entry{Prog: prog, Vers: 1, Netid: "local", Addr: addr}
	}
	// 5 + 11 = 16 bytes each.
	const addr = "/run/x.sock"
	rootLocal := localCaller(0, 9)
	tests := []struct {
		name string
		opts Options
		// fill is who fills its cap with entries of addr, and how many
		// it may add.
		fill     Caller
		accepted int
		// then is a SET after the cap is reached, and its answer.
		then     Caller
		thenOK   bool
		refusals uint64
	}{
		{"entry cap: the next SET is FALSE", Options{MaxRPCPerUID: 3}, uid1000, 3, uid1000, false, 2},
		{"byte cap: the next SET is FALSE", Options{MaxRPCBytesPerUID: 3*16 + 15}, uid1000, 3, uid1000, false, 2},
		{"another uid is not affected", Options{MaxRPCPerUID: 3}, uid1000, 3, uid2000, true, 1},
		{"unprivileged network callers share the owner unknown", Options{MaxRPCPerUID: 3}, loUnpriv, 3, netCaller("[::1]:40001"), false, 2},
		{"root over the local socket is not capped", Options{MaxRPCPerUID: 3}, rootLocal, 5, rootLocal, true, 0},
		{"a reserved-port loopback caller is the superuser", Options{MaxRPCPerUID: 3}, loPriv, 5, loPriv, true, 0},
		{"the daemon is not capped", Options{MaxRPCPerUID: 3}, root, 5, root, true, 0},
		{"default entry cap", Options{}, uid1000, DefaultMaxRPCPerUID, uid1000, false, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRegistry(tc.opts)
			prog := uint32(1)
			for range tc.accepted {
				mustSet(t, r, tc.fill, entry(prog, addr))
				prog++
			}
			ok, err := r.Set(tc.fill, entry(prog, addr))
			wantFull := tc.fill.Owner() != OwnerSuperuser
			if wantFull && (ok || !errors.Is(err, errOverCap) || !errors.Is(err, ErrRefused)) {
				t.Fatalf("SET past the cap = %v, %v; want false, errOverCap", ok, err)
			}
			if !wantFull && (!ok || err != nil) {
				t.Fatalf("uncapped SET = %v, %v", ok, err)
			}
			prog++
			ok, err = r.Set(tc.then, entry(prog, addr))
			if ok != tc.thenOK || ok && err != nil {
				t.Fatalf("then SET = %v, %v; want %v", ok, err, tc.thenOK)
			}
			if got := r.Refusals(); got.RPC != tc.refusals || got.Named != 0 {
				t.Errorf("Refusals = %+v, want RPC %d", got, tc.refusals)
			}
			if n, b := r.usageOf(tc.fill.Owner()); wantFull && (n != tc.accepted || b != 16*tc.accepted) {
				t.Errorf("Usage(%s) = %d, %d; want %d, %d", tc.fill.Owner(), n, b, tc.accepted, 16*tc.accepted)
			}
		})
	}
}

// TestRPCCapFreed: every way an entry leaves gives its room back, a SET of
// an existing entry is answered as before at the cap, and restored entries
// count.
func TestRPCCapFreed(t *testing.T) {
	e := func(prog uint32) Entry { return Entry{Prog: prog, Vers: 1, Netid: "udp", Addr: "127.0.0.1.4.1"} }
	tests := []struct {
		name string
		free func(r *Registry) bool
	}{
		{"unset", func(r *Registry) bool { ok, _ := r.Unset(uid1000, 1, 1, ""); return ok }},
		{"v2 unset", func(r *Registry) bool { ok, _ := r.UnsetMapping(uid1000, 1, 1); return ok }},
		{"unset by root", func(r *Registry) bool { ok, _ := r.Unset(root, 1, 1, "udp"); return ok }},
		{"prune", func(r *Registry) bool { x, _ := r.LookupExact(1, 1, "udp"); return r.Prune(x, "gone") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRegistry(Options{MaxRPCPerUID: 2})
			mustSet(t, r, uid1000, e(1))
			mustSet(t, r, uid1000, e(2))
			if ok, err := r.Set(uid1000, e(1)); !ok || err != nil {
				t.Fatalf("SET of an existing entry at the cap = %v, %v; want true", ok, err)
			}
			if ok, _ := r.Set(uid1000, e(3)); ok {
				t.Fatal("SET past the cap accepted")
			}
			if !tc.free(r) {
				t.Fatal("nothing removed")
			}
			if n, b := r.usageOf("1000"); n != 1 || b != len("udp127.0.0.1.4.1") {
				t.Errorf("Usage = %d, %d after a removal", n, b)
			}
			mustSet(t, r, uid1000, e(3))
		})
	}
	t.Run("restored entries count", func(t *testing.T) {
		r := newTestRegistry(Options{MaxRPCPerUID: 2})
		r.Restore([]Entry{{Prog: 1, Vers: 1, Netid: "udp", Addr: "127.0.0.1.4.1", Owner: "1000"}, {Prog: 2, Vers: 1, Netid: "bogus", Addr: "x", Owner: "1000"}}, nil)
		if ok, _ := r.Set(uid1000, e(3)); ok {
			t.Fatal("SET past the cap accepted after a restore")
		}
	})
}

// TestCapRefusalLog: a user's refusals are logged once a minute at most,
// each line saying how many were not logged; another user is logged at
// once.
func TestCapRefusalLog(t *testing.T) {
	now := testNow
	var buf bytes.Buffer
	r := New(Options{MaxRPCPerUID: 1, Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	set := func(c Caller, prog uint32) {
		r.Set(c, Entry{Prog: prog, Vers: 1, Netid: "tcp", Addr: "127.0.0.1.4.1"})
	}
	lines := func() []string { return strings.Split(strings.TrimSpace(buf.String()), "\n") }
	set(uid1000, 1)
	for prog := range uint32(5) {
		set(uid1000, 10+prog)
	}
	if l := lines(); len(l) != 1 || !strings.Contains(l[0], "owner=1000") || !strings.Contains(l[0], "not_logged_since_last=0") {
		t.Fatalf("after 5 refusals, log:\n%s", buf.String())
	}
	set(uid2000, 30)
	set(uid2000, 31)
	if l := lines(); len(l) != 2 || !strings.Contains(l[1], "owner=2000") {
		t.Fatalf("another user's refusal not logged at once:\n%s", buf.String())
	}
	now = now.Add(quotaLogEvery)
	set(uid1000, 20)
	if l := lines(); len(l) != 3 || !strings.Contains(l[2], "owner=1000") || !strings.Contains(l[2], "not_logged_since_last=4") {
		t.Fatalf("a minute later, log:\n%s", buf.String())
	}
	if got := r.Refusals().RPC; got != 7 {
		t.Errorf("Refusals().RPC = %d, want 7", got)
	}
}

// TestCapRefusalLogAcrossEmptying: a user who gives back everything it
// holds and fills its quota again, over and over, is still logged once a
// minute at most, and the refusals in between are counted in the next
// line rather than lost.
func TestCapRefusalLogAcrossEmptying(t *testing.T) {
	now := testNow
	var buf bytes.Buffer
	r := New(Options{MaxRPCPerUID: 1, Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	entry := func(prog uint32) Entry { return Entry{Prog: prog, Vers: 1, Netid: "tcp", Addr: "127.0.0.1.4.1"} }
	lines := func() []string { return strings.Split(strings.TrimSpace(buf.String()), "\n") }
	for round := range 5 {
		mustSet(t, r, uid1000, entry(1))
		if ok, _ := r.Set(uid1000, entry(2)); ok {
			t.Fatal("SET past the cap accepted")
		}
		if ok, _ := r.Unset(uid1000, 1, 1, ""); !ok {
			t.Fatal("UNSET refused")
		}
		if l := lines(); len(l) != 1 {
			t.Fatalf("after %d rounds of filling and emptying, %d lines:\n%s", round+1, len(l), buf.String())
		}
	}
	now = now.Add(quotaLogEvery)
	mustSet(t, r, uid1000, entry(1))
	r.Set(uid1000, entry(2))
	if l := lines(); len(l) != 2 || !strings.Contains(l[1], "not_logged_since_last=4") {
		t.Fatalf("a minute later, log:\n%s", buf.String())
	}
}

func TestRateLogBounded(t *testing.T) {
	l := newRateLog(time.Minute)
	for i := range 3 * rateLogKeys {
		l.allow(fmt.Sprint(i), testNow)
	}
	if l.keys.Len() > rateLogKeys+1 {
		t.Fatalf("%d keys kept", l.keys.Len())
	}
	if ok, _ := l.allow("new", testNow); ok {
		t.Error("a new key past the bound is not limited with the others")
	}
	if ok, _ := l.allow("new", testNow.Add(time.Minute)); !ok {
		t.Error("expired keys are not swept")
	}
}

// TestProcessesPerUID: a uid may hold services in MaxProcessesPerUID
// processes; a new process past it is refused with ErrCapReached, counted,
// and admitted again once one of them is gone. Root's processes are not
// capped, and processes already holding services may add more.
func TestProcessesPerUID(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		uid      uint32
		accepted int
	}{
		{"configured", Options{MaxProcessesPerUID: 3}, 1000, 3},
		{"default", Options{}, 1000, DefaultMaxProcessesPerUID},
		{"root is not capped", Options{MaxProcessesPerUID: 3}, 0, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := New(tc.opts)
			c := localCaller(tc.uid, 1)
			for i := range tc.accepted {
				if _, err := r.RegisterNamed(c, proc(tc.uid, int32(100+i)), []Service{tcp("a.example.com", uint16(1+i), 0)}); err != nil {
					t.Fatalf("process %d: %v", i, err)
				}
			}
			next := proc(tc.uid, 99)
			_, err := r.RegisterNamed(c, next, []Service{tcp("b.example.com", 1, 0)})
			if tc.uid == 0 {
				if err != nil {
					t.Fatalf("root refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrCapReached) || !strings.Contains(err.Error(), fmt.Sprintf("uid %d", tc.uid)) {
				t.Fatalf("process past the cap: err = %v, want ErrCapReached naming the uid", err)
			}
			if got := r.Refusals(); got.Named != 1 {
				t.Errorf("Refusals = %+v, want Named 1", got)
			}
			if n := r.processesOf(tc.uid); n != tc.accepted {
				t.Errorf("Processes = %d, want %d", n, tc.accepted)
			}
			// A process already counted may add services.
			if _, err := r.RegisterNamed(c, proc(tc.uid, 100), []Service{tcp("c.example.com", 9, 0)}); err != nil {
				t.Fatalf("a counted process adding a service: %v", err)
			}
			// Another uid is not affected.
			if _, err := r.RegisterNamed(localCaller(2000, 1), proc(2000, 5), []Service{tcp("b.example.com", 1, 0)}); err != nil {
				t.Fatal(err)
			}
			r.DropProcess(100, proc(tc.uid, 100).Start)
			if _, err := r.RegisterNamed(c, next, []Service{tcp("b.example.com", 1, 0)}); err != nil {
				t.Fatalf("after a process is gone: %v", err)
			}
		})
	}
}
