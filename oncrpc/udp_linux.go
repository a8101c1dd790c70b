package oncrpc

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/peer"
)

// udpBatch is the most datagrams read, and replies sent, with one system
// call. A portmapper's calls and replies are small, and a burst from many
// clients is answered in a few calls rather than one per datagram.
const udpBatch = 16

// udpLoops is how many loops serve one socket: one. Two loops on one
// socket were measured to cost more processor time per call than one
// (7.1 against 5.6 µs for a GETPORT, on 2 cores with 8 clients): each
// takes turns with the other for the socket's read and write locks in
// Go's poller, and a turn handed over wakes a thread.
func udpLoops() int { return 1 }

// A udpServer is one serving loop of a UDP socket: it reads datagrams in
// batches with recvmmsg, serves each, and sends the replies of a batch
// with sendmmsg. Everything it reads into and writes from is allocated
// once, with it.
type udpServer struct {
	s       *Server
	conn    *net.UDPConn
	raw     syscall.RawConn
	netid   string
	pktinfo bool
	local   netip.AddrPort
	// withheld is for the fallback loop, should the socket give no
	// descriptor.
	withheld *netlimit.LogThrottle

	slots []udpSlot
	recv  []unix.Mmsghdr
	send  []unix.Mmsghdr
	call  Call
	// received, sent and err are the results of the last recvmmsg or
	// sendmmsg, which doRecv and doSend leave here: functions made once,
	// since a closure passed to RawConn's Read or Write escapes.
	received, sent int
	err            error
	doRecv, doSend func(fd uintptr) bool
	// sendFrom and sendTo are the entries of send that doSend sends.
	sendFrom, sendTo int
}

// A udpSlot is one datagram of a batch and its reply.
type udpSlot struct {
	buf  []byte
	oob  []byte
	name unix.RawSockaddrInet6
	iov  unix.Iovec
	// w writes the reply, which the batch sends from w's buffer to
	// name, the datagram's source.
	w       *datagramWriter
	sendIov unix.Iovec
}

func (s *Server) newUDPServer(conn *net.UDPConn, netid string, pktinfo bool, withheld *netlimit.LogThrottle) *udpServer {
	u := &udpServer{s: s, conn: conn, netid: netid, pktinfo: pktinfo, local: peer.AddrPort(conn.LocalAddr()), withheld: withheld}
	var err error
	if u.raw, err = conn.SyscallConn(); err != nil {
		return u
	}
	u.slots = make([]udpSlot, udpBatch)
	u.recv = make([]unix.Mmsghdr, udpBatch)
	u.send = make([]unix.Mmsghdr, udpBatch)
	for i := range u.slots {
		sl := &u.slots[i]
		// One byte more than the limit tells an oversized datagram
		// from one that fits exactly.
		sl.buf = make([]byte, s.maxMessage()+1)
		sl.oob = make([]byte, 256)
		sl.w = s.newDatagramWriter(conn, netid, withheld)
		sl.w.batched = true
		sl.iov.Base = &sl.buf[0]
		sl.iov.SetLen(len(sl.buf))
		h := &u.recv[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&sl.name))
		h.Iov = &sl.iov
		h.Iovlen = 1
		h.Control = &sl.oob[0]
	}
	u.doRecv = u.recvBatch
	u.doSend = u.sendBatch
	return u
}

