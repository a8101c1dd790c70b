package daemon_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/internal/netns"
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

// The soak of issue 9: sizes and rates. The daemon's limits are scaled
// down by their flags, so that a few hundred connections reach every one
// of them (the listeners' totals, the per-source caps and the shared
// descriptor budget, on both faces) without starving a shared machine;
// the mechanisms are the ones the defaults use.
const (
	soakFor          = 60 * time.Second
	soakCallDeadline = 5 * time.Second

	soakNofile    = 576
	soakFDReserve = 224
	soakMaxPidfds = 64
	// soakBudget is the descriptor budget the daemon computes for the
	// flags above (RLIMIT_NOFILE less the reserve and the pidfds; it is
	// at least half the limit, so the daemon takes it as it is).
	soakBudget     = soakNofile - soakFDReserve - soakMaxPidfds
	soakMaxConns   = 160
	soakPerSource  = 8
	soakRPCCap     = 100
	soakProcCap    = 16
	soakPerProcess = 8
	// soakReplyRate and soakReplyBurst are the UDP reply limit's
	// defaults, which the daemon runs with.
	soakReplyRate  = 4096
	soakReplyBurst = 16384

	// Attackers. Each remote group uses eight source addresses, and
	// soakIdlePerSource is three times soakPerSource; the remote
	// connections a face admits (64) and soakLoopbackIdle together
	// exceed soakMaxConns, and when both faces are flooded from
	// loopback, soakBudget.
	soakIdlePerSource = 24
	soakLoopbackIdle  = 160
	soakRedialRate    = 100 // new idle connections a second, per face
	soakKeepAliveRate = 50  // requests a second on busy keep-alive connections
	soakHostileRate   = 150 // malformed datagrams a second
	soakHostileTCP    = 5   // hostile TCP records a second
	soakReflectRate   = 40  // DUMP and GETSTAT datagrams a second
	soakUserRate      = 200 // nobody's calls a second
	soakValidEvery    = 50 * time.Millisecond

	// Programs and ports the valid callers look up, registered by root
	// before the soak: soakProg on TCP and UDP, soakFiller programs
	// beside it so that a DUMP is what a busy NFS server's is, and one
	// named service.
	soakProg       = 0x31500000
	soakTCPPort    = 20049
	soakUDPPort    = 20050
	soakFiller     = 20
	soakNamed      = "soak.example.com"
	soakNamedPort  = 20051
	soakLocalProg  = 0x31500001
	soakValidName  = "valid.soak.example.com"
	soakUserProg   = 0x31600000
	soakUserDomain = "nobody.soak.example.com"
	soakNamedKind  = "HTTP socket register/deregister"
)

// Source groups of attackerSource: eight addresses each.
const (
	groupIdleRPC = iota
	groupHTTP
	groupHostile
	groupReflect
)

// soakSources returns the eight attacker addresses of group.
func soakSources(group int) []netip.Addr {
	out := make([]netip.Addr, 8)
	for i := range out {
		out[i] = attackerSource(group*8 + i)
	}
	return out
}

