// Package peercred reads the kernel's account of the process at the other
// end of a local socket (SO_PEERCRED).
package peercred

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrNoCred reports a connection that carries no peer credentials.
var ErrNoCred = errors.New("peercred: connection has no peer credentials")

// Cred is the peer's process, user and group ids at connect time.
type Cred struct {
	PID      int32
	UID, GID uint32
}

// Get returns the credentials of c's peer. c must be a connected AF_UNIX
// socket.
func Get(c net.Conn) (Cred, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return Cred{}, ErrNoCred
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return Cred{}, fmt.Errorf("peercred: %w", err)
	}
	var uc *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		uc, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Cred{}, fmt.Errorf("peercred: %w", err)
	}
	if serr != nil {
		return Cred{}, fmt.Errorf("peercred: SO_PEERCRED: %w", serr)
	}
	return Cred{PID: uc.Pid, UID: uc.Uid, GID: uc.Gid}, nil
}
