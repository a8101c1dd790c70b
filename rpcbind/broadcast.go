package rpcbind

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/netid/ifaddrs"
	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/peer"
	"github.com/portmapd/portmapd/xdr"
	"golang.org/x/sys/unix"
)

// Waits of a broadcast, rpc_broadcast's INITTIME and WAITTIME: the first
// round waits DefaultBroadcastWait for answers after the last one, each
// round twice as long as the one before, the last DefaultBroadcastMaxWait.
const (
	DefaultBroadcastWait    = 4 * time.Second
	DefaultBroadcastMaxWait = 8 * time.Second
)

// ErrNoBroadcast reports that no interface can broadcast on any datagram
// transport: rpc_broadcast's RPC_UNKNOWNPROTO.
var ErrNoBroadcast = errors.New("rpcbind: no interface to broadcast on")

// BroadcastConfig says how Broadcast calls.
type BroadcastConfig struct {
	// Port is the portmappers' port; xdr.PmapPort when 0.
	Port uint16
	// Cred is the calls' credential; rpc_broadcast sends an AUTH_SYS one
	// for the calling process.
	Cred xdr.OpaqueAuth
	// Wait and MaxWait are the first and the last round's wait;
	// DefaultBroadcastWait and DefaultBroadcastMaxWait when 0.
	Wait, MaxWait time.Duration
	// Interfaces lists the interfaces to broadcast on; ifaddrs.Read when
	// nil.
	Interfaces func() ([]ifaddrs.Addr, error)
	// Warn, when set, hears of each call that cannot be sent, in
	// rpc_broadcast's words.
	Warn func(msg string)
}

// A BroadcastReply is a portmapper's answer to a broadcast remote call.
type BroadcastReply struct {
	// Netid is the transport it came over: udp or udp6.
	Netid netid.ID
	// From is the portmapper that answered.
	From netip.AddrPort
	// Service is where the program called is, as rpc_broadcast hands it
	// to its caller: the universal address of a version 3 answer, or the
	// portmapper's address with the port of a version 2 answer.
	Service netip.AddrPort
	// Results are the program's encoded results.
	Results []byte
}

// A broadcastTransport is one datagram netid broadcast on, its socket,
// and where its calls go.
type broadcastTransport struct {
	id      netid.ID
	conn    *net.UDPConn
	targets []netip.AddrPort
}

// Broadcast calls procedure a.Proc of a.Prog, a.Vers on every host of
// the networks this host's interfaces are on, as libtirpc's rpc_broadcast
// (and rpcinfo -b) does: on udp a version 3 CALLIT to the broadcast address
// of each IPv4 address of an interface that is up and can broadcast, on
// udp6 one to the group ff02::202 on an interface that is up and can
// multicast (once for each of its IPv6 addresses), and a version 2 CALLIT
// beside each (xid one more). It sends them all in each round and waits
// for answers until none has come for the round's wait. each gets every
// successful answer as it arrives, and may end the broadcast by returning
// true. Broadcast returns nil once the rounds are over (rpc_broadcast's
// RPC_TIMEDOUT) or each returned true, ErrNoBroadcast when no interface
// can broadcast, or ctx's error.
func Broadcast(ctx context.Context, cfg BroadcastConfig, a xdr.CallArgs, each func(BroadcastReply) bool) error {
	if cfg.Port == 0 {
		cfg.Port = xdr.PmapPort
	}
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultBroadcastWait
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultBroadcastMaxWait
	}
	if cfg.Interfaces == nil {
		cfg.Interfaces = ifaddrs.Read
	}
	ifs, err := cfg.Interfaces()
	if err != nil {
		return fmt.Errorf("rpcbind: broadcast: %w", err)
	}
	transports, err := openBroadcastTransports(ifs, cfg.Port)
	if err != nil {
		return err
	}
	defer func() {
		for _, t := range transports {
			_ = t.conn.Close()
		}
	}()
	// rpc_broadcast's xid: the process id, the seconds and the
	// microseconds of the time, exclusive-ored.
	now := time.Now()
	xid := uint32(os.Getpid()) ^ uint32(now.Unix()) ^ uint32(now.Nanosecond()/1000)
	v3 := broadcastCall(xid, xdr.RpcbVers, xdr.RpcbProcCallit, cfg.Cred, a)
	v2 := broadcastCall(xid+1, xdr.PmapVers, xdr.PmapProcCallit, cfg.Cred, a)

	type datagram struct {
		t    *broadcastTransport
		from netip.AddrPort
		msg  []byte
	}
	arrived := make(chan datagram)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	for _, t := range transports {
		go func() {
			buf := make([]byte, maxAnswer)
			for {
				n, from, err := t.conn.ReadFromUDPAddrPort(buf)
				if err != nil {
					if netlimit.IsTemporary(err) {
						continue
					}
					return
				}
				select {
				case arrived <- datagram{t, peer.Unmap(from), append([]byte(nil), buf[:n]...)}:
				case <-readCtx.Done():
					return
				}
			}
		}()
	}
	for wait := cfg.Wait; wait <= cfg.MaxWait; wait += wait {
		for _, t := range transports {
			for _, to := range t.targets {
				if _, err := t.conn.WriteToUDPAddrPort(v3, to); err != nil {
					warn(cfg, "rpc_broadcast_exp: cannot send broadcast packet")
					continue
				}
				if _, err := t.conn.WriteToUDPAddrPort(v2, to); err != nil {
					warn(cfg, "clnt_bcast: Cannot send broadcast packet")
				}
			}
		}
		timer := time.NewTimer(wait)
	round:
		for {
			select {
			case d := <-arrived:
				if r, ok := broadcastAnswer(d.t, d.from, d.msg, xid); ok && each(r) {
					timer.Stop()
					return nil
				}
				// Each answer starts the round's wait afresh, as
				// rpc_broadcast polls again with its whole timeout.
				timer.Reset(wait)
			case <-timer.C:
				break round
			case <-ctx.Done():
				timer.Stop()
				return ctx.Err()
			}
		}
	}
	return nil
}