// TestSoakUnderAttack is issue 9's soak: for soakFor, portmapd in a host of
// its own is attacked from a second host across a veth pair and from its
// own loopback, all at once and at bounded rates:
//
//   - idle TCP connections to port 111, held, re-opened as the daemon
//     evicts them or times them out;
//   - HTTP keep-alive connections to the HTTP port and to port 111
//     (diverted), held idle or kept busy with requests;
//   - malformed and hostile datagrams (truncated headers, huge lengths,
//     rpcvers ≠ 2, bad credentials, oversized) and hostile TCP records;
//   - DUMP and GETSTAT datagrams that would reflect, from the remote host;
//   - nobody filling its quota over the local socket and the HTTP socket:
//     SETs past its cap, junk SETs, named registrations past the
//     per-process and per-user caps, emptied and filled again.
//
// Meanwhile valid callers (a remote UDP GETPORT, remote and loopback TCP
// GETPORTs on new connections, a remote HTTP lookup, root's SET/UNSET on
// the local socket and register/deregister on the HTTP socket) run in
// loops, and every single call must be answered correctly within
// soakCallDeadline. The daemon's RSS, descriptors and log must stay
// bounded, and at the end it must still answer and exit 0 on SIGTERM.
func TestSoakUnderAttack(t *testing.T) {
	if testing.Short() {
		t.Skipf("soak test: runs %v; skipped with -short", soakFor)
	}
	netns.Require(t)
	if u, err := user.Lookup("nobody"); err != nil || u.Uid != strconv.Itoa(nobody) {
		t.Skipf("soak test: needs the user nobody, uid %d, to fill its quota", nobody)
	}
	server, client, daemonLog := attackHosts(t, soakNofile,
		"--max-conns", strconv.Itoa(soakMaxConns), "--max-conns-per-source", strconv.Itoa(soakPerSource),
		"--http-max-conns", strconv.Itoa(soakMaxConns), "--http-max-conns-per-source", strconv.Itoa(soakPerSource),
		"--fd-reserve", strconv.Itoa(soakFDReserve), "--max-pidfds", strconv.Itoa(soakMaxPidfds),
		"--max-rpc-per-uid", strconv.Itoa(soakRPCCap), "--max-processes-per-uid", strconv.Itoa(soakProcCap),
		"--max-per-process", strconv.Itoa(soakPerProcess))
	pid := daemonLog.Cmd.Process.Pid
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "portmapd" {
		t.Fatalf("pid %d is %q, not portmapd: the process chain no longer execs into the daemon", pid, comm)
	}
	rpcSock := filepath.Join(server.Run, "rpcbind.sock")
	httpSock := filepath.Join(server.Run, "portmapd.sock")
	soakRegister(t, rpcSock, httpSock)

	// nobody's part runs from a copy of this test binary it may execute,
	// in the server's host, seeing its /run.
	copyExecutable(t, os.Args[0], filepath.Join(server.Run, "soak.test"))
	userProc := server.Start(server.CommandAs("nobody", "env", "PORTMAPD_SOAK_USER="+soakFor.String(),
		"/run/soak.test", "-test.run=^TestHelperSoakUser$"))

	ctx, stop := context.WithTimeout(context.Background(), soakFor)
	defer stop()
	start := time.Now()
	var wg sync.WaitGroup
	tl := &tally{m: map[string]int{}}
	sampler := &daemonSampler{pid: pid}
	if err := sampler.sample(); err != nil {
		t.Fatal(err)
	}
	goLoop(&wg, func() { sampler.run(ctx) })
	held := &userHoldings{}
	goLoop(&wg, func() { held.run(ctx, rpcSock, httpSock) })
	startIdleFloods(ctx, &wg, server, client, tl)
	startKeepAliveFlood(ctx, &wg, server, client, tl)
	startHostile(ctx, &wg, t, server, client, tl)
	reflect := startReflection(ctx, &wg, t, client)

	valid := &validStats{kinds: map[string]*kindStats{}}
	calls := validCalls(t, server, client, rpcSock, httpSock)
	for _, vc := range calls {
		goLoop(&wg, func() { valid.loop(ctx, vc) })
	}
	<-ctx.Done()
	wg.Wait()
	elapsed := time.Since(start)

	// The valid callers: every call answered, correctly.
	kinds := slices.Sorted(maps.Keys(valid.kinds))
	for _, k := range kinds {
		s := valid.kinds[k]
		t.Logf("valid %-34s %5d answered, %d failed, worst %v", k, s.ok, s.failed, s.worst.Round(time.Millisecond))
		if s.failed > 0 {
			t.Errorf("valid %s: %d of %d calls failed; first: %v", k, s.failed, s.ok+s.failed, strings.Join(s.errs, "; "))
		}
		if s.ok == 0 {
			t.Errorf("valid %s: no call answered in %v", k, elapsed)
		}
	}
	if len(kinds) != len(calls) {
		t.Errorf("valid callers that ran: %v, want %d kinds", kinds, len(calls))
	}

	// The attackers did attack, and reached the limits.
	t.Logf("attackers in %v:\n%s", elapsed.Round(time.Second), tl)
	for _, k := range []string{"rpc idle remote: opened", "rpc idle loopback: opened", "http idle remote: opened",
		"http idle loopback: opened", "http keep-alive: requests answered", "hostile datagrams: sent", "hostile tcp: sent"} {
		if tl.get(k) == 0 {
			t.Errorf("attack %q never happened", k)
		}
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`listener=tcp( \w+=\d+)* evicted_total=\d+`),
		regexp.MustCompile(`listener=tcp( \w+=\d+)* evicted_per_source=\d+`),
		regexp.MustCompile(`listener=http( \w+=\d+)* evicted_total=\d+`),
		regexp.MustCompile(`listener=http( \w+=\d+)* evicted_per_source=\d+`),
		regexp.MustCompile(`listener=\w+( \w+=\d+)* evicted_descriptors=\d+`),
		regexp.MustCompile(`UDP replies withheld`),
		regexp.MustCompile(`registration refused: cap reached"( \w+=\S+)* kind=rpc`),
		regexp.MustCompile(`registration refused: cap reached"( \w+=\S+)* kind=named`),
		regexp.MustCompile(`connections reset: record too large`),
	} {
		// Counts held back are written when their interval ends.
		if err := waitLog(daemonLog, want, 15*time.Second); err != nil {
			t.Errorf("a limit was not reached: %v", err)
		}
	}

	// Reflection: what one remote address got back beyond what it sent is
	// no more than the reply bucket allows over the whole soak.
	reflect.check(t, elapsed+time.Second)

	// nobody: every call answered, accepted within its caps, refused
	// past them.
	select {
	case <-userProc.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("nobody's flood did not end:\n%s", userProc.Output())
	}
	quota := soakUserOutcome(t, userProc)
	t.Logf("nobody: %+v; held at most %d RPC entries, %d processes with names, %d names for one process",
		quota, held.maxRPC, held.maxProcs, held.maxPerProc)
	if len(quota.Other) > 0 || quota.RPCAccepted == 0 || quota.RPCRefused == 0 || quota.JunkRefused == 0 ||
		quota.NamedAccepted == 0 || quota.NamedRefused == 0 || quota.RPCUnset == 0 || quota.NamedDeregistered == 0 {
		t.Errorf("nobody's flood was not served as it should be: %+v", quota)
	}
	if held.err != nil {
		t.Errorf("sampling nobody's holdings: %v", held.err)
	}
	if held.maxRPC > soakRPCCap || held.maxProcs > soakProcCap || held.maxPerProc > soakPerProcess {
		t.Errorf("nobody held %d RPC entries, %d processes with names and %d names for one process; caps %d, %d, %d",
			held.maxRPC, held.maxProcs, held.maxPerProc, soakRPCCap, soakProcCap, soakPerProcess)
	}
	l := listingAt(t, httpSock)
	t.Logf("refusals the daemon counted: %+v", l.Refused)
	if l.Refused.RPC == 0 || l.Refused.Named == 0 {
		t.Errorf("refusals %+v, want both counted", l.Refused)
	}

	// Still healthy: every kind of valid call once more, now that the
	// attack is over.
	for _, vc := range calls {
		cctx, cancel := context.WithTimeout(context.Background(), soakCallDeadline)
		if err := vc.call(cctx); err != nil {
			t.Errorf("after the soak, valid %s: %v", vc.kind, err)
		}
		cancel()
	}

	sampler.check(t)
	stopped := time.Now()
	if !daemonLog.Stop(time.Second) {
		t.Error("portmapd did not exit within a second of SIGTERM")
	} else if err := daemonLog.Err(); err != nil {
		t.Errorf("portmapd exited on SIGTERM: %v", err)
	}
	t.Logf("portmapd stopped %v after SIGTERM", time.Since(stopped).Round(time.Millisecond))
	checkSoakLog(t, daemonLog.Output(), elapsed)
}

// goLoop runs fn in a goroutine that wg waits for.
func goLoop(wg *sync.WaitGroup, fn func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		fn()
	}()
}

