package peer

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// Credentials returns the credentials of the process that connected c, a
// connected AF_UNIX socket, as they were at connect time.
//
// The namespace comes from SO_NETNS_COOKIE of c itself: the kernel creates
// the accepting end of an AF_UNIX stream in the namespace of the process
// that connected, so the cookie names the peer's namespace without a race
// against the peer exiting. It is 0 on kernels before 5.14.
func Credentials(c net.Conn) (Cred, error) {
	raw, err := rawConn(c)
	if err != nil {
		return Cred{}, err
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
		return Cred{}, fmt.Errorf("peer: %w", err)
	}
	if serr != nil {
		return Cred{}, fmt.Errorf("peer: SO_PEERCRED: %w", serr)
	}
	return Cred{PID: uc.Pid, UID: uc.Uid, GID: uc.Gid, NetNS: cookie}, nil
}

// PidFD returns a pidfd of the process that connected c, a connected
// AF_UNIX socket. SO_PEERPIDFD (Linux 6.5) names that very process even if
// it has exited since and its pid been reused, which its pid cannot. The
// caller owns the descriptor, which is close-on-exec.
func PidFD(c net.Conn) (int, error) {
	raw, err := rawConn(c)
	if err != nil {
		return -1, err
	}
	fd, serr := -1, error(nil)
	if err := raw.Control(func(sfd uintptr) {
		fd, serr = unix.GetsockoptInt(int(sfd), unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	}); err != nil {
		return -1, fmt.Errorf("peer: %w", err)
	}
	if serr != nil {
		return -1, fmt.Errorf("peer: SO_PEERPIDFD: %w", serr)
	}
	if fd < 0 {
		return -1, fmt.Errorf("peer: SO_PEERPIDFD gave descriptor %d", fd)
	}
	unix.CloseOnExec(fd)
	return fd, nil
}

func rawConn(c net.Conn) (syscall.RawConn, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, ErrNoCred
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	return raw, nil
}

// OwnNetNS returns the cookie of the calling process's network namespace,
// the value Credentials reports for a peer in the same namespace.
func OwnNetNS() (uint64, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("peer: %w", err)
	}
	defer unix.Close(fd)
	cookie, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0, fmt.Errorf("peer: SO_NETNS_COOKIE: %w", err)
	}
	return cookie, nil
}
