// Package handoff passes a connection accepted by portmapd's TCPMUX
// listener to the process that registered the name it asked for: the
// descriptor itself, over an AF_UNIX stream socket with SCM_RIGHTS, so that
// nothing is copied and the service owns the connection as if it had
// accepted it.
//
// The exchange, one AF_UNIX connection per connection handed over:
//
//   - The service listens on an AF_UNIX stream socket, a path or an @name
//     in the abstract namespace, and registers that socket under its name
//     with the tcpmux flag.
//   - portmapd connects (Dial) and goes on only if the kernel says the
//     socket's listener belongs to the registration's user (SO_PEERCRED),
//     so that no registration can send one user's connections to another.
//   - portmapd has answered the client "+\r\n", so the service's own
//     protocol starts with its first byte, as with inetd's "+" services.
//     It then sends (Send) one message, the name asked for in lower case
//     and "\n", with the connection's descriptor attached, and closes.
//   - The service (Listener) takes the connection only if the kernel says
//     the process that connected is the one its verify function accepts:
//     portmapd's, so that no other local process can pass it connections.
package handoff

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portmapd/portmapd/peer"
)

// MaxName is the longest name a hand-off message carries: the longest
// registered name, 253 bytes (RFC 1035's longest domain name).
const MaxName = 253

// DefaultTimeout bounds receiving one hand-off message. portmapd sends it
// as soon as it has connected, so only a broken sender takes long.
const DefaultTimeout = 5 * time.Second

// Errors of a hand-off, to be told apart with errors.Is.
var (
	// ErrNotOwner reports a hand-off socket whose listener is not the
	// user the connection is for.
	ErrNotOwner = errors.New("handoff: the socket's listener is another user")
	// ErrBadMessage reports a hand-off message that is not one name line
	// with one socket attached.
	ErrBadMessage = errors.New("handoff: bad hand-off message")
)

// Dial connects to the hand-off socket at path (@name for the abstract
// namespace) and returns the connection if uid listens on it, ErrNotOwner
// otherwise.
func Dial(ctx context.Context, path string, uid uint32) (*net.UnixConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("handoff: %w", err)
	}
	uc := c.(*net.UnixConn)
	cred, err := peer.Credentials(uc)
	if err != nil {
		uc.Close()
		return nil, fmt.Errorf("handoff: %s: %w", path, err)
	}
	if cred.UID != uid {
		uc.Close()
		return nil, fmt.Errorf("%w: %s is uid %d's (pid %d), not uid %d's", ErrNotOwner, path, cred.UID, cred.PID, uid)
	}
	return uc, nil
}

// Send passes the descriptor of conn over h with the name asked for, in
// one message. The caller keeps its own descriptor of conn and closes it
// when done; it must not use the connection any more.
func Send(h *net.UnixConn, name string, conn syscall.Conn) error {
	if len(name) == 0 || len(name) > MaxName {
		return fmt.Errorf("%w: name of %d bytes", ErrBadMessage, len(name))
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("handoff: %w", err)
	}
	var werr error
	if err := raw.Control(func(fd uintptr) {
		_, _, werr = h.WriteMsgUnix([]byte(name+"\n"), unix.UnixRights(int(fd)), nil)
	}); err != nil {
		return fmt.Errorf("handoff: %w", err)
	}
	if werr != nil {
		return fmt.Errorf("handoff: %w", werr)
	}
	return nil
}

// A Handoff is one connection handed over: the name it asked for and its
// descriptor, in blocking mode, ready to be a child's standard input and
// output or to become a net.Conn (Conn).
type Handoff struct {
	Name string
	File *os.File
}

// Conn returns the connection as a net.Conn (a *net.TCPConn for TCPMUX)
// and closes h.File, which it no longer needs.
func (h *Handoff) Conn() (net.Conn, error) {
	defer h.File.Close()
	c, err := net.FileConn(h.File)
	if err != nil {
		return nil, fmt.Errorf("handoff: %s: %w", h.Name, err)
	}
	return c, nil
}

// A Listener receives the connections portmapd hands over to its socket.
// It is a net.Listener whose Accept returns them. Connections from a
// process its verify function refuses, and messages that are not a
// hand-off, are closed and skipped, each reported to Rejected when set.
type Listener struct {
	ul     *net.UnixListener
	verify func(peer.Cred) error
	// Timeout bounds receiving one message; DefaultTimeout when 0.
	Timeout time.Duration
	// Rejected, when set, is told of each connection refused.
	Rejected func(error)
}

