package tcpmux

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/internal/netns"
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/netlimit/netlimittest"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/lifetime/lifetimetest"
)

// waitLimit bounds every wait of these tests: generous, since the machine
// may be loaded; a passing test never waits for it.
const waitLimit = 20 * time.Second

// testMux is a TCPMUX server on loopback over a registry that the HTTP
// face's local socket registers into, as in the daemon.
type testMux struct {
	reg    *registry.Registry
	addr   string
	client *httpmap.Client
	srv    *Server
}

func startMux(t *testing.T, cfg Config) *testMux {
	t.Helper()
	reg := registry.New(registry.Options{})
	life := lifetimetest.Run(t, reg)
	sock := filepath.Join(t.TempDir(), "portmapd.sock")
	web, err := httpmap.NewServer(reg, life, httpmap.Config{SocketPath: sock, HTTPAddr: httpmap.Off, Hostname: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ul, err := httpmap.ListenUnix(sock, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	go web.Serve(ul)
	t.Cleanup(func() { web.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(reg, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testMux{reg: reg, addr: ln.Addr().String(), client: httpmap.NewLocalClient(sock), srv: srv}
}

// register puts a service straight into the registry, as a process of
// uid would have registered it.
func (m *testMux) register(t *testing.T, uid uint32, svc registry.Service) {
	t.Helper()
	p := registry.Process{PID: int32(os.Getpid()), UID: uid, Start: uint64(uid) + 1}
	if _, err := m.reg.RegisterNamed(registry.Caller{Transport: registry.Internal}, p, []registry.Service{svc}); err != nil {
		t.Fatal(err)
	}
}

// ask connects to the mux, sends request as it is, and returns the
// connection and a reader of it.
func (m *testMux) ask(t *testing.T, request string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", m.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitLimit))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// reply reads one reply line, CRLF included.
func reply(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the reply: %q, %v", line, err)
	}
	return line
}

// echo sends back what c sends.
func echo(c net.Conn) { io.Copy(c, c) }

// tcpEcho returns the port of a TCP echo service on loopback.
func tcpEcho(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go netns.ServeEach(ln, echo)
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// listen registers name for TCPMUX through the HTTP face, as a Go service
// does, and closes the listener when the test ends.
func (m *testMux) listen(t *testing.T, spec httpmap.ServiceSpec) *httpmap.MuxListener {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	l, err := m.client.ListenService(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestHandOverToGoService: a client names a Go service that registered
// with httpmap's Listen; it gets "+" and then talks to the service over
// the very connection it opened, handed over (the service sees the
// client's own address), including bytes it sent right after the name.
func TestHandOverToGoService(t *testing.T) {
	m := startMux(t, Config{})
	l := m.listen(t, httpmap.ServiceSpec{Service: "Echo.Example.com"})
	remote := make(chan net.Addr, 1)
	go netns.ServeEach(l, func(c net.Conn) {
		remote <- c.RemoteAddr()
		echo(c)
	})
	c, r := m.ask(t, "ECHO.example.COM\r\nhello, ")
	if got := reply(t, r); got != replyOK {
		t.Fatalf("reply %q, want %q", got, replyOK)
	}
	io.WriteString(c, "world\n")
	if got, _ := r.ReadString('\n'); got != "hello, world\n" {
		t.Fatalf("echoed %q", got)
	}
	if got := <-remote; got.String() != c.LocalAddr().String() {
		t.Errorf("the service's connection is from %v, the client is %v", got, c.LocalAddr())
	}
	// The registration is the Go client's: a unix hand-off socket in the
	// abstract namespace, with the tcpmux flag.
	svcs := m.reg.LookupNamed("echo.example.com")
	if len(svcs) != 1 || svcs[0].Network != netid.Unix || !strings.HasPrefix(svcs[0].Path, "@") || svcs[0].Flags&registry.TCPMux == 0 {
		t.Errorf("registered %+v", svcs)
	}
}

// TestSpliceToTCPService: a plain TCP service registered with tcpmux is
// reached by splicing, and a half-close passes through both ways: the
// service sees the end of the client's input, answers, and the client
// sees the end of the answer.
func TestSpliceToTCPService(t *testing.T) {
	m := startMux(t, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go netns.ServeEach(ln, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		fmt.Fprintf(c, "read %d bytes\n", n)
	})
	m.register(t, uint32(os.Geteuid()), registry.Service{Name: "count.example.com", Network: netid.TCP, Port: uint16(ln.Addr().(*net.TCPAddr).Port), Flags: registry.TCPMux})
	c, r := m.ask(t, "count.example.com\r\n12345")
	if got := reply(t, r); got != replyOK {
		t.Fatalf("reply %q, want %q", got, replyOK)
	}
	io.WriteString(c, "67890")
	c.(*net.TCPConn).CloseWrite()
	rest, err := io.ReadAll(r)
	if err != nil || string(rest) != "read 10 bytes\n" {
		t.Fatalf("after the half-close: %q, %v", rest, err)
	}
}

// TestHelpListsOnlyOptedIn: HELP lists the names registered with muxhelp,
// whatever their kind, and nothing else: not names registered without
// it, not names that are not for TCPMUX at all.
func TestHelpListsOnlyOptedIn(t *testing.T) {
	m := startMux(t, Config{})
	own := uint32(os.Geteuid())
	m.register(t, own, registry.Service{Name: "Listed.example.com", Network: netid.TCP, Port: 7, Flags: registry.TCPMux | registry.MuxHelp})
	m.register(t, own, registry.Service{Name: "quiet.example.com", Network: netid.TCP, Port: 8, Flags: registry.TCPMux})
	m.register(t, own, registry.Service{Name: "plain.example.com", Network: netid.TCP, Port: 9, Flags: registry.MuxHelp})
	m.register(t, own, registry.Service{Name: "nomux.example.com", Network: netid.TCP, Port: 10})
	m.listen(t, httpmap.ServiceSpec{Service: "handed.example.com", MuxHelp: true})
	m.listen(t, httpmap.ServiceSpec{Service: "secret.example.com"})
	for _, ask := range []string{"HELP\r\n", "help\n"} {
		_, r := m.ask(t, ask)
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if want := "listed.example.com\r\nhanded.example.com\r\n"; string(got) != want {
			t.Errorf("%q: %q, want %q", ask, got, want)
		}
	}
}

// TestRefusals: whatever is wrong, the client gets a "-" line and the
// connection ends; a well-formed name that cannot be served gets the same
// answer whatever the reason, so that it tells nothing of what is
// registered.
func TestRefusals(t *testing.T) {
	m := startMux(t, Config{})
	own := uint32(os.Geteuid())
	m.register(t, own, registry.Service{Name: "nomux.example.com", Network: netid.TCP, Port: tcpEcho(t)})
	m.register(t, own, registry.Service{Name: "down.example.com", Network: netid.Unix, Path: "@portmapd-test-nobody-listens", Flags: registry.TCPMux})
	closed := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		return ln
	}()
	m.register(t, own, registry.Service{Name: "closed.example.com", Network: netid.TCP, Port: uint16(closed.Addr().(*net.TCPAddr).Port), Flags: registry.TCPMux})
	// A port that answers, of a registration whose checks fail.
	m.register(t, own, registry.Service{Name: "failing.example.com", Network: netid.TCP, Port: tcpEcho(t), Flags: registry.TCPMux,
		Checks: registry.Checks{TTL: time.Minute}})
	if !m.reg.SetHealth(m.reg.LookupNamed("failing.example.com")[0], registry.Health{Status: registry.Critical, Output: "not refreshed"}) {
		t.Fatal("failing.example.com's health unchanged")
	}
	tests := []struct {
		name, request, want string
	}{
		{"unknown name", "unknown.example.com\r\n", replyUnavailable},
		{"not for TCPMUX", "nomux.example.com\r\n", replyUnavailable},
		{"hand-off socket gone", "down.example.com\r\n", replyUnavailable},
		{"port closed", "closed.example.com\r\n", replyUnavailable},
		{"failing its checks", "failing.example.com\r\n", replyUnavailable},
		{"RPC program", "portmapper.oncrpc.alt\r\n", replyUnavailable},
		{"empty line", "\r\n", replyBadName},
		{"space", "a b\r\n", replyBadName},
		{"not ASCII", "caf\xc3\xa9.example.com\r\n", replyBadName},
		{"too long", strings.Repeat("a", maxLine) + "\r\n", replyTooLong},
		{"longest name plus one", strings.Repeat("a", 254) + "\r\n", replyTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, r := m.ask(t, tt.request)
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("%q, want %q and the end", got, tt.want)
			}
		})
	}
}

// TestSlowNameCutOff: a client that has not sent its whole name within the
// timeout is answered so and cut off.
func TestSlowNameCutOff(t *testing.T) {
	m := startMux(t, Config{Timeout: 300 * time.Millisecond})
	_, r := m.ask(t, "unknown.exa")
	got, err := io.ReadAll(r)
	if err != nil || string(got) != replyTimeout {
		t.Fatalf("%q, %v; want %q and the end", got, err, replyTimeout)
	}
}

// TestEndlessNameCutOff: a client that sends a name without end is
// answered and cut off after maxLine bytes; the server reads no further.
func TestEndlessNameCutOff(t *testing.T) {
	m := startMux(t, Config{})
	c, r := m.ask(t, "")
	go func() {
		chunk := []byte(strings.Repeat("x", 1024))
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	if got := reply(t, r); got != replyTooLong {
		t.Fatalf("reply %q, want %q", got, replyTooLong)
	}
	if _, err := r.ReadByte(); err == nil {
		t.Fatal("the connection goes on after the refusal")
	}
}

// TestAnotherUserCannotReceive: a registration of one user's name that
// points at another user's hand-off socket or port reaches nothing, and
// the socket's owner receives no connection for it; routes go to one
// owner's instances.
func TestAnotherUserCannotReceive(t *testing.T) {
	m := startMux(t, Config{})
	own := uint32(os.Geteuid())
	other := uint32(65534)
	if own == other {
		other = 65533
	}
	mine := m.listen(t, httpmap.ServiceSpec{Service: "mine.example.com"})
	m.register(t, other, registry.Service{Name: "stolen.example.com", Network: netid.Unix, Path: mine.Path(), Flags: registry.TCPMux})
	m.register(t, other, registry.Service{Name: "stolenport.example.com", Network: netid.TCP, Port: tcpEcho(t), Flags: registry.TCPMux})
	for _, name := range []string{"stolen.example.com", "stolenport.example.com"} {
		_, r := m.ask(t, name+"\r\n")
		if got, _ := io.ReadAll(r); string(got) != replyUnavailable {
			t.Errorf("%s: %q, want %q", name, got, replyUnavailable)
		}
	}
	// The first connection mine's socket receives is the one asking for
	// its own name.
	_, r := m.ask(t, "mine.example.com\r\n")
	if got := reply(t, r); got != replyOK {
		t.Fatalf("mine.example.com: %q", got)
	}
	h, err := mine.AcceptHandoff()
	if err != nil {
		t.Fatal(err)
	}
	h.File.Close()
	if h.Name != "mine.example.com" {
		t.Errorf("the socket received a connection for %q", h.Name)
	}
}

// TestAnotherUsersPortOfTheirOwn: an unprivileged user's registration
// reaches a port that user's socket listens on.
func TestAnotherUsersPortOfTheirOwn(t *testing.T) {
	m := startMux(t, Config{})
	ln := lifetimetest.ListenAs(t, 65534, "tcp4", "127.0.0.1:0")
	go netns.ServeEach(ln, echo)
	m.register(t, 65534, registry.Service{Name: "nobody.example.com", Network: netid.TCP, Port: uint16(ln.Addr().(*net.TCPAddr).Port), Flags: registry.TCPMux})
	c, r := m.ask(t, "nobody.example.com\r\n")
	if got := reply(t, r); got != replyOK {
		t.Fatalf("reply %q", got)
	}
	io.WriteString(c, "hi\n")
	if got, _ := r.ReadString('\n'); got != "hi\n" {
		t.Fatalf("echoed %q", got)
	}
}

// TestSquattedPortNotReached: a registration of a port that another user
// listens on (its own service gone from it) reaches nothing, root's too.
func TestSquattedPortNotReached(t *testing.T) {
	m := startMux(t, Config{})
	ln := lifetimetest.ListenAs(t, 65534, "tcp4", "127.0.0.1:0")
	go netns.ServeEach(ln, echo)
	m.register(t, uint32(os.Geteuid()), registry.Service{Name: "squatted.example.com", Network: netid.TCP, Port: uint16(ln.Addr().(*net.TCPAddr).Port), Flags: registry.TCPMux})
	_, r := m.ask(t, "squatted.example.com\r\n")
	if got, _ := io.ReadAll(r); string(got) != replyUnavailable {
		t.Fatalf("%q, want %q", got, replyUnavailable)
	}
}

// TestOwnersInstances: a name's connections go to one user's TCPMUX
// instances: root's if any, else the oldest TCPMUX registration's user's.
func TestOwnersInstances(t *testing.T) {
	svc := func(uid uint32, port uint16, mux bool) registry.Service {
		s := registry.Service{Name: "a.example.com", Network: netid.TCP, Port: port, Process: registry.Process{UID: uid}}
		if mux {
			s.Flags = registry.TCPMux
		}
		return s
	}
	tests := []struct {
		name string
		svcs []registry.Service
		want []uint16
	}{
		{"none", nil, nil},
		{"not for TCPMUX", []registry.Service{svc(1000, 1, false)}, nil},
		{"first user's", []registry.Service{svc(1000, 1, false), svc(1001, 2, true), svc(1000, 3, true), svc(1001, 4, true)}, []uint16{2, 4}},
		{"root's first", []registry.Service{svc(1000, 1, true), svc(0, 2, true), svc(0, 3, false), svc(0, 4, true)}, []uint16{2, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint16
			for _, s := range ownersInstances(tt.svcs) {
				got = append(got, s.Port)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("ports %v, want %v", got, tt.want)
			}
		})
	}
}

// failing returns sv as its checks find it: status.
func failing(sv registry.Service, status registry.Status) registry.Service {
	sv.Health = registry.Health{Status: status}
	return sv
}

// TestRoutePassingOnly: a connection is put through only to instances
// that pass their checks, of the user its name's connections go to; a
// failing instance of that user is not replaced by another user's.
func TestRoutePassingOnly(t *testing.T) {
	svc := func(uid uint32, port uint16) registry.Service {
		return registry.Service{Name: "a.example.com", Network: netid.TCP, Port: port, Flags: registry.TCPMux, Process: registry.Process{UID: uid}}
	}
	tests := []struct {
		name string
		svcs []registry.Service
		want []uint16
	}{
		{"all passing", []registry.Service{svc(1000, 1), svc(1000, 2)}, []uint16{1, 2}},
		{"failing skipped", []registry.Service{failing(svc(1000, 1), registry.Critical), svc(1000, 2), failing(svc(1000, 3), registry.Warning)}, []uint16{2}},
		{"none passing", []registry.Service{failing(svc(1000, 1), registry.Critical)}, nil},
		{"root's failing, another's not tried", []registry.Service{svc(1000, 1), failing(svc(0, 2), registry.Critical)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint16
			for _, s := range passing(ownersInstances(tt.svcs)) {
				got = append(got, s.Port)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("ports %v, want %v", got, tt.want)
			}
		})
	}
}

// TestHelpList: HELP lists a name once, in the order names were first
// registered, when the user its connections go to asked for it and an
// instance of that user's passes its checks.
func TestHelpList(t *testing.T) {
	svc := func(name string, uid uint32, flags registry.NamedFlags) registry.Service {
		return registry.Service{Name: name, Network: netid.TCP, Port: 1, Flags: flags, Process: registry.Process{UID: uid}}
	}
	const mux, help = registry.TCPMux, registry.TCPMux | registry.MuxHelp
	tests := []struct {
		name string
		svcs []registry.Service
		want []string
	}{
		{"none", nil, nil},
		{"once, in registration order", []registry.Service{svc("B.example.com", 1000, help), svc("a.example.com", 1000, help), svc("b.example.com", 1000, help)}, []string{"b.example.com", "a.example.com"}},
		{"one instance of several asked", []registry.Service{svc("a.example.com", 1000, mux), svc("a.example.com", 1000, help)}, []string{"a.example.com"}},
		{"asked by a user its connections do not go to", []registry.Service{svc("a.example.com", 1000, mux), svc("a.example.com", 1001, help)}, nil},
		{"root's not asking hides another's", []registry.Service{svc("a.example.com", 1000, help), svc("a.example.com", 0, mux)}, nil},
		{"not for TCPMUX", []registry.Service{svc("a.example.com", 1000, registry.MuxHelp)}, nil},
		{"failing", []registry.Service{failing(svc("a.example.com", 1000, help), registry.Critical), failing(svc("b.example.com", 1000, help), registry.Warning)}, nil},
		{"one instance of several passing", []registry.Service{failing(svc("a.example.com", 1000, help), registry.Critical), svc("a.example.com", 1000, help)}, []string{"a.example.com"}},
		{"root's failing hides another's", []registry.Service{svc("a.example.com", 1000, help), failing(svc("a.example.com", 0, help), registry.Critical)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := helpList(tt.svcs); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("HELP lists %v, want %v", got, tt.want)
			}
		})
	}
}

// TestListenerClose: closing a Go service's listener ends its
// registration, and the name is then unavailable.
func TestListenerClose(t *testing.T) {
	m := startMux(t, Config{})
	l := m.listen(t, httpmap.ServiceSpec{Service: "brief.example.com"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if svcs := m.reg.LookupNamed("brief.example.com"); len(svcs) != 0 {
		t.Fatalf("still registered: %+v", svcs)
	}
	_, r := m.ask(t, "brief.example.com\r\n")
	if got, _ := io.ReadAll(r); string(got) != replyUnavailable {
		t.Fatalf("%q", got)
	}
}

// TestManyConnectionsAtOnce: a crowd of clients at once, half to a
// handed-over service and half to a spliced one, each gets its own echo.
func TestManyConnectionsAtOnce(t *testing.T) {
	m := startMux(t, Config{})
	l := m.listen(t, httpmap.ServiceSpec{Service: "handed.example.com"})
	go netns.ServeEach(l, echo)
	m.register(t, uint32(os.Geteuid()), registry.Service{Name: "spliced.example.com", Network: netid.TCP, Port: tcpEcho(t), Flags: registry.TCPMux})
	const clients = 200
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			name := "handed.example.com"
			if i%2 == 1 {
				name = "spliced.example.com"
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			c, err := Dial(ctx, m.addr, name)
			if err != nil {
				t.Errorf("%s, client %d: %v", name, i, err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(waitLimit))
			msg := "client " + strconv.Itoa(i) + "\n"
			io.WriteString(c, msg)
			if got, err := bufio.NewReader(c).ReadString('\n'); got != msg {
				t.Errorf("%s, client %d: echo %q, %v", name, i, got, err)
			}
		})
	}
	wg.Wait()
}

// TestConnectionsBounded: at the cap, the connection that has waited
// longest for its name makes room; when every one is in use (spliced),
// a new one is closed unanswered.
func TestConnectionsBounded(t *testing.T) {
	hits := &netlimittest.Hits{}
	m := startMux(t, Config{Limits: netlimit.Limits{MaxConns: 2}, Observer: hits})
	m.register(t, uint32(os.Geteuid()), registry.Service{Name: "spliced.example.com", Network: netid.TCP, Port: tcpEcho(t), Flags: registry.TCPMux})

	silent, r := m.ask(t, "")
	waitOpen(t, m.srv, 1)
	m.ask(t, "")
	waitOpen(t, m.srv, 2)
	// A third evicts the first, which is closed.
	m.ask(t, "")
	if _, err := r.ReadByte(); err == nil {
		t.Fatal("the connection waiting longest still reads")
	}
	silent.Close()
	// The daemon's metrics are told of the eviction.
	if got := hits.List(); len(got) != 1 || got[0] != "tcpmux total evicted" {
		t.Errorf("limit hits observed %q, want one eviction on tcpmux", got)
	}

	m2 := startMux(t, Config{Limits: netlimit.Limits{MaxConns: 2}})
	m2.register(t, uint32(os.Geteuid()), registry.Service{Name: "spliced.example.com", Network: netid.TCP, Port: tcpEcho(t), Flags: registry.TCPMux})
	for range 2 {
		_, r := m2.ask(t, "spliced.example.com\r\n")
		if got := reply(t, r); got != replyOK {
			t.Fatalf("reply %q", got)
		}
	}
	// Closed at once, with the name unread: a reset, or an end.
	_, r = m2.ask(t, "spliced.example.com\r\n")
	if got, err := io.ReadAll(r); len(got) != 0 || err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("past the cap: %q, %v; want the end and nothing else", got, err)
	}
}

// waitOpen waits until s holds n connections.
func waitOpen(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for s.lim.Open() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want %d", s.lim.Open(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIdleSpliceClosed: a spliced connection over which nothing passes
// for the idle timeout is closed, both ends.
func TestIdleSpliceClosed(t *testing.T) {
	m := startMux(t, Config{Limits: netlimit.Limits{IdleTimeout: 200 * time.Millisecond}})
	m.register(t, uint32(os.Geteuid()), registry.Service{Name: "spliced.example.com", Network: netid.TCP, Port: tcpEcho(t), Flags: registry.TCPMux})
	_, r := m.ask(t, "spliced.example.com\r\n")
	if got := reply(t, r); got != replyOK {
		t.Fatalf("reply %q", got)
	}
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle splice: %v, want the end", err)
	}
}

func TestReadName(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{"echo.example.com\r\n", "echo.example.com", nil},
		{"ECHO.Example.COM\r\nafter", "echo.example.com", nil},
		{"me@Example.com\n", "me@example.com", nil},
		{"HELP\r\n", "help", nil},
		{strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61) + "\r\n", strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61), nil},
		{"\r\n", "", errBadName},
		{"a\rb\r\n", "", errBadName},
		{"-x.example.com\r\n", "", errBadName},
		{strings.Repeat("a", maxLine), "", errTooLong},
		{"unfinished", "", io.EOF},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in[:min(len(tt.in), 20)]), func(t *testing.T) {
			r := strings.NewReader(tt.in)
			got, err := readName(r)
			if got != tt.want || !errors.Is(err, tt.err) {
				t.Fatalf("readName = %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
			if err == nil && r.Len() != len(tt.in)-strings.IndexByte(tt.in, '\n')-1 {
				t.Errorf("read past the line end: %d bytes left", r.Len())
			}
		})
	}
}

// FuzzReadName: no input panics or reads past the first line end, and a
// name it returns is a valid, lower-case name.
func FuzzReadName(f *testing.F) {
	f.Add([]byte("echo.example.com\r\nrest"))
	f.Add([]byte("HELP\r\n"))
	f.Add([]byte(strings.Repeat("a", 300)))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := strings.NewReader(string(in))
		name, err := readName(r)
		if read := len(in) - r.Len(); read > maxLine {
			t.Fatalf("read %d bytes", read)
		}
		if err != nil {
			return
		}
		if registry.ValidateName(name) != nil || strings.ToLower(name) != name {
			t.Fatalf("returned %q", name)
		}
	})
}
