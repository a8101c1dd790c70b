package lifetime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ReadKernelTable reads the socket table of the calling process's network
// namespace from the kernel through netlink sock_diag (NETLINK_SOCK_DIAG,
// what ss(8) uses): one netlink socket, five dumps (TCP and UDP of each IP
// family, then AF_UNIX) and one receive buffer.
//
// It is preferred to ReadTable("/proc") because each dump is a single
// request answered with fixed binary records, so there is no text to
// parse, and the records are the kernel's own view of its hash tables
// rather than a rendering of it. /proc/net/unix truncates nothing, but the
// kernel formats every socket of the namespace as a line of text for it on
// every read, and this side splits those lines again; on a host with
// thousands of sockets that text is most of the cost of a check.
//
// When sock_diag is unavailable (the netlink socket cannot be created
// because the kernel lacks it or a seccomp filter, an LSM or systemd's
// RestrictAddressFamilies forbids it, or the kernel answers a dump with
// ENOENT because that family's diag module, often udp_diag, is missing), it
// reads ReadTable("/proc") instead; its error mentions sock_diag only if
// that fails too.
func ReadKernelTable() (*Table, error) {
	return readKernelTable(openSockDiag, DefaultProcRoot)
}

func readKernelTable(open func() (int, error), procRoot string) (*Table, error) {
	t, err := readSockDiag(open)
	if err == nil {
		return t, nil
	}
	if !sockDiagUnavailable(err) {
		return nil, err
	}
	t, perr := ReadTable(procRoot)
	if perr != nil {
		return nil, fmt.Errorf("lifetime: sock_diag unavailable (%w), and reading %s failed: %w", err, procRoot, perr)
	}
	return t, nil
}

// sockDiagUnavailable tells the errors that mean this kernel or sandbox
// offers no sock_diag, for which /proc is the answer, from those of a
// sock_diag that is there but failed, which /proc would only hide.
func sockDiagUnavailable(err error) bool {
	var se *os.SyscallError
	if errors.As(err, &se) && se.Syscall == "socket" {
		return errors.Is(se.Err, unix.EPROTONOSUPPORT) || errors.Is(se.Err, unix.EAFNOSUPPORT) ||
			errors.Is(se.Err, unix.EPERM) || errors.Is(se.Err, unix.EACCES)
	}
	var de *DiagError
	return errors.As(err, &de) && de.Errno == unix.ENOENT
}

// A DiagError is a sock_diag dump that the kernel failed, with the errno
// of its NLMSG_ERROR or NLMSG_DONE, or EINTR when the socket table kept
// changing under the dump (NLM_F_DUMP_INTR) on every attempt. It unwraps to
// the errno, so that errors.Is(err, unix.ENOENT) tells that the kernel lacks
// the dump's diag module.
type DiagError struct {
	Dump  string // "tcp4", "tcp6", "udp4", "udp6" or "unix"
	Errno unix.Errno
}

func (e *DiagError) Error() string {
	if e.Errno == unix.EINTR {
		return "sock_diag " + e.Dump + " dump: interrupted by changes to the socket table on every attempt"
	}
	return "sock_diag " + e.Dump + " dump: " + e.Errno.Error()
}

func (e *DiagError) Unwrap() error { return e.Errno }

// malformedError is a reply that does not decode; it is never retried,
// since the same kernel would answer the same way.
type malformedError string

func (e malformedError) Error() string { return "malformed sock_diag reply: " + string(e) }

func malformed(format string, args ...any) error {
	return malformedError(fmt.Sprintf(format, args...))
}