func warn(cfg BroadcastConfig, msg string) {
	if cfg.Warn != nil {
		cfg.Warn(msg)
	}
}

// openBroadcastTransports opens a socket for udp and one for udp6, each
// with the targets its interfaces give, leaving out a transport with none.
func openBroadcastTransports(ifs []ifaddrs.Addr, port uint16) ([]*broadcastTransport, error) {
	v4 := &broadcastTransport{id: netid.UDP}
	v6 := &broadcastTransport{id: netid.UDP6}
	group := netip.MustParseAddr("ff02::202")
	for _, ifa := range ifs {
		switch {
		case !ifa.Up:
		case ifa.Prefix.Addr().Is4():
			if ifa.Broadcast && ifa.BroadcastAddr.IsValid() {
				v4.targets = append(v4.targets, netip.AddrPortFrom(ifa.BroadcastAddr, port))
			}
		case ifa.Multicast:
			v6.targets = append(v6.targets, netip.AddrPortFrom(group.WithZone(strconv.Itoa(ifa.Index)), port))
		}
	}
	var out []*broadcastTransport
	for _, t := range []*broadcastTransport{v4, v6} {
		if len(t.targets) == 0 {
			continue
		}
		network, any := "udp4", net.IPv4zero
		if t.id == netid.UDP6 {
			network, any = "udp6", net.IPv6unspecified
		}
		conn, err := net.ListenUDP(network, &net.UDPAddr{IP: any})
		if err != nil {
			continue
		}
		if t.id == netid.UDP {
			if err := setBroadcast(conn); err != nil {
				_ = conn.Close()
				continue
			}
		}
		t.conn = conn
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, ErrNoBroadcast
	}
	return out, nil
}

// setBroadcast lets conn send to broadcast addresses (SO_BROADCAST).
func setBroadcast(conn *net.UDPConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
	}); err != nil {
		return err
	}
	return serr
}

// broadcastCall encodes a CALLIT of version vers that calls a.
func broadcastCall(xid, vers, proc uint32, cred xdr.OpaqueAuth, a xdr.CallArgs) []byte {
	var e xdr.Encoder
	h := xdr.CallHeader{XID: xid, RPCVers: xdr.RPCVersion, Prog: xdr.PmapProg, Vers: vers, Proc: proc, Cred: cred}
	h.Encode(&e)
	a.Encode(&e)
	return e.Bytes()
}

// broadcastAnswer reads msg, from from over t, as an answer to the
// broadcast of xid: xid itself answers the version 3 call, xid+1 the
// version 2 one. Anything else, and any answer but SUCCESS, is no answer.
func broadcastAnswer(t *broadcastTransport, from netip.AddrPort, msg []byte, xid uint32) (BroadcastReply, bool) {
	if len(msg) < 4 {
		return BroadcastReply{}, false
	}
	v2 := false
	switch binary.BigEndian.Uint32(msg) {
	case xid:
	case xid + 1:
		v2 = true
	default:
		return BroadcastReply{}, false
	}
	_, results, err := xdr.DecodeReply(msg)
	if err != nil {
		return BroadcastReply{}, false
	}
	r := BroadcastReply{Netid: t.id, From: from}
	d := xdr.NewDecoder(results)
	if v2 {
		var res xdr.CallResult
		res.Decode(d)
		if d.Err() != nil {
			return BroadcastReply{}, false
		}
		r.Service, r.Results = netip.AddrPortFrom(from.Addr(), uint16(res.Port)), res.Res
		return r, true
	}
	var res xdr.RmtCallResult
	res.Decode(d)
	if d.Err() != nil {
		return BroadcastReply{}, false
	}
	fam := netid.FamilyInet
	if t.id == netid.UDP6 {
		fam = netid.FamilyInet6
	}
	service, ok := netid.ParseUaddrLenient(fam, res.Addr)
	if !ok && fam == netid.FamilyInet {
		// libtirpc's __ipv6v4_fixup: a portmapper that answers an IPv4
		// broadcast with an IPv6 address is taken at its IPv4 address,
		// with the port it names.
		var v6 netip.AddrPort
		if v6, ok = netid.ParseUaddrLenient(netid.FamilyInet6, res.Addr); ok {
			service = netip.AddrPortFrom(from.Addr(), v6.Port())
		}
	}
	if !ok {
		return BroadcastReply{}, false
	}
	r.Service, r.Results = service, res.Results
	return r, true
}
