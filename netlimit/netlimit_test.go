package netlimit

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portmapd/portmapd/internal/netns"
)

func TestSourceKey(t *testing.T) {
	tests := []struct {
		addr    string
		want    string
		limited bool
	}{
		{"192.0.2.7", "192.0.2.7/32", true},
		{"::ffff:192.0.2.7", "192.0.2.7/32", true},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64", true},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::/64", true},
		{"fe80::1%eth0", "fe80::/64", true},
		{"127.0.0.1", "", false},
		{"127.9.9.9", "", false},
		{"::1", "", false},
		{"::ffff:127.0.0.1", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			got, limited := SourceKey(netip.MustParseAddr(tc.addr))
			if limited != tc.limited || (limited && got.String() != tc.want) {
				t.Errorf("SourceKey = %v, %v; want %s, %v", got, limited, tc.want, tc.limited)
			}
		})
	}
	if _, limited := SourceKey(netip.Addr{}); limited {
		t.Error("an AF_UNIX peer (no address) is limited")
	}
}

// fakeConn is a connection as a Limiter sees it: an address and whether
// its owner was told to stop serving it.
type fakeConn struct {
	name    string
	slot    *Slot
	evicted atomic.Bool
}

// A step of a limiter scenario: admit a connection (from src, on limiter
// lim), or mark one busy, idle or released.
type step struct {
	op   string // admit, busy, idle, release
	conn string
	lim  int    // index of the limiter, for admit
	src  string // for admit; empty: local peer
	// For admit: the limit it is refused by ("" when admitted) and the
	// connection it evicts ("" when none).
	refused, evicts string
}