// soakRegister makes root's registrations that the valid callers look up.
func soakRegister(t *testing.T, rpcSock, httpSock string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := rpcbind.DialLocal(ctx, rpcSock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	set := func(prog uint32, id netid.ID, port int) {
		r := xdr.RPCB{Prog: prog, Vers: 1, Netid: string(id), Addr: fmt.Sprintf("0.0.0.0.%d.%d", port>>8, port&0xff)}
		if ok, err := c.RpcbSet(ctx, xdr.RpcbVers, r); err != nil || !ok {
			t.Fatalf("SET %+v: %v %v", r, ok, err)
		}
	}
	set(soakProg, netid.TCP, soakTCPPort)
	set(soakProg, netid.UDP, soakUDPPort)
	for i := range soakFiller {
		set(soakProg+0x100+uint32(i), netid.TCP, 30000+i)
		set(soakProg+0x100+uint32(i), netid.UDP, 30000+i)
	}
	hc := httpmap.NewLocalClient(httpSock)
	if _, err := hc.Register(ctx, httpmap.Registration{Services: []httpmap.ServiceSpec{{Service: soakNamed, Port: httpmap.Port(strconv.Itoa(soakNamedPort))}}}); err != nil {
		t.Fatal(err)
	}
}

// A validCall is one kind of legitimate call, which must be answered
// correctly.
type validCall struct {
	kind string
	call func(ctx context.Context) error
}

// validCalls are the legitimate callers: remote ones where the face
// allows remote callers, and root on the local sockets.
func validCalls(t *testing.T, server, client *netns.Host, rpcSock, httpSock string) []validCall {
	legit := netip.MustParseAddr(attackLegit)
	var udpConn *net.UDPConn
	if err := client.Do(func() error {
		var err error
		udpConn, err = net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(legit, 0)),
			net.UDPAddrFromAddrPort(netip.MustParseAddrPort(attackServer+":111")))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	udp := rpcbind.NewClient(udpConn)
	t.Cleanup(func() { udp.Close() })
	hc := httpmap.NewLocalClient(httpSock)
	getport := func(ctx context.Context, c *rpcbind.Client, prot, want uint32) error {
		defer c.Close()
		port, err := c.GetPort(ctx, soakProg, 1, prot)
		if err == nil && port != want {
			err = fmt.Errorf("GETPORT answered port %d, want %d", port, want)
		}
		return err
	}
	tcpGetport := func(dial func() (net.Conn, error)) func(context.Context) error {
		return func(ctx context.Context) error {
			conn, err := dial()
			if err != nil {
				return err
			}
			return getport(ctx, rpcbind.NewClient(conn), netid.ProtoTCP, soakTCPPort)
		}
	}
	httpLookup := func(port string) func(context.Context) error {
		return func(ctx context.Context) error {
			conn, err := dialFromHost(client, legit, "tcp4", attackServer+":"+port)
			if err != nil {
				return err
			}
			defer conn.Close()
			dl, _ := ctx.Deadline()
			_ = conn.SetDeadline(dl)
			status, body, err := getHTTP(conn, bufio.NewReader(conn), "/portmap/"+soakNamed, true)
			if err == nil && (status != http.StatusOK || !strings.Contains(string(body), strconv.Itoa(soakNamedPort))) {
				err = fmt.Errorf("lookup answered %d: %q", status, body)
			}
			return err
		}
	}
	return []validCall{
		{"remote UDP GETPORT", func(ctx context.Context) error {
			port, err := udp.GetPort(ctx, soakProg, 1, netid.ProtoUDP)
			if err == nil && port != soakUDPPort {
				err = fmt.Errorf("GETPORT answered port %d, want %d", port, soakUDPPort)
			}
			return err
		}},
		{"remote TCP GETPORT", tcpGetport(func() (net.Conn, error) {
			return dialFromHost(client, legit, "tcp4", attackServer+":111")
		})},
		{"loopback TCP GETPORT", tcpGetport(func() (net.Conn, error) {
			return server.Dial("tcp4", "127.0.0.1:111")
		})},
		{"remote HTTP lookup on :8111", httpLookup("8111")},
		{"remote HTTP lookup on :111", httpLookup("111")},
		{"local socket SET/UNSET", func(ctx context.Context) error {
			c, err := rpcbind.DialLocal(ctx, rpcSock)
			if err != nil {
				return err
			}
			defer c.Close()
			r := xdr.RPCB{Prog: soakLocalProg, Vers: 1, Netid: string(netid.TCP), Addr: "0.0.0.0.78.84"}
			if ok, err := c.RpcbSet(ctx, xdr.RpcbVers, r); err != nil || !ok {
				return fmt.Errorf("SET: %v %v", ok, err)
			}
			if ok, err := c.RpcbUnset(ctx, xdr.RpcbVers, r); err != nil || !ok {
				return fmt.Errorf("UNSET: %v %v", ok, err)
			}
			return nil
		}},
		{soakNamedKind, func(ctx context.Context) error {
			reg := httpmap.Registration{Services: []httpmap.ServiceSpec{{Service: soakValidName, Port: "20052"}}}
			got, err := hc.Register(ctx, reg)
			if err != nil {
				return fmt.Errorf("register: %w", err)
			}
			if len(got) != 1 || got[0].Service != soakValidName {
				return fmt.Errorf("register answered %+v", got)
			}
			if got, err = hc.Deregister(ctx, reg); err != nil || len(got) != 1 {
				return fmt.Errorf("deregister: %+v %v", got, err)
			}
			return nil
		}},
	}
}

// validStats records the valid calls of each kind.
type validStats struct {
	mu    sync.Mutex
	kinds map[string]*kindStats
}

type kindStats struct {
	ok, failed int
	worst      time.Duration
	errs       []string // the first few failures
}

// loop makes vc's call every soakValidEvery until ctx ends. Each call
// has a deadline of its own, which ctx does not cut short, and which
// its connecting counts against too.
func (v *validStats) loop(ctx context.Context, vc validCall) {
	tick := time.NewTicker(soakValidEvery)
	defer tick.Stop()
	for paced(ctx, tick) {
		cctx, cancel := context.WithTimeout(context.Background(), soakCallDeadline)
		began := time.Now()
		err := vc.call(cctx)
		took := time.Since(began)
		cancel()
		if err == nil && took > soakCallDeadline {
			err = errors.New("answered, but beyond the deadline")
		}
		v.mu.Lock()
		s := v.kinds[vc.kind]
		if s == nil {
			s = &kindStats{}
			v.kinds[vc.kind] = s
		}
		s.worst = max(s.worst, took)
		if err != nil {
			s.failed++
			if len(s.errs) < 3 {
				s.errs = append(s.errs, fmt.Sprintf("%v after %v", err, took.Round(time.Millisecond)))
			}
		} else {
			s.ok++
		}
		v.mu.Unlock()
	}
}

// A tally counts what the attackers did.
type tally struct {
	mu sync.Mutex
	m  map[string]int
}

func (tl *tally) add(what string) {
	tl.mu.Lock()
	tl.m[what]++
	tl.mu.Unlock()
}

func (tl *tally) get(what string) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.m[what]
}

func (tl *tally) String() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(tl.m)) {
		fmt.Fprintf(&b, "  %-45s %d\n", k, tl.m[k])
	}
	return b.String()
}

