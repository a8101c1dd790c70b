package oncrpc

import (
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestMmsg sends and receives over a datagram socket pair with mmsg, in
// turn: what each call reports, including done false for a receive that
// would block and the error of a call on no descriptor.
func TestMmsg(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	// -1: no descriptor, whatever else the process has open.
	const bad = ^uintptr(0)

	// hdrs returns n headers of one iovec each, over buffers of size
	// bytes holding "0", "1", ... when sent.
	hdrs := func(n, size int) []unix.Mmsghdr {
		h := make([]unix.Mmsghdr, n)
		for i := range h {
			buf := make([]byte, size)
			copy(buf, []byte{'0' + byte(i)})
			iov := &unix.Iovec{Base: &buf[0]}
			iov.SetLen(size)
			h[i].Hdr.Iov = iov
			h[i].Hdr.Iovlen = 1
		}
		return h
	}
	recv := hdrs(4, 16)
	steps := []struct {
		name     string
		trap, fd uintptr
		hdrs     []unix.Mmsghdr
		n        int
		done     bool
		err      error
	}{
		{"receive with nothing queued waits", unix.SYS_RECVMMSG, uintptr(fds[0]), recv, 0, false, nil},
		{"send three", unix.SYS_SENDMMSG, uintptr(fds[1]), hdrs(3, 1), 3, true, nil},
		{"receive up to four takes the three", unix.SYS_RECVMMSG, uintptr(fds[0]), recv, 3, true, nil},
		{"receive on no descriptor fails", unix.SYS_RECVMMSG, bad, recv, 0, true, unix.EBADF},
		{"send on no descriptor fails", unix.SYS_SENDMMSG, bad, hdrs(1, 1), 0, true, unix.EBADF},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			n, done, err := mmsg(st.trap, st.fd, st.hdrs)
			if n != st.n || done != st.done || !errors.Is(err, st.err) || (st.err == nil && err != nil) {
				t.Fatalf("mmsg = %d, %v, %v; want %d, %v, %v", n, done, err, st.n, st.done, st.err)
			}
		})
	}
	for i := range 3 {
		got := unsafe.Slice(recv[i].Hdr.Iov.Base, recv[i].Len)
		if want := string('0' + rune(i)); string(got) != want {
			t.Errorf("datagram %d: %q, want %q", i, got, want)
		}
	}
}