func TestLimiter(t *testing.T) {
	remote := func(i int) string { return netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).String() }
	tests := []struct {
		name   string
		budget int
		cfgs   []Config
		steps  []step
	}{
		{
			name: "at the total cap the oldest idle makes room",
			cfgs: []Config{{MaxConns: 2}},
			steps: []step{
				{op: "admit", conn: "a", src: remote(1)},
				{op: "admit", conn: "b", src: remote(2)},
				{op: "admit", conn: "c", src: remote(3), evicts: "a"},
				{op: "admit", conn: "d", src: remote(4), evicts: "b"},
			},
		},
		{
			name: "idle order is when a connection last went idle",
			cfgs: []Config{{MaxConns: 2}},
			steps: []step{
				{op: "admit", conn: "a", src: remote(1)},
				{op: "admit", conn: "b", src: remote(2)},
				{op: "busy", conn: "a"},
				{op: "idle", conn: "a"},
				{op: "admit", conn: "c", src: remote(3), evicts: "b"},
			},
		},
		{
			name: "busy connections are never evicted",
			cfgs: []Config{{MaxConns: 2}},
			steps: []step{
				{op: "admit", conn: "a", src: remote(1)},
				{op: "admit", conn: "b", src: remote(2)},
				{op: "busy", conn: "a"},
				{op: "busy", conn: "b"},
				{op: "admit", conn: "c", src: remote(3), refused: ReasonTotal},
				{op: "idle", conn: "b"},
				{op: "admit", conn: "d", src: remote(4), evicts: "b"},
			},
		},
		{
			name: "a released connection frees its place",
			cfgs: []Config{{MaxConns: 1}},
			steps: []step{
				{op: "admit", conn: "a", src: remote(1)},
				{op: "busy", conn: "a"},
				{op: "admit", conn: "b", src: remote(2), refused: ReasonTotal},
				{op: "release", conn: "a"},
				{op: "release", conn: "a"},
				{op: "admit", conn: "c", src: remote(3)},
			},
		},
		{
			name: "per source: the source's own oldest idle makes room",
			cfgs: []Config{{MaxConns: 10, MaxPerSource: 2}},
			steps: []step{
				{op: "admit", conn: "other", src: remote(9)},
				{op: "admit", conn: "a", src: remote(1)},
				{op: "admit", conn: "b", src: remote(1)},
				{op: "admit", conn: "c", src: remote(1), evicts: "a"},
				{op: "busy", conn: "b"},
				{op: "busy", conn: "c"},
				{op: "admit", conn: "d", src: remote(1), refused: ReasonPerSource},
				{op: "admit", conn: "e", src: remote(2)},
			},
		},
		{
			name: "per source: an IPv6 /64 is one source",
			cfgs: []Config{{MaxPerSource: 1}},
			steps: []step{
				{op: "admit", conn: "a", src: "2001:db8::1"},
				{op: "busy", conn: "a"},
				{op: "admit", conn: "b", src: "2001:db8::2", refused: ReasonPerSource},
				{op: "admit", conn: "c", src: "2001:db8:0:1::1"},
			},
		},
		{
			name: "uncapped sources (trusted proxies) have no per-source cap",
			cfgs: []Config{{MaxPerSource: 1, Uncapped: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/28")}}},
			steps: []step{
				{op: "admit", conn: "a", src: remote(1)},
				{op: "admit", conn: "b", src: remote(1)},
				{op: "admit", conn: "c", src: "::ffff:" + remote(1)},
				{op: "admit", conn: "d", src: remote(20)},
				{op: "busy", conn: "d"},
				{op: "admit", conn: "e", src: remote(20), refused: ReasonPerSource},
			},
		},
		{
			name: "loopback and local peers have no per-source cap",
			cfgs: []Config{{MaxPerSource: 1}, {MaxPerSource: 1, Local: true}},
			steps: []step{
				{op: "admit", conn: "a", src: "127.0.0.1"},
				{op: "admit", conn: "b", src: "127.0.0.1"},
				{op: "admit", conn: "c", src: "::1"},
				{op: "admit", conn: "d", lim: 1},
				{op: "admit", conn: "e", lim: 1},
			},
		},
		{
			name:   "the budget is shared: the oldest idle of any network listener makes room",
			budget: 2,
			cfgs:   []Config{{}, {}},
			steps: []step{
				{op: "admit", conn: "a", lim: 0, src: remote(1)},
				{op: "admit", conn: "b", lim: 1, src: remote(2)},
				{op: "admit", conn: "c", lim: 1, src: remote(3), evicts: "a"},
				{op: "busy", conn: "b"},
				{op: "busy", conn: "c"},
				{op: "admit", conn: "d", lim: 0, src: remote(4), refused: ReasonDescriptors},
			},
		},
		{
			name:   "local connections are not charged to the budget, nor evicted for it",
			budget: 1,
			cfgs:   []Config{{}, {Local: true}},
			steps: []step{
				{op: "admit", conn: "l1", lim: 1},
				{op: "admit", conn: "a", lim: 0, src: remote(1)},
				{op: "admit", conn: "l2", lim: 1},
				{op: "admit", conn: "l3", lim: 1},
				{op: "admit", conn: "b", lim: 0, src: "127.0.0.1", evicts: "a"},
				{op: "busy", conn: "b"},
				{op: "admit", conn: "c", lim: 0, src: remote(2), refused: ReasonDescriptors},
				{op: "admit", conn: "l4", lim: 1},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBudget(tc.budget)
			var lims []*Limiter
			for _, cfg := range tc.cfgs {
				cfg.Budget = b
				l := New(cfg)
				t.Cleanup(l.Close)
				lims = append(lims, l)
			}
			conns := map[string]*fakeConn{}
			for i, st := range tc.steps {
				switch st.op {
				case "admit":
					c := &fakeConn{name: st.conn}
					var src netip.Addr
					if st.src != "" {
						src = netip.MustParseAddr(st.src)
					}
					before := evictedSet(conns)
					slot, err := lims[st.lim].Admit(src, func() { c.evicted.Store(true) })
					var re *RefusedError
					switch {
					case st.refused == "" && err != nil:
						t.Fatalf("step %d: admit %s: %v", i, st.conn, err)
					case st.refused != "" && (!errors.As(err, &re) || re.Limit != st.refused):
						t.Fatalf("step %d: admit %s: %v, want refused by the %s limit", i, st.conn, err, st.refused)
					}
					if got := newlyEvicted(before, conns); got != st.evicts {
						t.Fatalf("step %d: admit %s evicted %q, want %q", i, st.conn, got, st.evicts)
					}
					if slot != nil {
						c.slot = slot
						conns[st.conn] = c
					}
				case "busy":
					if !conns[st.conn].slot.Busy() {
						t.Fatalf("step %d: %s was evicted", i, st.conn)
					}
				case "idle":
					conns[st.conn].slot.Idle()
				case "release":
					conns[st.conn].slot.Release()
				}
			}
			for name, c := range conns {
				if c.evicted.Load() && c.slot.Busy() {
					t.Errorf("%s was evicted but can still be marked busy", name)
				}
			}
		})
	}
}

func evictedSet(conns map[string]*fakeConn) map[string]bool {
	m := map[string]bool{}
	for n, c := range conns {
		m[n] = c.evicted.Load()
	}
	return m
}

func newlyEvicted(before map[string]bool, conns map[string]*fakeConn) string {
	var names []string
	for n, c := range conns {
		if c.evicted.Load() && !before[n] {
			names = append(names, n)
		}
	}
	return strings.Join(names, ",")
}

func TestLogThrottle(t *testing.T) {
	var buf netns.Output
	log := slog.New(slog.NewTextHandler(&buf, nil))
	th := NewLogThrottle(log, slog.LevelWarn, "limits", time.Hour, "listener", "tcp")
	for range 1000 {
		th.Note("refused_total")
	}
	for range 7 {
		th.Note("evicted_total")
	}
	if n := strings.Count(buf.String(), "msg=limits"); n != 1 {
		t.Fatalf("%d lines before the interval ended, want 1:\n%s", n, buf.String())
	}
	th.Flush()
	th.Flush()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{"listener=tcp refused_total=1 within=1h0m0s", "listener=tcp evicted_total=7 refused_total=999 within=1h0m0s"} {
		if !strings.HasSuffix(lines[i], want) {
			t.Errorf("line %d = %q, want it to end %q", i, lines[i], want)
		}
	}
}

func TestLogThrottleWritesTheRestWhenTheIntervalEnds(t *testing.T) {
	var buf netns.Output
	th := NewLogThrottle(slog.New(slog.NewTextHandler(&buf, nil)), slog.LevelWarn, "limits", 20*time.Millisecond)
	th.Note("a")
	th.Note("a")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), "a=1 within") || !strings.Contains(buf.String(), "\n") || strings.Count(buf.String(), "msg=limits") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the counted event was never written:\n%s", buf.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReplyBuckets(t *testing.T) {
	start := time.Now()
	at := func(d time.Duration) time.Time { return start.Add(d) }
	type send struct {
		src        string
		req, reply int
		at         time.Duration
		want       bool
	}
	tests := []struct {
		name        string
		rate, burst int
		sends       []send
	}{
		{"the burst, then nothing", 10, 100, []send{
			{"192.0.2.1", 40, 90, time.Second, true},
			{"192.0.2.1", 40, 90, time.Second, true},
			{"192.0.2.1", 40, 90, time.Second, false},
		}},
		{"replies no larger than their calls are free", 10, 100, []send{
			{"192.0.2.1", 40, 140, time.Second, true},
			{"192.0.2.1", 56, 28, time.Second, true},
			{"192.0.2.1", 40, 40, time.Second, true},
			{"192.0.2.1", 40, 41, time.Second, false},
		}},
		{"refills at the rate, up to the burst", 10, 100, []send{
			{"192.0.2.1", 0, 100, time.Second, true},
			{"192.0.2.1", 0, 50, 3 * time.Second, false},
			{"192.0.2.1", 0, 50, 6 * time.Second, true},
			{"192.0.2.1", 0, 100, time.Hour, true},
			{"192.0.2.1", 0, 1, time.Hour, false},
		}},
		{"sources have their own buckets", 10, 100, []send{
			{"192.0.2.1", 0, 100, time.Second, true},
			{"192.0.2.1", 0, 100, time.Second, false},
			{"192.0.2.2", 0, 100, time.Second, true},
		}},
		{"an IPv6 /64 is one source", 10, 100, []send{
			{"2001:db8::1", 0, 100, time.Second, true},
			{"2001:db8::2", 0, 100, time.Second, false},
		}},
		{"loopback is never limited", 10, 100, []send{
			{"127.0.0.1", 0, 1000, time.Second, true},
			{"127.0.0.1", 0, 1000, time.Second, true},
			{"::1", 0, 1000, time.Second, true},
		}},
		{"a clock read before another's does not refill backwards", 10, 100, []send{
			{"192.0.2.1", 0, 60, 2 * time.Second, true},
			{"192.0.2.1", 0, 40, time.Second, true},
			{"192.0.2.1", 0, 1, 2 * time.Second, false},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewReplyBuckets(tc.rate, tc.burst)
			b.buckets.start = start
			for i, s := range tc.sends {
				if got := b.Allow(netip.MustParseAddr(s.src), s.req, s.reply, at(s.at)); got != s.want {
					t.Errorf("send %d (%s, %d for %d at %v) allowed %v, want %v", i, s.src, s.reply, s.req, s.at, got, s.want)
				}
			}
		})
	}
	if b := NewReplyBuckets(0, 100); !b.Allow(netip.MustParseAddr("192.0.2.1"), 0, 1<<20, start) {
		t.Error("rate 0 limits")
	}
}

