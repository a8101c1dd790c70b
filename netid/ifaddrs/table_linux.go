package ifaddrs

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Open subscribes to the announcements of the calling thread's network
// namespace and returns a Table that reads the list on first use.
func Open() (*Table, error) {
	fd, err := subscribe()
	if err != nil {
		return nil, err
	}
	// Announcements are counted, not parsed: a short buffer takes one
	// datagram per receive and drops the rest of it.
	return &Table{read: Read, events: subscription{fd: fd, buf: make([]byte, 64)}, stale: true}, nil
}

// subscribe opens a non-blocking netlink socket that receives the
// kernel's announcements of link and address changes in the calling
// thread's network namespace.
func subscribe() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return -1, fmt.Errorf("ifaddrs: %w", os.NewSyscallError("socket", err))
	}
	sa := &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("ifaddrs: %w", os.NewSyscallError("bind", err))
	}
	return fd, nil
}

// Watch calls changed once it has subscribed to the kernel's
// announcements for the calling thread's network namespace (so that a
// change between the caller's last look and the subscription is not
// missed), then each time the kernel announces that links or addresses
// changed (once for announcements that arrive together, and also when some
// were lost), until ctx is done; it then returns nil. It returns an error
// at once when it cannot subscribe, and when reading the announcements
// fails. changed runs on Watch's goroutine, so a slow one delays the next
// call, not the announcements, which queue.
func Watch(ctx context.Context, changed func()) error {
	fd, err := subscribe()
	if err != nil {
		return err
	}
	// Through the runtime's poller, which the non-blocking socket joins,
	// a read waits without a thread and a close ends it.
	f := os.NewFile(uintptr(fd), "rtnetlink")
	stop := context.AfterFunc(ctx, func() { _ = f.Close() })
	defer func() {
		if stop() {
			_ = f.Close()
		}
	}()
	s := subscription{fd: fd, buf: make([]byte, 64)}
	changed()
	for {
		_, err := f.Read(s.buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, unix.ENOBUFS) {
			return fmt.Errorf("ifaddrs: reading announcements: %w", err)
		}
		// Take what else is queued, so that a burst is one call.
		raw, err := f.SyscallConn()
		if err != nil {
			return fmt.Errorf("ifaddrs: %w", err)
		}
		_ = raw.Read(func(fd uintptr) bool {
			s.fd = int(fd)
			s.announced()
			return true
		})
		changed()
	}
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