// paced waits for the next tick of tick, or reports false when ctx ends.
func paced(ctx context.Context, tick *time.Ticker) bool {
	select {
	case <-ctx.Done():
		return false
	case <-tick.C:
		return true
	}
}

// newTicker returns a ticker of perSecond ticks a second, stopped when
// ctx ends.
func newTicker(ctx context.Context, perSecond int) *time.Ticker {
	tick := time.NewTicker(time.Second / time.Duration(perSecond))
	context.AfterFunc(ctx, tick.Stop)
	return tick
}

// An idleFlood holds connections idle, one at a time per goroutine.
type idleFlood struct {
	kind string
	// tick paces the new connections of all the flood's goroutines.
	tick *time.Ticker
	dial func() (net.Conn, error)
	// prepare makes a new connection's first request; nil sends
	// nothing.
	prepare func(net.Conn) error
	// schedule says whether the flood runs at now and until when, or
	// when it starts again; nil runs it throughout.
	schedule func(now time.Time) (until time.Time, on bool)
}

// hold opens a connection, holds it idle until the daemon closes it or
// the flood's schedule ends, and opens another, until ctx ends.
func (f *idleFlood) hold(ctx context.Context, tl *tally) {
	buf := make([]byte, 4096)
	for {
		var until time.Time
		if f.schedule != nil {
			var on bool
			if until, on = f.schedule(time.Now()); !on {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Until(until)):
				}
				continue
			}
		}
		if !paced(ctx, f.tick) {
			return
		}
		c, err := f.dial()
		if err != nil {
			tl.add(f.kind + ": dial failed")
			continue
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		if f.prepare != nil {
			_ = c.SetDeadline(time.Now().Add(soakCallDeadline))
			if err := f.prepare(c); err != nil {
				tl.add(f.kind + ": closed before its first answer")
				stop()
				c.Close()
				continue
			}
		}
		_ = c.SetDeadline(until)
		tl.add(f.kind + ": opened")
		for err == nil {
			_, err = c.Read(buf)
		}
		var ne net.Error
		switch {
		case ctx.Err() != nil:
		case errors.As(err, &ne) && ne.Timeout():
			tl.add(f.kind + ": closed at the end of its phase")
		default:
			tl.add(f.kind + ": closed by the daemon")
		}
		stop()
		c.Close()
	}
}

// soakPhase is how long the loopback idle floods keep to one pattern.
// They cycle through three: on the RPC port only, on the HTTP face only,
// and on both. With one face flooded, it reaches its listener's total
// within the descriptor budget; with both, the budget binds.
const soakPhase = 10 * time.Second

// Faces of the loopback idle floods, in the order of their phases.
const (
	faceRPC = iota
	faceHTTP
)

// loopbackSchedule is the schedule of the loopback idle flood on face,
// from start.
func loopbackSchedule(start time.Time, face int) func(time.Time) (time.Time, bool) {
	on := func(phase int) bool { return phase%3 == 2 || phase%3 == face }
	return func(now time.Time) (time.Time, bool) {
		k := int(now.Sub(start) / soakPhase)
		j := k + 1
		for on(j) == on(k) {
			j++
		}
		return start.Add(time.Duration(j) * soakPhase), on(k)
	}
}

// startIdleFloods holds idle RPC and HTTP connections: from eight remote
// addresses each (three times the per-source cap) throughout, and from
// loopback by phases (loopbackSchedule). Half the RPC ones send nothing;
// the others make one call, and the HTTP ones one request (a quarter of
// them through port 111), before idling.
func startIdleFloods(ctx context.Context, wg *sync.WaitGroup, server, client *netns.Host, tl *tally) {
	start := time.Now()
	rpcTick := newTicker(ctx, soakRedialRate)
	httpTick := newTicker(ctx, soakRedialRate)
	null := func(c net.Conn) error {
		ctx, cancel := context.WithTimeout(context.Background(), soakCallDeadline)
		defer cancel()
		return rpcbind.NewClient(c).Null(ctx, xdr.PmapProg, xdr.PmapVers)
	}
	lookup := func(c net.Conn) error {
		_, _, err := getHTTP(c, bufio.NewReader(c), "/portmap/"+soakNamed, false)
		return err
	}
	port := func(i int) string {
		if i%4 == 3 {
			return "111"
		}
		return "8111"
	}
	// The odd ones make a call, the even ones send nothing.
	call := func(i int) func(net.Conn) error {
		if i%2 == 1 {
			return null
		}
		return nil
	}
	var floods []*idleFlood
	for _, src := range soakSources(groupIdleRPC) {
		for i := range soakIdlePerSource {
			floods = append(floods, &idleFlood{kind: "rpc idle remote", tick: rpcTick, prepare: call(i),
				dial: func() (net.Conn, error) { return dialFromHost(client, src, "tcp4", attackServer+":111") }})
		}
	}
	for _, src := range soakSources(groupHTTP) {
		for i := range soakIdlePerSource {
			floods = append(floods, &idleFlood{kind: "http idle remote", tick: httpTick, prepare: lookup,
				dial: func() (net.Conn, error) { return dialFromHost(client, src, "tcp4", attackServer+":"+port(i)) }})
		}
	}
	for i := range soakLoopbackIdle {
		floods = append(floods,
			&idleFlood{kind: "rpc idle loopback", tick: rpcTick, prepare: call(i), schedule: loopbackSchedule(start, faceRPC),
				dial: func() (net.Conn, error) { return server.Dial("tcp4", "127.0.0.1:111") }},
			&idleFlood{kind: "http idle loopback", tick: httpTick, prepare: lookup, schedule: loopbackSchedule(start, faceHTTP),
				dial: func() (net.Conn, error) { return server.Dial("tcp4", "127.0.0.1:"+port(i)) }})
	}
	for _, f := range floods {
		goLoop(wg, func() { f.hold(ctx, tl) })
	}
}

