package lifetime

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sockKey names one socket in a Table: a port of a protocol, or an
// AF_UNIX path.
type sockKey struct {
	proto Proto
	port  uint16
	path  string
}

func (k sockKey) in(t *Table) bool {
	if k.path != "" {
		return t.BoundPath(k.path)
	}
	return t.Bound(k.proto, k.port)
}

func (k sockKey) String() string {
	switch {
	case k.path != "":
		return "unix " + strconv.Quote(k.path)
	case k.proto == TCP:
		return "tcp port " + strconv.Itoa(int(k.port))
	}
	return "udp port " + strconv.Itoa(int(k.port))
}

type expect struct {
	key   sockKey
	bound bool
}

// opened is what a case created: the sockets it expects the table to show
// or not, and how to close them.
type opened struct {
	want []expect
	// close releases the sockets, after which none of want may be bound.
	// It is nil for TCP connections, whose ports stay held while they
	// wind down through the FIN states.
	close func()
}

func portOf(t *testing.T, a net.Addr) uint16 {
	t.Helper()
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return ap.Port()
}

// skipOrFatal skips when the error is IPv6 being unavailable.
func skipOrFatal(t *testing.T, network string, err error) {
	t.Helper()
	if strings.HasSuffix(network, "6") {
		t.Skipf("no IPv6 here: %v", err)
	}
	t.Fatal(err)
}