func (u *udpServer) loop(ctx context.Context) error {
	if u.slots == nil {
		return u.s.datagramLoop(ctx, u.conn, u.netid, u.pktinfo, u.withheld)
	}
	for {
		for i := range u.recv {
			h := &u.recv[i].Hdr
			h.Namelen = unix.SizeofSockaddrInet6
			h.SetControllen(len(u.slots[i].oob))
			h.Flags = 0
			u.recv[i].Len = 0
		}
		u.received, u.err = 0, nil
		if err := u.raw.Read(u.doRecv); err != nil {
			u.err = err
		}
		if u.err != nil {
			switch err := u.s.readError(ctx, u.netid, u.err); err {
			case errRetry:
				continue
			default:
				return err
			}
		}
		replies := 0
		for i := range u.received {
			sl := &u.slots[i]
			h := &u.recv[i].Hdr
			from, ok := sockaddrAddrPort(&sl.name, h.Namelen)
			if !ok {
				continue
			}
			u.s.serveDatagram(sl.w, &u.call, sl.buf, int(u.recv[i].Len), from, sl.oob[:h.Controllen], u.pktinfo, u.local)
			if !sl.w.queued {
				continue
			}
			reply := sl.w.enc.Bytes()
			sl.sendIov.Base = &reply[0]
			sl.sendIov.SetLen(len(reply))
			sh := &u.send[replies].Hdr
			*sh = unix.Msghdr{Name: h.Name, Namelen: h.Namelen, Iov: &sl.sendIov, Iovlen: 1}
			if len(sl.w.oob) > 0 {
				sh.Control = &sl.w.oob[0]
				sh.SetControllen(len(sl.w.oob))
			}
			replies++
		}
		u.sendReplies(replies)
		// What a handler said is gone with its batch.
		u.call = Call{}
	}
}

// recvBatch reads what datagrams are waiting, up to a batch, without
// blocking; it reports false to wait when there are none.
func (u *udpServer) recvBatch(fd uintptr) bool {
	n, done, err := mmsg(unix.SYS_RECVMMSG, fd, u.recv)
	if done {
		u.received, u.err = n, err
	}
	return done
}

// sendBatch sends entries sendFrom to sendTo of send; it reports false to
// wait when the socket's buffer is full.
func (u *udpServer) sendBatch(fd uintptr) bool {
	n, done, err := mmsg(unix.SYS_SENDMMSG, fd, u.send[u.sendFrom:u.sendTo])
	if done {
		u.sent, u.err = n, err
	}
	return done
}

// mmsg makes the system call trap, recvmmsg or sendmmsg, on fd for the
// messages of hdrs without blocking. It returns how many messages it
// received or sent, or its error; done is false, for RawConn to wait and
// call it again, when it would block or a signal interrupted it.
func mmsg(trap, fd uintptr, hdrs []unix.Mmsghdr) (n int, done bool, err error) {
	r, _, errno := unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), unix.MSG_DONTWAIT, 0, 0)
	switch errno {
	case 0:
		return int(r), true, nil
	case unix.EAGAIN, unix.EINTR:
		return 0, false, nil
	}
	return 0, true, errno
}

// sendReplies sends the first n entries of send. A reply the kernel
// refuses to send from the source its control message names goes again
// from the source the kernel picks (see sendDatagram); any other failed
// reply is dropped, as a datagram may be, and the rest still go.
func (u *udpServer) sendReplies(n int) {
	for i := 0; i < n; {
		u.sendFrom, u.sendTo, u.sent, u.err = i, n, 0, nil
		if err := u.raw.Write(u.doSend); err != nil {
			return // closed
		}
		if u.err == nil {
			i += u.sent
			continue
		}
		h := &u.send[i].Hdr
		if h.Controllen > 0 && unsendableSource(u.err) {
			h.Control = nil
			h.SetControllen(0)
			continue
		}
		u.s.logger().Debug("reply not sent", "netid", u.netid, "err", u.err)
		i++
	}
}

// sockaddrAddrPort reads an IPv4 or IPv6 socket address of length n. A
// link-local IPv6 address gets its interface's name as its zone, as the
// net package gives it.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6, n uint32) (netip.AddrPort, bool) {
	b := (*[unix.SizeofSockaddrInet6]byte)(unsafe.Pointer(sa))
	port := binary.BigEndian.Uint16(b[2:4])
	switch {
	case sa.Family == unix.AF_INET && n >= unix.SizeofSockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port), true
	case sa.Family == unix.AF_INET6 && n >= unix.SizeofSockaddrInet6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			a = a.WithZone(zoneName(sa.Scope_id))
		}
		return netip.AddrPortFrom(a, port), true
	}
	return netip.AddrPort{}, false
}

// zoneName names the interface of index i, or gives its number, as the
// net package's zone cache does.
func zoneName(i uint32) string {
	if ifi, err := net.InterfaceByIndex(int(i)); err == nil {
		return ifi.Name
	}
	return strconv.FormatUint(uint64(i), 10)
}