// startKeepAliveFlood keeps eight keep-alive connections busy with
// requests for the whole listing, four remote and four on loopback, half
// of them through port 111, opening a new one when the daemon closes one.
func startKeepAliveFlood(ctx context.Context, wg *sync.WaitGroup, server, client *netns.Host, tl *tally) {
	tick := newTicker(ctx, soakKeepAliveRate)
	srcs := soakSources(groupHTTP)
	for i := range 8 {
		port := []string{"8111", "111"}[i%2]
		dial := func() (net.Conn, error) { return server.Dial("tcp4", "127.0.0.1:"+port) }
		if i < 4 {
			dial = func() (net.Conn, error) { return dialFromHost(client, srcs[i], "tcp4", attackServer+":"+port) }
		}
		goLoop(wg, func() {
			for ctx.Err() == nil {
				c, err := dial()
				if err != nil {
					tl.add("http keep-alive: dial failed")
					if !paced(ctx, tick) {
						return
					}
					continue
				}
				stop := context.AfterFunc(ctx, func() { c.Close() })
				r := bufio.NewReader(c)
				for paced(ctx, tick) {
					_ = c.SetDeadline(time.Now().Add(soakCallDeadline))
					if _, _, err := getHTTP(c, r, "/portmap", false); err != nil {
						break
					}
					tl.add("http keep-alive: requests answered")
				}
				if ctx.Err() == nil {
					tl.add("http keep-alive: closed by the daemon")
				}
				stop()
				c.Close()
			}
		})
	}
}

// hostileDatagrams are calls no server should choke on: cut short,
// claiming lengths far beyond the datagram, of another RPC version, with
// credentials that are malformed or of unknown flavours, oversized, and
// messages that are not calls at all.
func hostileDatagrams() [][]byte {
	call := func(rpcvers, prog, vers, proc uint32, cred xdr.OpaqueAuth, args ...uint32) []byte {
		var e xdr.Encoder
		h := xdr.CallHeader{XID: 0x50a4, RPCVers: rpcvers, Prog: prog, Vers: vers, Proc: proc, Cred: cred}
		h.Encode(&e)
		b := e.Bytes()
		for _, a := range args {
			b = binary.BigEndian.AppendUint32(b, a)
		}
		return b
	}
	null := call(xdr.RPCVersion, xdr.PmapProg, xdr.PmapVers, xdr.PmapProcNull, xdr.OpaqueAuth{})
	word := func(b []byte, at int, w uint32) []byte {
		b = slices.Clone(b)
		binary.BigEndian.PutUint32(b[at:], w)
		return b
	}
	var sys xdr.Encoder
	xdr.AuthSysParms{MachineName: "soak", GIDs: make([]uint32, xdr.MaxGroups+1)}.Encode(&sys)
	groups := xdr.OpaqueAuth{Flavor: xdr.AuthSys, Body: sys.Bytes()[8:]}
	var name xdr.Encoder
	xdr.AuthSysParms{MachineName: "soak"}.Encode(&name)
	hugeName := xdr.OpaqueAuth{Flavor: xdr.AuthSys, Body: word(name.Bytes()[8:], 4, 0xfffffff0)}
	return [][]byte{
		null[:3],                   // shorter than an xid
		null[:8],                   // an xid and a message type
		null[:24],                  // cut before the credential
		word(null, 28, 0xfffffff0), // a credential of 4 GiB
		word(null, 36, 0x7fffffff), // a verifier of 2 GiB
		word(null, 4, 1),           // a reply, sent to the server
		word(null, 8, 3),           // rpcvers 3
		word(null, 8, 0)[:12],      // rpcvers 0, and nothing after it
		call(xdr.RPCVersion, xdr.PmapProg, xdr.PmapVers, xdr.PmapProcNull, xdr.OpaqueAuth{Body: make([]byte, 401)}),
		call(xdr.RPCVersion, xdr.PmapProg, xdr.PmapVers, xdr.PmapProcNull, xdr.OpaqueAuth{Flavor: 99}),
		call(xdr.RPCVersion, xdr.PmapProg, xdr.PmapVers, xdr.PmapProcNull, groups),
		call(xdr.RPCVersion, xdr.PmapProg, xdr.PmapVers, xdr.PmapProcNull, hugeName),
		call(xdr.RPCVersion, xdr.PmapProg, xdr.PmapVers, xdr.PmapProcGetport, xdr.OpaqueAuth{}, soakProg),
		call(xdr.RPCVersion, xdr.PmapProg, xdr.RpcbVers, xdr.RpcbProcGetaddr, xdr.OpaqueAuth{}, soakProg, 1, 0x7ffffff0),
		call(xdr.RPCVersion, xdr.PmapProg, xdr.PmapVers, xdr.PmapProcCallit, xdr.OpaqueAuth{}, soakProg, 1, 0, 0xfffffff0),
		call(xdr.RPCVersion, xdr.PmapProg, xdr.PmapVers, xdr.PmapProcSet, xdr.OpaqueAuth{}, soakProg, 1, netid.ProtoTCP, 1),
		call(xdr.RPCVersion, xdr.PmapProg, xdr.RpcbVers4, 99, xdr.OpaqueAuth{}),
		append(slices.Clone(null), make([]byte, 20000)...), // beyond --max-message
	}
}

// startHostile sends hostileDatagrams round-robin from eight remote
// addresses and from loopback, and hostile TCP records from one remote
// address, counting the answers.
func startHostile(ctx context.Context, wg *sync.WaitGroup, t *testing.T, server, client *netns.Host, tl *tally) {
	type sock struct {
		conn net.PacketConn
		to   net.Addr
	}
	var socks []sock
	open := func(h *netns.Host, from netip.Addr, to string) {
		c, err := h.ListenPacket("udp4", netip.AddrPortFrom(from, 0).String())
		if err != nil {
			t.Fatal(err)
		}
		context.AfterFunc(ctx, func() { c.Close() })
		socks = append(socks, sock{c, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(to))})
		goLoop(wg, func() {
			buf := make([]byte, 1<<16)
			for {
				if _, _, err := c.ReadFrom(buf); err != nil {
					return
				}
				tl.add("hostile datagrams: answered")
			}
		})
	}
	for _, src := range soakSources(groupHostile) {
		open(client, src, attackServer+":111")
	}
	open(server, netip.MustParseAddr("127.0.0.1"), "127.0.0.1:111")
	cases := hostileDatagrams()
	tick := newTicker(ctx, soakHostileRate)
	goLoop(wg, func() {
		for n := 0; paced(ctx, tick); n++ {
			s := socks[n%len(socks)]
			if _, err := s.conn.WriteTo(cases[n%len(cases)], s.to); err == nil {
				tl.add("hostile datagrams: sent")
			}
		}
	})

	// Over TCP: a record claiming 2 GiB, a record beyond --max-message,
	// one of rpcvers 3, and a record cut short.
	rpcvers3 := nullCallBytes(9)
	binary.BigEndian.PutUint32(rpcvers3[8:], 3)
	records := [][]byte{
		{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1},
		append(binary.BigEndian.AppendUint32(nil, 1<<31|20000), make([]byte, 20000)...),
		xdr.AppendRecord(nil, rpcvers3, 0),
		xdr.AppendRecord(nil, nullCallBytes(9), 0)[:20],
	}
	tcpTick := newTicker(ctx, soakHostileTCP)
	src := soakSources(groupHostile)[0]
	goLoop(wg, func() {
		for n := 0; paced(ctx, tcpTick); n++ {
			c, err := dialFromHost(client, src, "tcp4", attackServer+":111")
			if err != nil {
				tl.add("hostile tcp: dial failed")
				continue
			}
			_ = c.SetDeadline(time.Now().Add(soakCallDeadline))
			if _, err := c.Write(records[n%len(records)]); err == nil {
				tl.add("hostile tcp: sent")
			}
			c.Close()
		}
	})
}

