// Package peercred reads the kernel's account of the process at the other
// end of a local socket: its credentials (SO_PEERCRED) and its network
// namespace.
package peercred

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/portmapd/portmapd/registry"
)

// ErrNoCred reports a connection that carries no peer credentials.
var ErrNoCred = errors.New("peercred: connection has no peer credentials")

// Get returns the credentials of c's peer at connect time. c must be a
// connected AF_UNIX socket.
//
// The namespace comes from SO_NETNS_COOKIE of c itself: the kernel creates
// the accepting end of an AF_UNIX stream in the namespace of the process
// that connected, so the cookie names the peer's namespace without a race
// against the peer exiting. It is 0 on kernels before 5.14.
func Get(c net.Conn) (registry.Cred, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return registry.Cred{}, ErrNoCred
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return registry.Cred{}, fmt.Errorf("peercred: %w", err)
	}
	var uc *unix.Ucred
	var cookie uint64
	var serr error
	if err := raw.Control(func(fd uintptr) {
		uc, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if serr == nil {
			cookie, _ = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
		}
	}); err != nil {
		return registry.Cred{}, fmt.Errorf("peercred: %w", err)
	}
	if serr != nil {
		return registry.Cred{}, fmt.Errorf("peercred: SO_PEERCRED: %w", serr)
	}
	return registry.Cred{PID: uc.Pid, UID: uc.Uid, GID: uc.Gid, NetNS: cookie}, nil
}

// OwnNetNS returns the cookie of the calling process's network namespace,
// the value Get reports for a peer in the same namespace.
func OwnNetNS() (uint64, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("peercred: %w", err)
	}
	defer unix.Close(fd)
	cookie, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0, fmt.Errorf("peercred: SO_NETNS_COOKIE: %w", err)
	}
	return cookie, nil
}