// Definitions of linux/inet_diag.h and linux/unix_diag.h that
// golang.org/x/sys/unix lacks.
const (
	udiagShowName     = 0x1 // UDIAG_SHOW_NAME
	unixDiagName      = 0   // UNIX_DIAG_NAME
	sizeofInetDiagMsg = 72  // struct inet_diag_msg
	sizeofUnixDiagMsg = 16  // struct unix_diag_msg
	// Offsets in struct inet_diag_msg.
	inetDiagMsgState = 1 // idiag_state
	inetDiagMsgSport = 4 // id.idiag_sport, in network byte order
	// nlaTypeMask strips the flag bits of nla_type.
	nlaTypeMask = ^uint16(unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
)

// inetDiagSockID is struct inet_diag_sockid.
type inetDiagSockID struct {
	SPort, DPort [2]byte // network byte order
	Src, Dst     [16]byte
	If           uint32
	Cookie       [2]uint32
}

// inetDiagReqV2 is struct inet_diag_req_v2.
type inetDiagReqV2 struct {
	Family, Protocol, Ext, Pad uint8
	States                     uint32
	ID                         inetDiagSockID
}

// unixDiagReq is struct unix_diag_req.
type unixDiagReq struct {
	Family, Protocol  uint8
	Pad               uint16
	States, Ino, Show uint32
	Cookie            [2]uint32
}

const (
	// diagBufSize holds any datagram of a dump: the kernel sizes them
	// after the largest receive so far but never above 32 KiB
	// (netlink_recvmsg caps max_recvmsg_len at SKB_WITH_OVERHEAD(32768)).
	diagBufSize = 32 << 10
	// diagTimeout bounds a receive. The kernel fills a dump's datagrams
	// within the receive call itself, so a wait this long means something
	// is broken, and a failed check is better than a pruner stuck for good.
	diagTimeout = 5 * time.Second
	// diagAttempts is how many times a dump the kernel flags as
	// interrupted is asked for before giving up.
	diagAttempts = 3
)

// A diagDump is one of the dumps the table is made of.
type diagDump struct {
	family   uint8
	protocol uint8 // IPPROTO_TCP or IPPROTO_UDP; 0 for AF_UNIX
}

func (d diagDump) String() string {
	if d.family == unix.AF_UNIX {
		return "unix"
	}
	name := "udp"
	if d.protocol == unix.IPPROTO_TCP {
		name = "tcp"
	}
	if d.family == unix.AF_INET6 {
		return name + "6"
	}
	return name + "4"
}

func (d diagDump) proto() Proto {
	if d.protocol == unix.IPPROTO_TCP {
		return TCP
	}
	return UDP
}

// states is the idiag_states mask: for TCP every state parseInet counts as
// bound, so that both readers agree; UDP sockets are unconnected (CLOSE)
// or connected (ESTABLISHED), and either holds its port.
func (d diagDump) states() uint32 {
	if d.protocol == unix.IPPROTO_TCP {
		return ^uint32(0) &^ (1<<tcpTimeWait | 1<<tcpClose)
	}
	return ^uint32(0)
}

// request returns the netlink message that asks for the dump.
func (d diagDump) request(seq uint32) ([]byte, error) {
	var body any
	if d.family == unix.AF_UNIX {
		body = unixDiagReq{Family: unix.AF_UNIX, States: ^uint32(0), Show: udiagShowName}
	} else {
		body = inetDiagReqV2{Family: d.family, Protocol: d.protocol, States: d.states()}
	}
	hdr := unix.NlMsghdr{
		Len:   uint32(unix.SizeofNlMsghdr + binary.Size(body)),
		Type:  unix.SOCK_DIAG_BY_FAMILY,
		Flags: unix.NLM_F_REQUEST | unix.NLM_F_DUMP,
		Seq:   seq,
	}
	b, err := binary.Append(make([]byte, 0, hdr.Len), binary.NativeEndian, hdr)
	if err != nil {
		return nil, err
	}
	return binary.Append(b, binary.NativeEndian, body)
}

func openSockDiag() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	tv := unix.NsecToTimeval(diagTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("setsockopt", err)
	}
	return fd, nil
}