// A reflector sends DUMP and GETSTAT datagrams from eight remote
// addresses, as spoofed calls would reflect at their victims, and adds
// up what each address gets back.
type reflector struct {
	mu      sync.Mutex
	sent    map[netip.Addr]int
	replies map[netip.Addr]int
	excess  map[netip.Addr]int // reply bytes beyond the call's
}

// reflectCalls are a v2 DUMP, a v3 DUMP and a v4 GETSTAT, all of one size.
func reflectCalls() [][]byte {
	var out [][]byte
	for _, vp := range [][2]uint32{{xdr.PmapVers, xdr.PmapProcDump}, {xdr.RpcbVers, xdr.RpcbProcDump}, {xdr.RpcbVers4, xdr.RpcbProcGetstat}} {
		var e xdr.Encoder
		h := xdr.CallHeader{XID: 0x5eed, RPCVers: xdr.RPCVersion, Prog: xdr.PmapProg, Vers: vp[0], Proc: vp[1]}
		h.Encode(&e)
		out = append(out, e.Bytes())
	}
	return out
}

// startReflection sends reflectCalls from the reflection group of addresses
// at soakReflectRate until ctx ends.
func startReflection(ctx context.Context, wg *sync.WaitGroup, t *testing.T, client *netns.Host) *reflector {
	r := &reflector{sent: map[netip.Addr]int{}, replies: map[netip.Addr]int{}, excess: map[netip.Addr]int{}}
	calls := reflectCalls()
	callSize := len(calls[0])
	to := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(attackServer + ":111"))
	var conns []net.PacketConn
	srcs := soakSources(groupReflect)
	for _, src := range srcs {
		c, err := client.ListenPacket("udp4", netip.AddrPortFrom(src, 0).String())
		if err != nil {
			t.Fatal(err)
		}
		context.AfterFunc(ctx, func() { c.Close() })
		conns = append(conns, c)
		goLoop(wg, func() {
			buf := make([]byte, 1<<16)
			for {
				n, _, err := c.ReadFrom(buf)
				if err != nil {
					return
				}
				r.mu.Lock()
				r.replies[src]++
				r.excess[src] += n - callSize
				r.mu.Unlock()
			}
		})
	}
	tick := newTicker(ctx, soakReflectRate)
	goLoop(wg, func() {
		for n := 0; paced(ctx, tick); n++ {
			i := n % len(conns)
			if _, err := conns[i].WriteTo(calls[(n/len(conns))%len(calls)], to); err == nil {
				r.mu.Lock()
				r.sent[srcs[i]]++
				r.mu.Unlock()
			}
		}
	})
	return r
}

// check fails t if an address got back more bytes beyond its calls than
// the reply bucket allows in elapsed: its burst plus its rate.
func (r *reflector) check(t *testing.T, elapsed time.Duration) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	allowed := soakReplyBurst + int(elapsed.Seconds()*soakReplyRate)
	var lines []string
	for src, sent := range r.sent {
		lines = append(lines, fmt.Sprintf("%v: %d calls, %d replies, %d bytes beyond the calls", src, sent, r.replies[src], r.excess[src]))
		if r.excess[src] > allowed {
			t.Errorf("%v got %d bytes beyond its calls in %v; the reply limit allows %d", src, r.excess[src], elapsed, allowed)
		}
		if r.replies[src] == 0 {
			t.Errorf("%v got no reply to %d DUMP and GETSTAT calls", src, sent)
		}
	}
	sort.Strings(lines)
	t.Logf("reflection, per remote address (allowed beyond the calls: %d bytes):\n  %s", allowed, strings.Join(lines, "\n  "))
}

// A daemonSampler samples the daemon's memory and descriptors.
type daemonSampler struct {
	pid                         int
	samples                     int
	startRSS, maxRSS            int // KiB
	maxFDs, maxSockets, maxPids int
	err                         error
}

// run samples every 250 ms until ctx ends.
func (s *daemonSampler) run(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for paced(ctx, tick) {
		if err := s.sample(); err != nil {
			s.err = err
			return
		}
	}
}

// sample takes one sample.
func (s *daemonSampler) sample() error {
	rss, _, err := procStatusKiB(s.pid)
	if err != nil {
		return err
	}
	fds, err := descriptorsOf(s.pid)
	if err != nil {
		return err
	}
	if s.samples == 0 {
		s.startRSS = rss
	}
	s.samples++
	s.maxRSS = max(s.maxRSS, rss)
	s.maxFDs = max(s.maxFDs, fds.total)
	s.maxSockets = max(s.maxSockets, fds.sockets)
	s.maxPids = max(s.maxPids, fds.pidfds)
	return nil
}

// procStatusKiB returns VmRSS and VmHWM of process pid, in KiB.
func procStatusKiB(pid int) (rss, hwm int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rss, _ = strconv.Atoi(f[1])
		case "VmHWM:":
			hwm, _ = strconv.Atoi(f[1])
		}
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, fmt.Errorf("no VmRSS or VmHWM in /proc/%d/status", pid)
	}
	return rss, hwm, nil
}

// soakRSSBound is the most resident memory (VmRSS throughout, VmHWM at
// the end) the daemon may reach in the soak, in KiB. Measured on a
// shared 2-core machine: about 12 MiB before the soak and 24 to 28 MiB at
// its peak. What the attacks can make it hold is bounded by the limits:
// at most soakBudget network connections at once (a goroutine and its
// buffers each, tens of KiB for HTTP), nobody's capped registrations,
// listings of a few hundred rows. 64 MiB is more than twice the measured
// peak, so that a slower garbage collector on a loaded machine does not
// fail the test, and still well below what a leak reaches: the soak
// opens some 12,000 connections, and 4 KiB left behind by each would add
// 48 MiB (the holes of issue 9 reached 277 and 499 MB).
const soakRSSBound = 64 << 10