func listenTCP(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		skipOrFatal(t, network, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func listenUDP(t *testing.T, network, addr string) net.PacketConn {
	t.Helper()
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		skipOrFatal(t, network, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// connPair returns the two ends of a TCP connection whose listener is
// already closed, so that only the connection holds the server's port.
func connPair(t *testing.T, network, addr string) (c, s net.Conn) {
	t.Helper()
	l := listenTCP(t, network, addr)
	c, err := net.Dial(network, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	l.Close()
	return c, s
}

// tcpStates returns the states /proc/net/tcp and tcp6 list for sockets
// bound to port.
func tcpStates(t *testing.T, port uint16) map[uint64]bool {
	t.Helper()
	states := map[uint64]bool{}
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 4 {
				continue
			}
			i := strings.LastIndexByte(f[1], ':')
			p, err := strconv.ParseUint(f[1][i+1:], 16, 16)
			if err != nil || uint16(p) != port {
				continue
			}
			if st, err := strconv.ParseUint(f[3], 16, 8); err == nil {
				states[st] = true
			}
		}
	}
	return states
}

// awaitTCP waits until the sockets on each port are in exactly the
// states given (none for an empty list), and skips the test if the kernel
// takes too long to get there: it says nothing about the code under test.
func awaitTCP(t *testing.T, want map[uint16][]uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok := true
		for port, states := range want {
			got := tcpStates(t, port)
			ok = ok && len(got) == len(states)
			for _, st := range states {
				ok = ok && got[st]
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Skipf("TCP sockets did not reach states %v", want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readEOF waits until the peer's FIN has arrived at c.
func readEOF(t *testing.T, c net.Conn) {
	t.Helper()
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after the peer closed: %v, want EOF", err)
	}
}

func abstractName() string {
	return fmt.Sprintf("@portmapd-lifetime-test-%d-%x", os.Getpid(), rand.Uint64())
}

// rawUnix returns an AF_UNIX stream socket bound to sa, and its bound name.
func rawUnix(t *testing.T, sa *unix.SockaddrUnix) (int, string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatal(err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, got.(*unix.SockaddrUnix).Name
}

// socketCases open real sockets of every kind the table knows.
func socketCases() []struct {
	name string
	open func(t *testing.T) opened
} {
	tcp := func(p uint16) sockKey { return sockKey{proto: TCP, port: p} }
	udp := func(p uint16) sockKey { return sockKey{proto: UDP, port: p} }
	path := func(p string) sockKey { return sockKey{path: p} }
	listener := func(network, addr string) func(t *testing.T) opened {
		return func(t *testing.T) opened {
			l := listenTCP(t, network, addr)
			return opened{want: []expect{{tcp(portOf(t, l.Addr())), true}}, close: func() { l.Close() }}
		}
	}
	established := func(network, addr string) func(t *testing.T) opened {
		return func(t *testing.T) opened {
			c, s := connPair(t, network, addr)
			return opened{want: []expect{
				{tcp(portOf(t, c.LocalAddr())), true},
				{tcp(portOf(t, s.LocalAddr())), true},
			}}
		}
	}
	udpSocket := func(network, addr string) func(t *testing.T) opened {
		return func(t *testing.T) opened {
			c := listenUDP(t, network, addr)
			return opened{want: []expect{{udp(portOf(t, c.LocalAddr())), true}}, close: func() { c.Close() }}
		}
	}
	return []struct {
		name string
		open func(t *testing.T) opened
	}{
		{"tcp4 listener", listener("tcp4", "127.0.0.1:0")},
		{"tcp6 listener", listener("tcp6", "[::1]:0")},
		{"tcp4 established", established("tcp4", "127.0.0.1:0")},
		{"tcp6 established", established("tcp6", "[::1]:0")},
		{"tcp4 fin_wait2 and close_wait", func(t *testing.T) opened {
			c, s := connPair(t, "tcp4", "127.0.0.1:0")
			cp, sp := portOf(t, c.LocalAddr()), portOf(t, s.LocalAddr())
			c.Close()
			readEOF(t, s)
			awaitTCP(t, map[uint16][]uint64{cp: {0x05}, sp: {0x08}})
			return opened{want: []expect{{tcp(cp), true}, {tcp(sp), true}}}
		}},
		{"tcp4 time_wait", func(t *testing.T) opened {
			c, s := connPair(t, "tcp4", "127.0.0.1:0")
			cp, sp := portOf(t, c.LocalAddr()), portOf(t, s.LocalAddr())
			c.Close()
			readEOF(t, s)
			s.Close()
			awaitTCP(t, map[uint16][]uint64{cp: {tcpTimeWait}, sp: nil})
			return opened{want: []expect{{tcp(cp), false}, {tcp(sp), false}}}
		}},
		{"udp4", udpSocket("udp4", "127.0.0.1:0")},
		{"udp6", udpSocket("udp6", "[::1]:0")},
		{"udp4 connected", func(t *testing.T) opened {
			srv := listenUDP(t, "udp4", "127.0.0.1:0")
			c, err := net.Dial("udp4", srv.LocalAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return opened{
				want:  []expect{{udp(portOf(t, c.LocalAddr())), true}, {udp(portOf(t, srv.LocalAddr())), true}},
				close: func() { c.Close(); srv.Close() },
			}
		}},
		{"unix stream path", func(t *testing.T) opened {
			p := filepath.Join(t.TempDir(), "s.sock")
			l, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return opened{want: []expect{{path(p), true}}, close: func() { l.Close() }}
		}},
		{"unixgram path", func(t *testing.T) opened {
			p := filepath.Join(t.TempDir(), "g.sock")
			c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return opened{want: []expect{{path(p), true}}, close: func() { c.Close() }}
		}},
		{"unix abstract", func(t *testing.T) opened {
			name := abstractName()
			l, err := net.Listen("unix", name)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return opened{want: []expect{{path(name), true}}, close: func() { l.Close() }}
		}},
		{"unix abstract with a NUL inside", func(t *testing.T) opened {
			name := abstractName()
			fd, _ := rawUnix(t, &unix.SockaddrUnix{Name: name + "\x00tail"})
			return opened{
				want:  []expect{{path(name + "@tail"), true}, {path(name), false}},
				close: func() { unix.Close(fd) },
			}
		}},
		{"unix autobind", func(t *testing.T) opened {
			fd, name := rawUnix(t, &unix.SockaddrUnix{})
			if !strings.HasPrefix(name, "@") {
				t.Fatalf("autobind name %q", name)
			}
			return opened{want: []expect{{path(name), true}}, close: func() { unix.Close(fd) }}
		}},
		{"500 udp4 and 200 unix sockets", func(t *testing.T) opened {
			// More than one datagram's worth, so that the answers are
			// multipart.
			var o opened
			var closers []io.Closer
			for range 500 {
				c := listenUDP(t, "udp4", "127.0.0.1:0")
				closers = append(closers, c)
				o.want = append(o.want, expect{udp(portOf(t, c.LocalAddr())), true})
			}
			for range 200 {
				name := abstractName()
				l, err := net.Listen("unix", name)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
				closers = append(closers, l)
				o.want = append(o.want, expect{path(name), true})
			}
			o.close = func() {
				for _, c := range closers {
					c.Close()
				}
			}
			return o
		}},
	}
}

// readBoth reads the table through sock_diag itself, never through the
// fallback that would hide its failure, and from /proc.
func readBoth(t *testing.T) (kernel, proc *Table) {
	t.Helper()
	kernel, err := readSockDiag(openSockDiag)
	if err != nil {
		t.Fatalf("sock_diag: %v", err)
	}
	proc, err = ReadTable("/proc")
	if err != nil {
		t.Fatalf("ReadTable(/proc): %v", err)
	}
	return kernel, proc
}

// TestReadKernelTable checks that sock_diag reports exactly the sockets
// bound, that ReadTable("/proc") agrees on them, and that closed sockets
// disappear from both.
func TestReadKernelTable(t *testing.T) {
	if _, err := ReadKernelTable(); err != nil {
		t.Fatalf("ReadKernelTable: %v", err)
	}
	for _, tc := range socketCases() {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.open(t)
			kernel, proc := readBoth(t)
			for _, w := range o.want {
				if got := w.key.in(kernel); got != w.bound {
					t.Errorf("sock_diag: %v bound %v, want %v", w.key, got, w.bound)
				}
				if k, p := w.key.in(kernel), w.key.in(proc); k != p {
					t.Errorf("%v: sock_diag says bound %v, /proc says %v", w.key, k, p)
				}
			}
			if o.close == nil {
				return
			}
			o.close()
			kernel, proc = readBoth(t)
			for _, w := range o.want {
				if w.key.in(kernel) {
					t.Errorf("sock_diag: %v still bound once closed", w.key)
				}
				if w.key.in(proc) {
					t.Errorf("/proc: %v still bound once closed", w.key)
				}
			}
		})
	}
}

func TestReadKernelTableFallback(t *testing.T) {
	fakeProc := t.TempDir()
	if err := os.Mkdir(filepath.Join(fakeProc, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"tcp":  "  sl  local_address rem_address   st\n   0: 00000000:006F 00000000:0000 0A\n",
		"udp":  "  sl  local_address rem_address   st\n   0: 00000000:006F 00000000:0000 07\n",
		"unix": "Num       RefCount Protocol Flags    Type St Inode Path\n0000000000000000: 00000002 00000000 00010000 0001 01 21812 /run/rpcbind.sock\n",
	} {
		if err := os.WriteFile(filepath.Join(fakeProc, "net", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	failing := func(err error) func() (int, error) {
		return func() (int, error) { return -1, os.NewSyscallError("socket", err) }
	}
	for _, tc := range []struct {
		name     string
		open     func() (int, error)
		procRoot string
		// wantErrs are what the error must wrap; none for success.
		wantErrs []error
	}{
		{"no sock_diag protocol", failing(unix.EPROTONOSUPPORT), fakeProc, nil},
		{"no netlink family", failing(unix.EAFNOSUPPORT), fakeProc, nil},
		{"netlink forbidden", failing(unix.EPERM), fakeProc, nil},
		{"fallback fails too", failing(unix.EAFNOSUPPORT), filepath.Join(fakeProc, "missing"), []error{unix.EAFNOSUPPORT, fs.ErrNotExist}},
		{"out of descriptors is no reason to fall back", failing(unix.EMFILE), fakeProc, []error{unix.EMFILE}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table, err := readKernelTable(tc.open, tc.procRoot)
			if len(tc.wantErrs) > 0 {
				if err == nil {
					t.Fatal("no error")
				}
				for _, want := range tc.wantErrs {
					if !errors.Is(err, want) {
						t.Errorf("error %q does not wrap %v", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !table.Bound(TCP, 111) || !table.Bound(UDP, 111) || !table.BoundPath("/run/rpcbind.sock") {
				t.Errorf("fallback table misses the fake /proc's sockets: %v %v", table.ports, table.paths)
			}
		})
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("lifetime: %w", &DiagError{Dump: "udp6", Errno: unix.ENOENT}), true},
		{&DiagError{Dump: "tcp4", Errno: unix.EINVAL}, false},
		{&DiagError{Dump: "unix", Errno: unix.EINTR}, false},
		{malformed("nlmsg_len %d", 9), false},
		{os.NewSyscallError("recvmsg", unix.EAGAIN), false},
		{os.NewSyscallError("socket", unix.EACCES), true},
	} {
		if got := sockDiagUnavailable(tc.err); got != tc.want {
			t.Errorf("sockDiagUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestDiagRequest(t *testing.T) {
	if n := binary.Size(inetDiagReqV2{}); n != 56 {
		t.Errorf("inet_diag_req_v2 is %d bytes, want 56", n)
	}
	if n := binary.Size(unixDiagReq{}); n != 24 {
		t.Errorf("unix_diag_req is %d bytes, want 24", n)
	}
	ne := binary.NativeEndian
	for _, tc := range []struct {
		dump   diagDump
		len    int
		states uint32
	}{
		{diagDump{unix.AF_INET, unix.IPPROTO_TCP}, 72, 0xffffff3f},
		{diagDump{unix.AF_INET6, unix.IPPROTO_UDP}, 72, 0xffffffff},
		{diagDump{unix.AF_UNIX, 0}, 40, 0xffffffff},
	} {
		t.Run(tc.dump.String(), func(t *testing.T) {
			b, err := tc.dump.request(9)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != tc.len || ne.Uint32(b[0:]) != uint32(tc.len) {
				t.Fatalf("request of %d bytes, nlmsg_len %d, want %d", len(b), ne.Uint32(b[0:]), tc.len)
			}
			if typ, flags, seq := ne.Uint16(b[4:]), ne.Uint16(b[6:]), ne.Uint32(b[8:]); typ != unix.SOCK_DIAG_BY_FAMILY || flags != unix.NLM_F_REQUEST|unix.NLM_F_DUMP || seq != 9 {
				t.Errorf("header type %d flags %#x seq %d", typ, flags, seq)
			}
			if b[16] != tc.dump.family || b[17] != tc.dump.protocol {
				t.Errorf("family %d protocol %d, want %d %d", b[16], b[17], tc.dump.family, tc.dump.protocol)
			}
			if st := ne.Uint32(b[20:]); st != tc.states {
				t.Errorf("states %#x, want %#x", st, tc.states)
			}
			if tc.dump.family == unix.AF_UNIX && ne.Uint32(b[28:]) != udiagShowName {
				t.Errorf("udiag_show %#x", ne.Uint32(b[28:]))
			}
		})
	}
}

// Builders of hand-made replies.

const testSeq = 7

func nlmsg(typ, flags uint16, seq uint32, payload []byte) []byte {
	ne := binary.NativeEndian
	b := ne.AppendUint32(nil, uint32(unix.SizeofNlMsghdr+len(payload)))
	b = ne.AppendUint16(b, typ)
	b = ne.AppendUint16(b, flags|unix.NLM_F_MULTI)
	b = ne.AppendUint32(b, seq)
	b = ne.AppendUint32(b, 4242)
	b = append(b, payload...)
	return append(b, make([]byte, align(len(b), 4)-len(b))...)
}

func inetMsg(family, state uint8, port uint16) []byte {
	p := make([]byte, sizeofInetDiagMsg+8) // and an attribute, ignored
	p[0], p[inetDiagMsgState] = family, state
	binary.BigEndian.PutUint16(p[inetDiagMsgSport:], port)
	binary.BigEndian.PutUint16(p[6:], 40000) // the peer's port, ignored
	binary.NativeEndian.PutUint16(p[sizeofInetDiagMsg:], 8)
	return p
}

func diagMsg(payload []byte) []byte {
	return nlmsg(unix.SOCK_DIAG_BY_FAMILY, 0, testSeq, payload)
}

func nlattr(typ uint16, data string) []byte {
	b := binary.NativeEndian.AppendUint16(nil, uint16(unix.SizeofNlAttr+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	return append(b, make([]byte, align(len(b), 4)-len(b))...)
}

func unixMsg(attrs ...[]byte) []byte {
	p := make([]byte, sizeofUnixDiagMsg)
	p[0], p[1], p[2] = unix.AF_UNIX, unix.SOCK_STREAM, 10
	for _, a := range attrs {
		p = append(p, a...)
	}
	return p
}

func errMsg(errno int32) []byte {
	p := binary.NativeEndian.AppendUint32(nil, uint32(errno))
	return nlmsg(unix.NLMSG_ERROR, 0, testSeq, append(p, make([]byte, unix.SizeofNlMsghdr)...))
}

func doneMsg(errno int32) []byte {
	return nlmsg(unix.NLMSG_DONE, 0, testSeq, binary.NativeEndian.AppendUint32(nil, uint32(errno)))
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func TestParseDiag(t *testing.T) {
	tcp4 := diagDump{unix.AF_INET, unix.IPPROTO_TCP}
	udp6 := diagDump{unix.AF_INET6, unix.IPPROTO_UDP}
	unixd := diagDump{unix.AF_UNIX, 0}
	// The kernel's TCP states.
	const established, synSent, listen, finWait2 = 1, 2, 10, 5
	withLen := func(b []byte, n uint32) []byte {
		binary.NativeEndian.PutUint32(b, n)
		return b
	}
	for _, tc := range []struct {
		name      string
		dump      diagDump
		datagrams [][]byte
		done      bool
		// interrupted is the NLM_F_DUMP_INTR flag seen.
		interrupted bool
		// wantErrno is the DiagError expected; malformed, a
		// malformedError.
		wantErrno unix.Errno
		malformed bool
		bound     []sockKey
		unbound   []sockKey
	}{
		{
			name: "tcp multipart",
			dump: tcp4,
			datagrams: [][]byte{
				cat(diagMsg(inetMsg(unix.AF_INET, listen, 111)), diagMsg(inetMsg(unix.AF_INET, established, 8080))),
				cat(diagMsg(inetMsg(unix.AF_INET, tcpTimeWait, 10000)), diagMsg(inetMsg(unix.AF_INET, tcpClose, 10001)),
					diagMsg(inetMsg(unix.AF_INET, synSent, 10002)), diagMsg(inetMsg(unix.AF_INET, finWait2, 10003)),
					diagMsg(inetMsg(unix.AF_INET, listen, 0)), doneMsg(0)),
			},
			done:    true,
			bound:   []sockKey{{proto: TCP, port: 111}, {proto: TCP, port: 8080}, {proto: TCP, port: 10002}, {proto: TCP, port: 10003}},
			unbound: []sockKey{{proto: TCP, port: 10000}, {proto: TCP, port: 10001}, {proto: TCP, port: 0}, {proto: UDP, port: 111}},
		},
		{
			name:      "no NLMSG_DONE yet",
			dump:      tcp4,
			datagrams: [][]byte{diagMsg(inetMsg(unix.AF_INET, listen, 111))},
			bound:     []sockKey{{proto: TCP, port: 111}},
		},
		{
			name:      "empty datagram",
			dump:      tcp4,
			datagrams: [][]byte{{}},
		},
		{
			name:      "NOOP is skipped",
			dump:      tcp4,
			datagrams: [][]byte{cat(nlmsg(unix.NLMSG_NOOP, 0, testSeq, nil), doneMsg(0))},
			done:      true,
		},
		{
			name:      "udp in any state",
			dump:      udp6,
			datagrams: [][]byte{cat(diagMsg(inetMsg(unix.AF_INET6, tcpClose, 53)), diagMsg(inetMsg(unix.AF_INET6, established, 5353)), doneMsg(0))},
			done:      true,
			bound:     []sockKey{{proto: UDP, port: 53}, {proto: UDP, port: 5353}},
			unbound:   []sockKey{{proto: TCP, port: 53}},
		},
		{
			name: "unix names",
			dump: unixd,
			datagrams: [][]byte{cat(
				diagMsg(unixMsg(nlattr(unixDiagName, "/run/rpcbind.sock\x00"))),
				diagMsg(unixMsg(nlattr(2, "peer"), nlattr(unixDiagName, "\x00/run/rpcbind.sock"))),
				diagMsg(unixMsg(nlattr(unixDiagName, "\x00a\x00b"))),
				diagMsg(unixMsg(nlattr(unixDiagName, "odd"))),
				diagMsg(unixMsg()),
				diagMsg(unixMsg(nlattr(3, "/not/a/name"))),
				doneMsg(0),
			)},
			done: true,
			bound: []sockKey{
				{path: "/run/rpcbind.sock"}, {path: "@/run/rpcbind.sock"}, {path: "@a@b"}, {path: "odd"},
			},
			unbound: []sockKey{{path: "/not/a/name"}, {path: "@"}},
		},
		{
			name:        "interrupted dump still runs to its end",
			dump:        tcp4,
			datagrams:   [][]byte{cat(nlmsg(unix.SOCK_DIAG_BY_FAMILY, unix.NLM_F_DUMP_INTR, testSeq, inetMsg(unix.AF_INET, listen, 111)), doneMsg(0))},
			done:        true,
			interrupted: true,
			bound:       []sockKey{{proto: TCP, port: 111}},
		},
		{
			name:      "NLMSG_ERROR 0 acknowledges",
			dump:      tcp4,
			datagrams: [][]byte{errMsg(0)},
			done:      true,
		},
		{
			name:      "NLMSG_ERROR ENOENT",
			dump:      udp6,
			datagrams: [][]byte{errMsg(-int32(unix.ENOENT))},
			done:      true,
			wantErrno: unix.ENOENT,
		},
		{
			name:      "NLMSG_ERROR after sockets",
			dump:      tcp4,
			datagrams: [][]byte{cat(diagMsg(inetMsg(unix.AF_INET, listen, 111)), errMsg(-int32(unix.EPERM)))},
			done:      true,
			wantErrno: unix.EPERM,
		},
		{
			name:      "NLMSG_DONE with the dump's error",
			dump:      unixd,
			datagrams: [][]byte{doneMsg(-int32(unix.ENOBUFS))},
			done:      true,
			wantErrno: unix.ENOBUFS,
		},
		{
			name:      "NLMSG_ERROR too short for its errno",
			dump:      tcp4,
			datagrams: [][]byte{nlmsg(unix.NLMSG_ERROR, 0, testSeq, []byte{0xfe, 0xff})},
			malformed: true,
		},
		{
			name:      "short header",
			dump:      tcp4,
			datagrams: [][]byte{diagMsg(inetMsg(unix.AF_INET, listen, 111))[:10]},
			malformed: true,
		},
		{
			name:      "short header after a message",
			dump:      tcp4,
			datagrams: [][]byte{cat(diagMsg(inetMsg(unix.AF_INET, listen, 111)), []byte{1, 2, 3, 4, 5, 6})},
			malformed: true,
		},
		{
			name:      "nlmsg_len larger than received",
			dump:      tcp4,
			datagrams: [][]byte{withLen(diagMsg(inetMsg(unix.AF_INET, listen, 111)), 4096)},
			malformed: true,
		},
		{
			name:      "nlmsg_len larger than received, huge",
			dump:      unixd,
			datagrams: [][]byte{withLen(diagMsg(unixMsg()), 0xffffffff)},
			malformed: true,
		},
		{
			name:      "nlmsg_len shorter than its header",
			dump:      tcp4,
			datagrams: [][]byte{withLen(diagMsg(inetMsg(unix.AF_INET, listen, 111)), 4)},
			malformed: true,
		},
		{
			name:      "answer to another request",
			dump:      tcp4,
			datagrams: [][]byte{nlmsg(unix.SOCK_DIAG_BY_FAMILY, 0, testSeq+1, inetMsg(unix.AF_INET, listen, 111))},
			malformed: true,
		},
		{
			name:      "NLMSG_OVERRUN",
			dump:      tcp4,
			datagrams: [][]byte{nlmsg(unix.NLMSG_OVERRUN, 0, testSeq, nil)},
			malformed: true,
		},
		{
			name:      "truncated inet_diag_msg",
			dump:      tcp4,
			datagrams: [][]byte{diagMsg(inetMsg(unix.AF_INET, listen, 111)[:40])},
			malformed: true,
		},
		{
			name:      "truncated unix_diag_msg",
			dump:      unixd,
			datagrams: [][]byte{diagMsg(unixMsg()[:8])},
			malformed: true,
		},
		{
			name:      "attribute longer than its message",
			dump:      unixd,
			datagrams: [][]byte{diagMsg(unixMsg([]byte{100, 0, unixDiagName, 0, '/', 'x', 0, 0}))},
			malformed: true,
		},
		{
			name:      "attribute shorter than its header",
			dump:      unixd,
			datagrams: [][]byte{diagMsg(unixMsg([]byte{2, 0, unixDiagName, 0}))},
			malformed: true,
		},
		{
			name:      "short attribute header",
			dump:      unixd,
			datagrams: [][]byte{diagMsg(append(unixMsg(nlattr(unixDiagName, "/x\x00")), 8, 0))},
			malformed: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table := newTable()
			r := diagReply{dump: tc.dump, seq: testSeq, table: table}
			var err error
			for _, d := range tc.datagrams {
				if err = r.parse(d); err != nil {
					break
				}
			}
			var de *DiagError
			var me malformedError
			switch {
			case tc.wantErrno != 0:
				if !errors.As(err, &de) || !errors.Is(err, tc.wantErrno) || de.Dump != tc.dump.String() {
					t.Fatalf("error %v, want a %s DiagError of %v", err, tc.dump, tc.wantErrno)
				}
			case tc.malformed:
				if !errors.As(err, &me) {
					t.Fatalf("error %v, want a malformed reply", err)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if r.done != tc.done || r.interrupted != tc.interrupted {
				t.Errorf("done %v interrupted %v, want %v %v", r.done, r.interrupted, tc.done, tc.interrupted)
			}
			for _, k := range tc.bound {
				if !k.in(table) {
					t.Errorf("%v not bound", k)
				}
			}
			for _, k := range tc.unbound {
				if k.in(table) {
					t.Errorf("%v bound", k)
				}
			}
		})
	}
}

func TestUnixName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"/run/rpcbind.sock\x00", "/run/rpcbind.sock"},
		{"relative\x00", "relative"},
		{"\x00/run/rpcbind.sock", "@/run/rpcbind.sock"},
		{"\x00", "@"},
		{"\x00a\x00b\x00", "@a@b@"},
		{"\xff\xfe\x00", "\xff\xfe"},
	} {
		if got := unixName([]byte(tc.in)); got != tc.want {
			t.Errorf("unixName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzParseDiag checks that no reply, however malformed, panics the
// decoder: every length in it comes from the kernel.
func FuzzParseDiag(f *testing.F) {
	f.Add(uint8(0), cat(diagMsg(inetMsg(unix.AF_INET, 10, 111)), doneMsg(0)))
	f.Add(uint8(4), cat(diagMsg(unixMsg(nlattr(unixDiagName, "\x00x"))), doneMsg(0)))
	f.Add(uint8(2), errMsg(-2))
	f.Add(uint8(4), diagMsg(unixMsg([]byte{100, 0, 0, 0})))
	dumps := [...]diagDump{
		{unix.AF_INET, unix.IPPROTO_TCP},
		{unix.AF_INET6, unix.IPPROTO_TCP},
		{unix.AF_INET, unix.IPPROTO_UDP},
		{unix.AF_INET6, unix.IPPROTO_UDP},
		{unix.AF_UNIX, 0},
	}
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		r := diagReply{dump: dumps[int(which)%len(dumps)], seq: testSeq, table: newTable()}
		_ = r.parse(b)
	})
}
