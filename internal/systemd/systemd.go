// Package systemd speaks the two systemd protocols a portmapper needs:
// socket activation (LISTEN_FDS) and readiness notification (sd_notify).
package systemd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/portmapd/portmapd/netid"
)

// listenFDsStart is SD_LISTEN_FDS_START: the first inherited descriptor.
const listenFDsStart = 3

// ErrDualStack reports an inherited IPv6 socket that also accepts IPv4. A
// portmapper must see IPv4 callers as IPv4, and its IPv4 sockets would
// collide with it, so it is refused as rpcbind refuses it.
var ErrDualStack = errors.New("systemd: IPv6 socket is dual-stack; please fix your systemd config: set BindIPv6Only=ipv6-only in the .socket unit")

// Files returns the sockets systemd passed to this process, or nil when it
// passed none. It unsets the LISTEN_* variables so that children do not
// inherit them.
func Files() []*os.File {
	defer func() {
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_FDNAMES")
	}()
	pid, err := strconv.Atoi(os.Getenv("LISTEN_PID"))
	if err != nil || pid != os.Getpid() {
		return nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return nil
	}
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	files := make([]*os.File, 0, n)
	for i := range n {
		fd := listenFDsStart + i
		unix.CloseOnExec(fd)
		name := "LISTEN_FD_" + strconv.Itoa(fd)
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		files = append(files, os.NewFile(uintptr(fd), name))
	}
	return files
}

// A Socket is an inherited socket, classified by the netid it serves.
type Socket struct {
	Netid netid.ID
	// Listener is set for stream sockets, PacketConn for datagram ones.
	Listener   net.Listener
	PacketConn *net.UDPConn
}

// Classify matches an inherited socket to a netid by family and type, as
// rpcbind matches its netconfig entries: tcp, udp, tcp6, udp6 or local.
// The file is consumed: on success the Socket owns a duplicate and f is
// closed.
func Classify(f *os.File) (Socket, error) {
	defer f.Close()
	fd := int(f.Fd())
	domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return Socket{}, fmt.Errorf("systemd: %s is not a socket: %w", f.Name(), err)
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return Socket{}, fmt.Errorf("systemd: %s: %w", f.Name(), err)
	}
	var id netid.ID
	switch {
	case domain == unix.AF_INET && typ == unix.SOCK_STREAM:
		id = netid.TCP
	case domain == unix.AF_INET && typ == unix.SOCK_DGRAM:
		id = netid.UDP
	case domain == unix.AF_INET6 && (typ == unix.SOCK_STREAM || typ == unix.SOCK_DGRAM):
		v6only, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
		if err != nil || v6only != 1 {
			return Socket{}, fmt.Errorf("%w (%s)", ErrDualStack, f.Name())
		}
		id = netid.TCP6
		if typ == unix.SOCK_DGRAM {
			id = netid.UDP6
		}
	case domain == unix.AF_UNIX && typ == unix.SOCK_STREAM:
		id = netid.Local
	default:
		return Socket{}, fmt.Errorf("systemd: %s: unsupported socket (family %d, type %d)", f.Name(), domain, typ)
	}
	s := Socket{Netid: id}
	if typ == unix.SOCK_STREAM {
		s.Listener, err = net.FileListener(f)
	} else {
		var pc net.PacketConn
		pc, err = net.FilePacketConn(f)
		if err == nil {
			s.PacketConn = pc.(*net.UDPConn)
		}
	}
	if err != nil {
		return Socket{}, fmt.Errorf("systemd: %s: %w", f.Name(), err)
	}
	return s, nil
}

// Notify sends state (for example "READY=1") to the service manager when
// it asked for notifications ($NOTIFY_SOCKET); otherwise it does nothing.
func Notify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("systemd: notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("systemd: notify: %w", err)
	}
	return nil
}