// soakSocketsBeyondBudget is how many sockets the daemon may hold that
// the descriptor budget does not count: its listeners (UDP, TCP and
// HTTP, over IPv4 and IPv6, the local sockets, abstract and not), its
// netlink sockets, and the few local connections of the soak's callers.
const soakSocketsBeyondBudget = 32

// check fails t unless the daemon's memory and descriptors stayed within
// their bounds throughout.
func (s *daemonSampler) check(t *testing.T) {
	t.Helper()
	if s.err != nil {
		t.Errorf("sampling the daemon: %v", s.err)
	}
	if err := s.sample(); err != nil {
		t.Fatalf("sampling the daemon at the end: %v", err)
	}
	rss, hwm, err := procStatusKiB(s.pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("daemon: %d samples; RSS %d KiB before the soak, at most %d KiB in it (now %d, VmHWM %d); at most %d descriptors, %d sockets, %d pidfds",
		s.samples, s.startRSS, s.maxRSS, rss, hwm, s.maxFDs, s.maxSockets, s.maxPids)
	if s.maxRSS > soakRSSBound || hwm > soakRSSBound {
		t.Errorf("RSS reached %d KiB (VmHWM %d KiB), bound %d KiB", s.maxRSS, hwm, soakRSSBound)
	}
	if s.maxFDs >= soakNofile {
		t.Errorf("%d descriptors open: the limit, %d, was reached", s.maxFDs, soakNofile)
	}
	if s.maxSockets > soakBudget+soakSocketsBeyondBudget {
		t.Errorf("%d sockets open, want at most the budget %d and %d more", s.maxSockets, soakBudget, soakSocketsBeyondBudget)
	}
	if s.maxPids > soakMaxPidfds {
		t.Errorf("%d pidfds open, budget %d", s.maxPids, soakMaxPidfds)
	}
}

// userHoldings samples what nobody holds, as root sees it over the local
// sockets.
type userHoldings struct {
	maxRPC, maxProcs, maxPerProc int
	err                          error
}

func (u *userHoldings) run(ctx context.Context, rpcSock, httpSock string) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	hc := httpmap.NewLocalClient(httpSock)
	owner := strconv.Itoa(nobody)
	for paced(ctx, tick) {
		cctx, cancel := context.WithTimeout(context.Background(), soakCallDeadline)
		err := func() error {
			c, err := rpcbind.DialLocal(cctx, rpcSock)
			if err != nil {
				return err
			}
			defer c.Close()
			entries, err := c.RpcbDump(cctx, xdr.RpcbVers)
			if err != nil {
				return err
			}
			n := 0
			for _, e := range entries {
				if e.Owner == owner {
					n++
				}
			}
			u.maxRPC = max(u.maxRPC, n)
			ins, err := hc.List(cctx, httpmap.Filter{})
			if err != nil {
				return err
			}
			perProc := map[int32]int{}
			for _, in := range ins {
				if in.RPC == nil && in.UID != nil && *in.UID == nobody {
					perProc[in.PID]++
				}
			}
			u.maxProcs = max(u.maxProcs, len(perProc))
			for _, n := range perProc {
				u.maxPerProc = max(u.maxPerProc, n)
			}
			return nil
		}()
		cancel()
		if err != nil && u.err == nil {
			u.err = err
		}
	}
}

// soakUserResult is what TestHelperSoakUser reports.
type soakUserResult struct {
	RPCAccepted       int            `json:"rpc_accepted"`
	RPCRefused        int            `json:"rpc_refused"`
	RPCUnset          int            `json:"rpc_unset"`
	JunkRefused       int            `json:"junk_refused"`
	NamedAccepted     int            `json:"named_accepted"`
	NamedRefused      int            `json:"named_refused"`
	NamedDeregistered int            `json:"named_deregistered"`
	Other             map[string]int `json:"other,omitempty"`
}

// soakUserOutcome decodes the report nobody's helper printed last.
func soakUserOutcome(t *testing.T, p *netns.Proc) soakUserResult {
	t.Helper()
	out := strings.TrimSpace(p.Output())
	var res soakUserResult
	if err := json.Unmarshal([]byte(out[strings.LastIndex(out, "\n")+1:]), &res); err != nil || p.Err() != nil {
		t.Fatalf("nobody's flood: %v %v\n%s", p.Err(), err, out)
	}
	return res
}