func readSockDiag(open func() (int, error)) (*Table, error) {
	fd, err := open()
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	c := diagConn{fd: fd, buf: make([]byte, diagBufSize)}
	t := newTable()
	for _, d := range [...]diagDump{
		{unix.AF_INET, unix.IPPROTO_TCP},
		{unix.AF_INET6, unix.IPPROTO_TCP},
		{unix.AF_INET, unix.IPPROTO_UDP},
		{unix.AF_INET6, unix.IPPROTO_UDP},
		{unix.AF_UNIX, 0},
	} {
		if err := c.dump(d, t); err != nil {
			var de *DiagError
			if errors.As(err, &de) {
				return nil, fmt.Errorf("lifetime: %w", err)
			}
			return nil, fmt.Errorf("lifetime: sock_diag %s dump: %w", d, err)
		}
	}
	return t, nil
}

// diagConn is a NETLINK_SOCK_DIAG socket and the buffer that receives all
// of its replies.
type diagConn struct {
	fd  int
	seq uint32
	buf []byte
}

// dump adds the sockets of d to t, asking again when the kernel says the
// table changed under the dump: the sockets it did report are real, but
// others may have been skipped, and a skipped socket would make its
// registration look dead.
func (c *diagConn) dump(d diagDump, t *Table) error {
	for attempt := 1; ; attempt++ {
		c.seq++
		req, err := d.request(c.seq)
		if err != nil {
			return err
		}
		if err := c.send(req); err != nil {
			return err
		}
		r := diagReply{dump: d, seq: c.seq, table: t}
		for !r.done {
			b, err := c.recv()
			if err != nil {
				return err
			}
			if err := r.parse(b); err != nil {
				return err
			}
		}
		if !r.interrupted {
			return nil
		}
		if attempt == diagAttempts {
			return &DiagError{Dump: d.String(), Errno: unix.EINTR}
		}
	}
}

