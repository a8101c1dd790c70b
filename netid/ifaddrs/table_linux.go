package ifaddrs

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Open subscribes to the announcements of the calling thread's network
// namespace and returns a Table that reads the list on first use.
func Open() (*Table, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("ifaddrs: %w", os.NewSyscallError("socket", err))
	}
	sa := &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ifaddrs: %w", os.NewSyscallError("bind", err))
	}
	// Announcements are counted, not parsed: a short buffer takes one
	// datagram per receive and drops the rest of it.
	return &Table{read: Read, events: subscription{fd: fd, buf: make([]byte, 64)}, stale: true}, nil
}

// A subscription is the netlink socket a Table takes announcements from.
type subscription struct {
	fd  int // -1 once closed
	buf []byte
}

// announced takes every queued announcement and reports whether there was
// any, or whether some may have been lost.
func (s *subscription) announced() bool {
	if s.fd < 0 {
		return true
	}
	changed := false
	for {
		// The socket does not block. Only the kernel and processes with
		// CAP_NET_ADMIN can send to it (rtnetlink accepts no unicast
		// between unprivileged sockets), and a datagram from the latter
		// costs no more than a read of the list, so every datagram counts.
		_, err := unix.Read(s.fd, s.buf)
		switch {
		case err == nil:
			changed = true
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			return changed
		default:
			// ENOBUFS: the queue overflowed and announcements were
			// lost. Anything else leaves the socket's state unknown.
			// Either way, the list must be read; after ENOBUFS the
			// queue carries on.
			changed = true
			if !errors.Is(err, unix.ENOBUFS) {
				return true
			}
		}
	}
}

// close releases the netlink socket.
func (s *subscription) close() error {
	if s.fd < 0 {
		return nil
	}
	err := unix.Close(s.fd)
	s.fd = -1
	return err
}