// TestHelperSoakUser is not a test: run as nobody in the soak's server
// host with PORTMAPD_SOAK_USER set to a duration, it fills nobody's
// quota for that long over /run/rpcbind.sock and /run/portmapd.sock:
// SETs past the entry cap and junk SETs, names for itself past the
// per-process cap and for sleeping children past the process cap, all
// emptied and filled again every third round, and prints what was
// accepted and refused as JSON.
func TestHelperSoakUser(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("PORTMAPD_SOAK_USER"))
	if err != nil {
		t.Skip("helper process only")
	}
	res := soakUserResult{Other: map[string]int{}}
	var sleepers []*exec.Cmd
	// A name slot: a process (0: this one) and a name.
	type slot struct {
		pid  int32
		name string
		held bool
	}
	var slots []*slot
	for i := range soakPerProcess + 4 {
		slots = append(slots, &slot{name: fmt.Sprintf("self%d.%s", i, soakUserDomain)})
	}
	for i := range soakProcCap + 3 {
		s := exec.Command("sleep", "3600")
		if err := s.Start(); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		sleepers = append(sleepers, s)
		slots = append(slots, &slot{pid: int32(s.Process.Pid), name: fmt.Sprintf("child%d.%s", i, soakUserDomain)})
	}
	progs := make([]bool, soakRPCCap+20) // held or not
	hc := httpmap.NewLocalClient("/run/portmapd.sock")
	var rpc *rpcbind.Client
	call := func(fn func(ctx context.Context, c *rpcbind.Client) (bool, error)) (bool, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), soakCallDeadline)
		defer cancel()
		if rpc == nil {
			var err error
			if rpc, err = rpcbind.DialLocal(ctx, "/run/rpcbind.sock"); err != nil {
				res.Other["dial: "+err.Error()]++
				return false, false
			}
		}
		ok, err := fn(ctx, rpc)
		if err != nil {
			res.Other["call: "+err.Error()]++
			rpc.Close()
			rpc = nil
			return false, false
		}
		return ok, true
	}
	junk := strings.Repeat("a", 4096)
	tick := time.NewTicker(time.Second / soakUserRate)
	defer tick.Stop()
	deadline := time.Now().Add(d)
	for n := 0; time.Now().Before(deadline); n++ {
		<-tick.C
		switch {
		case n%20 == 0:
			ok, answered := call(func(ctx context.Context, c *rpcbind.Client) (bool, error) {
				return c.RpcbSet(ctx, xdr.RpcbVers, xdr.RPCB{Prog: soakUserProg, Vers: 2, Netid: "x", Addr: junk})
			})
			if answered && ok {
				res.Other["junk SET accepted"]++
			} else if answered {
				res.JunkRefused++
			}
		case n%2 == 0:
			// RPC: two rounds of SETs over every program, then a
			// round of UNSETs of those held.
			k := n / 2
			i := k % len(progs)
			r := xdr.RPCB{Prog: soakUserProg + uint32(i), Vers: 1, Netid: string(netid.TCP), Addr: "127.0.0.1.78.90"}
			if (k/len(progs))%3 == 2 {
				if !progs[i] {
					continue
				}
				if ok, answered := call(func(ctx context.Context, c *rpcbind.Client) (bool, error) { return c.RpcbUnset(ctx, xdr.RpcbVers, r) }); answered {
					if !ok {
						res.Other["UNSET of a held entry refused"]++
					}
					res.RPCUnset++
					progs[i] = false
				}
				continue
			}
			if progs[i] {
				continue
			}
			if ok, answered := call(func(ctx context.Context, c *rpcbind.Client) (bool, error) { return c.RpcbSet(ctx, xdr.RpcbVers, r) }); answered {
				if ok {
					res.RPCAccepted++
					progs[i] = true
				} else {
					res.RPCRefused++
				}
			}
		default:
			// Names: the same rounds over every slot.
			k := n / 2
			s := slots[k%len(slots)]
			reg := httpmap.Registration{PID: s.pid, Services: []httpmap.ServiceSpec{{Service: s.name, Port: "20060"}}}
			ctx, cancel := context.WithTimeout(context.Background(), soakCallDeadline)
			var he *httpmap.Error
			switch {
			case (k/len(slots))%3 == 2 && s.held:
				if _, err := hc.Deregister(ctx, reg); err != nil {
					res.Other["deregister: "+err.Error()]++
				} else {
					res.NamedDeregistered++
					s.held = false
				}
			case (k/len(slots))%3 == 2 || s.held:
			default:
				_, err := hc.Register(ctx, reg)
				switch {
				case err == nil:
					res.NamedAccepted++
					s.held = true
				case errors.As(err, &he) && he.Status == http.StatusForbidden:
					res.NamedRefused++
				default:
					res.Other["register: "+err.Error()]++
				}
			}
			cancel()
		}
	}
	for _, s := range sleepers {
		s.Process.Kill()
		s.Wait()
	}
	if len(res.Other) == 0 {
		res.Other = nil
	}
	// Exit before the testing package reports on stdout.
	json.NewEncoder(os.Stdout).Encode(res)
	os.Exit(0)
}

// auditSources counts the sources of the audit lines in out: each uid
// and each remote address, as audit.Source tells them apart.
func auditSources(out string) int {
	who := regexp.MustCompile(`msg=audit .*?(uid=\d+|from=\S+|source="[^"]*")`)
	seen := map[string]bool{}
	for _, m := range who.FindAllStringSubmatch(out, -1) {
		key := m[1]
		if strings.HasPrefix(key, "from=") {
			if ap, err := netip.ParseAddrPort(strings.TrimPrefix(key, "from=")); err == nil {
				key = "from=" + ap.Addr().String()
			}
		}
		seen[key] = true
	}
	return max(len(seen), 1)
}

// checkSoakLog fails t unless the daemon's log held what the attacks
// caused only as lines of the limits, each no more often than its rate
// allows; the audit trail within each source's bound; and little else.
func checkSoakLog(t *testing.T, out string, elapsed time.Duration) {
	t.Helper()
	msgRe := regexp.MustCompile(`msg=("(?:[^"\\]|\\.)*"|\S+)`)
	byMsg := map[string]int{}
	var limitLines []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		m := msgRe.FindStringSubmatch(line)
		if m == nil {
			byMsg["(not slog) "+line]++
			continue
		}
		msg, err := strconv.Unquote(m[1])
		if err != nil {
			msg = m[1]
		}
		byMsg[msg]++
		if strings.Contains(line, "level=WARN") {
			limitLines = append(limitLines, line)
		}
	}
	var lines []string
	for _, m := range slices.Sorted(maps.Keys(byMsg)) {
		lines = append(lines, fmt.Sprintf("%6d %s", byMsg[m], m))
	}
	t.Logf("the daemon's log, lines by message:\n%s", strings.Join(lines, "\n"))
	t.Logf("the daemon's account of the attacks:\n%s", strings.Join(limitLines, "\n"))
	intervals := int(elapsed/(10*time.Second)) + 2
	bounds := map[string]int{
		// Per listener (tcp, tcp6, http, and the local ones), at most
		// one line per 10 s.
		"connection limits enforced": 6 * intervals,
		// Per stream listener (tcp, tcp6, local).
		"connections reset: record too large": 3 * intervals,
		// Per UDP socket (udp, udp6).
		"UDP replies withheld: reply-byte rate limit": 2 * intervals,
		// Per kind and owner, at most one a minute.
		"registration refused: cap reached": 2 * (int(elapsed/time.Minute) + 2),
		// The audit trail: each source's burst and then its rate,
		// and as many summaries of what it did not log.
		"audit": auditSources(out) * (netlimit.DefaultLineBurst + 2*netlimit.DefaultLinesPerMinute*(int(elapsed/time.Minute)+1)),
		// nobody's names and RPC entries, once its flood ends.
		"deregistered: process exited": soakProcCap * soakPerProcess,
		"pruned registration":          soakRPCCap,
	}
	// Start, stop, and what a host may need to say once.
	const others = 10
	n := 0
	for msg, lines := range byMsg {
		if b, ok := bounds[msg]; ok {
			if lines > b {
				t.Errorf("%d log lines %q in %v, want at most %d", lines, msg, elapsed, b)
			}
		} else {
			n += lines
		}
	}
	if n > others {
		t.Errorf("%d other log lines, want at most %d", n, others)
	}
	if strings.Contains(out, "too many open files") || strings.Contains(out, "panic") {
		t.Error("the daemon ran out of descriptors or panicked")
	}
}