func (c *diagConn) send(b []byte) error {
	for {
		err := unix.Sendto(c.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if !errors.Is(err, unix.EINTR) {
			return os.NewSyscallError("sendto", err)
		}
	}
}

// recv returns the next datagram the kernel sent.
func (c *diagConn) recv() ([]byte, error) {
	for {
		n, _, flags, from, err := unix.Recvmsg(c.fd, c.buf, nil, 0)
		switch {
		case errors.Is(err, unix.EINTR):
			// SO_RCVTIMEO keeps signals from restarting the call.
			continue
		case err != nil:
			return nil, os.NewSyscallError("recvmsg", err)
		case flags&unix.MSG_TRUNC != 0:
			return nil, malformed("datagram larger than the %d-byte buffer", len(c.buf))
		}
		// Any process may send to this socket's port id: only the
		// kernel's (port id 0) datagrams are answers.
		if sa, ok := from.(*unix.SockaddrNetlink); ok && sa.Pid == 0 {
			return c.buf[:n], nil
		}
	}
}

// diagReply decodes the multipart answer to one dump request into a Table.
type diagReply struct {
	dump  diagDump
	seq   uint32
	table *Table
	// done is set by the message that ends the answer.
	done bool
	// interrupted is set when the kernel flags the dump as inconsistent
	// (NLM_F_DUMP_INTR); the answer still runs to its end, and must be
	// read to it so that the next request's answer starts clean.
	interrupted bool
	// visit, when set, is given each socket's message instead of table.
	visit func(msg []byte) error
}

// parse decodes one datagram of the answer. Every length it reads is
// checked against the bytes received before it is used.
func (r *diagReply) parse(b []byte) error {
	for len(b) > 0 && !r.done {
		if len(b) < unix.SizeofNlMsghdr {
			return malformed("%d bytes left, short of a message header", len(b))
		}
		n := binary.NativeEndian.Uint32(b[0:4])
		typ := binary.NativeEndian.Uint16(b[4:6])
		flags := binary.NativeEndian.Uint16(b[6:8])
		seq := binary.NativeEndian.Uint32(b[8:12])
		if n < unix.SizeofNlMsghdr || uint64(n) > uint64(len(b)) {
			return malformed("nlmsg_len %d with %d bytes left", n, len(b))
		}
		if seq != r.seq {
			return malformed("answer to request %d, want %d", seq, r.seq)
		}
		if flags&unix.NLM_F_DUMP_INTR != 0 {
			r.interrupted = true
		}
		payload := b[unix.SizeofNlMsghdr:n]
		switch typ {
		case unix.NLMSG_NOOP:
		case unix.NLMSG_DONE:
			r.done = true
			// The end of a dump carries the dump's own error, if any.
			if len(payload) >= 4 {
				if e := int32(binary.NativeEndian.Uint32(payload)); e != 0 {
					return r.errno(e)
				}
			}
		case unix.NLMSG_ERROR:
			if len(payload) < 4 {
				return malformed("NLMSG_ERROR of %d bytes", len(payload))
			}
			r.done = true
			// Error 0 acknowledges the request and ends it.
			if e := int32(binary.NativeEndian.Uint32(payload)); e != 0 {
				return r.errno(e)
			}
		case unix.SOCK_DIAG_BY_FAMILY:
			visit := r.socket
			if r.visit != nil {
				visit = r.visit
			}
			if err := visit(payload); err != nil {
				return err
			}
		default:
			return malformed("message type %d", typ)
		}
		b = b[min(align(int(n), unix.NLMSG_ALIGNTO), len(b)):]
	}
	return nil
}

// errno returns the DiagError of a kernel error code, which is negative.
func (r *diagReply) errno(e int32) error {
	n := int64(e)
	if n < 0 {
		n = -n
	}
	return &DiagError{Dump: r.dump.String(), Errno: unix.Errno(n)}
}

// socket adds the socket of one inet_diag_msg or unix_diag_msg.
func (r *diagReply) socket(p []byte) error {
	if r.dump.family == unix.AF_UNIX {
		return r.unixSocket(p)
	}
	if len(p) < sizeofInetDiagMsg {
		return malformed("inet_diag_msg of %d bytes", len(p))
	}
	proto := r.dump.proto()
	// The request already leaves these states out; checking again keeps
	// the rule in one place with parseInet's even if a kernel ignored it.
	if st := p[inetDiagMsgState]; proto == TCP && (st == tcpTimeWait || st == tcpClose) {
		return nil
	}
	if port := binary.BigEndian.Uint16(p[inetDiagMsgSport:]); port != 0 {
		r.table.ports[portKey{proto, port}] = true
	}
	return nil
}

func (r *diagReply) unixSocket(p []byte) error {
	if len(p) < sizeofUnixDiagMsg {
		return malformed("unix_diag_msg of %d bytes", len(p))
	}
	for a := p[sizeofUnixDiagMsg:]; len(a) > 0; {
		if len(a) < unix.SizeofNlAttr {
			return malformed("%d bytes left, short of an attribute header", len(a))
		}
		n := int(binary.NativeEndian.Uint16(a[0:2]))
		if n < unix.SizeofNlAttr || n > len(a) {
			return malformed("nla_len %d with %d bytes left", n, len(a))
		}
		if binary.NativeEndian.Uint16(a[2:4])&nlaTypeMask == unixDiagName {
			if name := unixName(a[unix.SizeofNlAttr:n]); name != "" {
				r.table.paths[name] = true
			}
		}
		a = a[min(align(n, unix.NLA_ALIGNTO), len(a)):]
	}
	return nil
}

// unixName renders a UNIX_DIAG_NAME as /proc/net/unix prints it, so that
// both readers key a socket alike and a registration's "@name" matches: a
// path loses its terminating NUL, an abstract name's leading NUL becomes
// '@', and so does any other NUL.
func unixName(b []byte) string {
	if len(b) > 0 && b[0] != 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	var s strings.Builder
	s.Grow(len(b))
	for _, c := range b {
		if c == 0 {
			c = '@'
		}
		s.WriteByte(c)
	}
	return s.String()
}

func align(n, to int) int { return (n + to - 1) &^ (to - 1) }
