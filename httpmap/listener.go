package httpmap

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"github.com/portmapd/portmapd/internal/safefile"
)

// ErrListenerClosed reports a ConnListener that has been closed.
var ErrListenerClosed = errors.New("httpmap: listener closed")

// A ConnListener is a net.Listener fed with connections accepted
// elsewhere: the RPC server on port 111 hands it those whose first byte is
// not an RPC record mark, so that HTTP and RPC share the port. Its methods
// are safe for concurrent use.
type ConnListener struct {
	addr   net.Addr
	conns  chan net.Conn
	once   sync.Once
	closed chan struct{}
}

// NewConnListener returns a ConnListener whose Addr is addr (may be nil).
func NewConnListener(addr net.Addr) *ConnListener {
	return &ConnListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

// Deliver hands c to the next Accept. It blocks until then, so a server
// that is not accepting pushes back on the diverting loop rather than
// queueing without bound. After Close it closes c and returns
// ErrListenerClosed.
func (l *ConnListener) Deliver(c net.Conn) error {
	select {
	case l.conns <- c:
		return nil
	case <-l.closed:
		c.Close()
		return ErrListenerClosed
	}
}

// Accept returns the next delivered connection.
func (l *ConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close makes Accept and Deliver fail from now on.
func (l *ConnListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr returns the address given to NewConnListener, or a placeholder.
func (l *ConnListener) Addr() net.Addr {
	if l.addr != nil {
		return l.addr
	}
	return divertAddr{}
}

type divertAddr struct{}

func (divertAddr) Network() string { return "tcp" }
func (divertAddr) String() string  { return "diverted" }

// A ListenError is a listener of the HTTP face that could not be opened.
type ListenError struct {
	// Addr is the TCP address, or the socket's path when Socket is set.
	Addr   string
	Socket bool
	Err    error
}

func (e *ListenError) Error() string {
	if e.Socket {
		return e.Err.Error() // ListenUnix's errors name the path
	}
	return "httpmap: " + e.Err.Error()
}

func (e *ListenError) Unwrap() error { return e.Err }

// Listen opens the TCP address and the local socket (mode 0666) that cfg
// names, each unless Off, for ServeListeners. One that cannot be opened is
// left out and reported by its *ListenError, so that the caller can serve
// the other, and everything else it serves, without it: the HTTP face is
// optional. A daemon that gives up root opens them before it does.
func Listen(cfg Config) ([]net.Listener, []*ListenError) {
	cfg.setDefaults()
	var ls []net.Listener
	var errs []*ListenError
	if cfg.HTTPAddr != Off {
		if l, err := net.Listen("tcp", cfg.HTTPAddr); err != nil {
			errs = append(errs, &ListenError{Addr: cfg.HTTPAddr, Err: err})
		} else {
			ls = append(ls, l)
		}
	}
	if cfg.SocketPath != Off {
		if l, err := ListenUnix(cfg.SocketPath, 0o666); err != nil {
			errs = append(errs, &ListenError{Addr: cfg.SocketPath, Socket: true, Err: err})
		} else {
			ls = append(ls, l)
		}
	}
	return ls, errs
}

// ListenUnix listens on the AF_UNIX path with the given mode. A socket file
// left there by a daemon that died (connecting to it is refused) is
// replaced; one that something answers on, or that cannot be told, is an
// error and left alone, so two daemons cannot steal each other's socket.
// The directory must be one that only root or this process's user may
// write (see package safefile).
func ListenUnix(path string, mode os.FileMode) (*net.UnixListener, error) {
	l, err := safefile.ListenUnix(path, mode)
	if err != nil {
		return nil, fmt.Errorf("httpmap: %w", err)
	}
	return l, nil
}