// TestSourceBuckets checks the buckets counted in tokens of any kind, such
// as forwarded calls: whole tokens, fractional rates, and what a refused
// cost leaves behind.
func TestSourceBuckets(t *testing.T) {
	start := time.Now()
	type take struct {
		src  string
		cost float64
		at   time.Duration
		want bool
	}
	tests := []struct {
		name        string
		rate, burst float64
		takes       []take
	}{
		{"one call at a time, the burst, then the rate", 0.5, 2, []take{
			{"192.0.2.1", 1, 0, true},
			{"192.0.2.1", 1, 0, true},
			{"192.0.2.1", 1, 0, false},
			{"192.0.2.1", 1, time.Second, false},
			{"192.0.2.1", 1, 3 * time.Second, true},
			{"192.0.2.1", 1, 3 * time.Second, false},
		}},
		{"a refused cost takes nothing", 1, 3, []take{
			{"192.0.2.1", 2, 0, true},
			{"192.0.2.1", 2, 0, false},
			{"192.0.2.1", 1, 0, true},
		}},
		{"nothing is free but nothing", 1, 1, []take{
			{"192.0.2.1", 1, 0, true},
			{"192.0.2.1", 0, 0, true},
			{"192.0.2.1", 1, 0, false},
		}},
		{"loopback and the local socket are never limited", 1, 1, []take{
			{"127.0.0.2", 5, 0, true},
			{"::1", 5, 0, true},
			{"", 5, 0, true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewSourceBuckets(tc.rate, tc.burst)
			b.start = start
			for i, tk := range tc.takes {
				var src netip.Addr
				if tk.src != "" {
					src = netip.MustParseAddr(tk.src)
				}
				if got := b.Take(src, tk.cost, start.Add(tk.at)); got != tk.want {
					t.Errorf("take %d (%s, %v at %v) = %v, want %v", i, tk.src, tk.cost, tk.at, got, tk.want)
				}
			}
		})
	}
	var none *SourceBuckets
	if NewSourceBuckets(0, 10) != nil || !none.Take(netip.MustParseAddr("192.0.2.1"), 100, start) {
		t.Error("rate 0 limits")
	}
}

func TestBudgetOf(t *testing.T) {
	tests := []struct {
		limit   uint64
		reserve int
		want    int
	}{
		{1 << 20, 512, 1<<20 - 512},
		{20000, 512, 19488},
		{1024, 512, 512},
		{1024, 900, 512},
		{1025, 900, 513},
		{100, -1, 50},
		{1 << 40, 512, 1<<30 - 512},
	}
	for _, tc := range tests {
		if got := budgetOf(tc.limit, tc.reserve); got != tc.want {
			t.Errorf("budgetOf(%d, %d) = %d, want %d", tc.limit, tc.reserve, got, tc.want)
		}
	}
}

// failingListener fails every Accept with err until closed.
type failingListener struct {
	net.Listener
	err     error
	accepts atomic.Int64
	closed  chan struct{}
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.accepts.Add(1)
	select {
	case <-l.closed:
		return nil, net.ErrClosed
	default:
		return nil, l.err
	}
}

func (l *failingListener) Close() error { close(l.closed); return nil }

// TestListenerSurvivesEMFILE: out of descriptors, Accept does not spin (the
// failure of CVE-2021-46828), evicts the oldest idle network connection
// to free one, logs a bounded account, and returns once closed.
func TestListenerSurvivesEMFILE(t *testing.T) {
	var buf netns.Output
	b := NewBudget(0)
	network := New(Config{Name: "tcp", Budget: b})
	defer network.Close()
	var evicted atomic.Bool
	if _, err := network.Admit(netip.MustParseAddr("192.0.2.1"), func() { evicted.Store(true) }); err != nil {
		t.Fatal(err)
	}
	local := New(Config{Name: "local", Local: true, Budget: b, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	defer local.Close()
	fl := &failingListener{err: &net.OpError{Op: "accept", Err: syscall.EMFILE}, closed: make(chan struct{})}
	ln := NewListener(fl, local)
	done := make(chan error, 1)
	go func() { _, _, err := ln.AcceptSlot(); done <- err }()
	time.Sleep(300 * time.Millisecond)
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("AcceptSlot after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AcceptSlot did not return after Close")
	}
	// With a doubling pause from 5ms, 300ms hold a handful of attempts;
	// a spinning loop makes millions.
	if n := fl.accepts.Load(); n > 50 {
		t.Errorf("%d accepts in 300ms: spinning on EMFILE", n)
	}
	if !evicted.Load() {
		t.Error("no idle network connection evicted to free a descriptor")
	}
	local.Close()
	if n := strings.Count(buf.String(), "\n"); n < 1 || n > 2 {
		t.Errorf("%d log lines, want 1 or 2:\n%s", n, buf.String())
	}
}

// TestListenerRefusesAndCloses: a refused connection is closed at once and
// Accept goes on to the next.
func TestListenerRefusesAndCloses(t *testing.T) {
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := New(Config{MaxConns: 1})
	defer lim.Close()
	ln := NewListener(tl, lim)
	defer ln.Close()
	type accepted struct {
		conn net.Conn
		slot *Slot
	}
	got := make(chan accepted, 2)
	go func() {
		for {
			c, s, err := ln.AcceptSlot()
			if err != nil {
				return
			}
			got <- accepted{c, s}
		}
	}()
	first, err := net.Dial("tcp", tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	a := <-got
	a.slot.Busy()
	second, err := net.Dial("tcp", tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	_ = second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := second.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection past the cap was not closed")
	}
	a.slot.Release()
	a.conn.Close()
	third, err := net.Dial("tcp", tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	select {
	case b := <-got:
		b.slot.Release()
		b.conn.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the listener stopped accepting after a refusal")
	}
}