// Listen listens on a hand-off socket at path, or on a fresh name in the
// abstract namespace when path is empty, for connections from the
// processes verify accepts. (A path must be one portmapd's user may
// connect to; an abstract name needs no permission.)
func Listen(path string, verify func(peer.Cred) error) (*Listener, error) {
	if path == "" {
		var b [12]byte
		rand.Read(b[:])
		path = "@portmapd-handoff-" + hex.EncodeToString(b[:])
	}
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("handoff: %w", err)
	}
	return NewListener(ul, verify), nil
}

// NewListener receives hand-offs on ul from the processes verify accepts.
func NewListener(ul *net.UnixListener, verify func(peer.Cred) error) *Listener {
	return &Listener{ul: ul, verify: verify}
}

// Path is the socket's name, as it is registered: a path, or @ and its
// abstract name.
func (l *Listener) Path() string { return l.ul.Addr().String() }

// Addr returns the socket's address.
func (l *Listener) Addr() net.Addr { return l.ul.Addr() }

// Close stops listening.
func (l *Listener) Close() error { return l.ul.Close() }

// Accept returns the next connection handed over.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		h, err := l.AcceptHandoff()
		if err != nil {
			return nil, err
		}
		c, err := h.Conn()
		if err == nil {
			return c, nil
		}
		l.reject(err)
	}
}

// AcceptHandoff returns the next connection handed over, with its name.
func (l *Listener) AcceptHandoff() (*Handoff, error) {
	for {
		uc, err := l.ul.AcceptUnix()
		if err != nil {
			return nil, err
		}
		h, err := l.receive(uc)
		uc.Close()
		if err == nil {
			return h, nil
		}
		l.reject(err)
	}
}

func (l *Listener) reject(err error) {
	if l.Rejected != nil {
		l.Rejected(err)
	}
}

// receive checks who connected, at once, and reads its message.
func (l *Listener) receive(uc *net.UnixConn) (*Handoff, error) {
	cred, err := peer.Credentials(uc)
	if err != nil {
		return nil, fmt.Errorf("handoff: %w", err)
	}
	if err := l.verify(cred); err != nil {
		return nil, fmt.Errorf("handoff: refused pid %d (uid %d): %w", cred.PID, cred.UID, err)
	}
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	uc.SetReadDeadline(time.Now().Add(timeout))
	return Receive(uc)
}

// Receive reads one hand-off message from uc: a name line with exactly
// one socket attached. Descriptors of a message it refuses are closed.
func Receive(uc *net.UnixConn) (*Handoff, error) {
	var fds []int
	closeFDs := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	line := make([]byte, 0, MaxName+1)
	buf := make([]byte, MaxName+1)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, flags, _, err := uc.ReadMsgUnix(buf[:MaxName+1-len(line)], oob)
		got, perr := rights(oob[:oobn])
		fds = append(fds, got...)
		switch {
		case perr != nil:
			closeFDs()
			return nil, perr
		case flags&unix.MSG_CTRUNC != 0:
			closeFDs()
			return nil, fmt.Errorf("%w: more than one descriptor", ErrBadMessage)
		case n == 0:
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			closeFDs()
			return nil, fmt.Errorf("%w: %v", ErrBadMessage, err)
		}
		line = append(line, buf[:n]...)
		if i := len(line) - 1; line[i] == '\n' {
			line = line[:i]
			break
		}
		if len(line) > MaxName {
			closeFDs()
			return nil, fmt.Errorf("%w: no name line within %d bytes", ErrBadMessage, MaxName+1)
		}
	}
	if len(fds) != 1 || !printable(line) {
		closeFDs()
		return nil, fmt.Errorf("%w: %d descriptors, name %q", ErrBadMessage, len(fds), line)
	}
	fd := fds[0]
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: the descriptor is not a socket", ErrBadMessage)
	}
	// The descriptor shares its open file with portmapd's, which Go
	// made non-blocking; a child reading its standard input expects
	// blocking reads, and net.FileConn sets what it needs itself.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("handoff: %w", err)
	}
	return &Handoff{Name: string(line), File: os.NewFile(uintptr(fd), "tcpmux:"+string(line))}, nil
}

// rights returns the descriptors of the SCM_RIGHTS messages in oob.
func rights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	var fds []int
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS {
			continue
		}
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			return fds, fmt.Errorf("%w: %v", ErrBadMessage, err)
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

// printable reports whether b is a non-empty run of printable ASCII.
func printable(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return len(b) > 0
}
