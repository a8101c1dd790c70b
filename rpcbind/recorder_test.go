package rpcbind

import (
	"net/netip"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/netid/ifaddrs"
	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/peer"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

// recorder is an oncrpc.ReplyWriter that keeps the reply instead of sending it.
type recorder struct {
	header  xdr.ReplyHeader
	results []byte
	replied bool
	// atReply, when set, runs as the reply is written: what it sees is
	// what a client that has its answer can see.
	atReply func()
}

func (r *recorder) WriteReply(h xdr.ReplyHeader, body func(*xdr.Encoder)) error {
	if r.replied {
		return oncrpc.ErrReplied
	}
	if r.atReply != nil {
		r.atReply()
	}
	r.replied = true
	r.header = h
	var e xdr.Encoder
	if body != nil && h.Stat == xdr.MsgAccepted && h.Accept == xdr.Success {
		body(&e)
	}
	r.results = e.Bytes()
	return nil
}

// harness drives a Portmapper's procedures without sockets.
type harness struct {
	t   testing.TB
	pm  *Portmapper
	mux *oncrpc.ServeMux
	reg *registry.Registry
}

var loopbackIfaces = []ifaddrs.Addr{
	{Prefix: netip.MustParsePrefix("127.0.0.1/8"), Index: 1, Name: "lo", Up: true, Loopback: true},
	{Prefix: netip.MustParsePrefix("192.0.2.10/24"), Index: 2, Name: "eth0", Up: true},
	{Prefix: netip.MustParsePrefix("::1/128"), Index: 1, Name: "lo", Up: true, Loopback: true},
	{Prefix: netip.MustParsePrefix("2001:db8::10/64"), Index: 2, Name: "eth0", Up: true},
}

func newHarness(t testing.TB) *harness {
	reg := registry.New(registry.Options{})
	pm := &Portmapper{
		Registry:   reg,
		Netids:     []netid.ID{"tcp6", "udp6", "tcp", "udp", "local"},
		Interfaces: func(netip.Addr) ([]ifaddrs.Addr, error) { return loopbackIfaces, nil },
		Now:        func() time.Time { return time.Unix(1_800_000_000, 0) },
	}
	mux := &oncrpc.ServeMux{}
	pm.Register(mux)
	eps := []Endpoint{
		{Netid: "tcp", Addr: "0.0.0.0.0.111"}, {Netid: "udp", Addr: "0.0.0.0.0.111"},
		{Netid: "tcp6", Addr: "::.0.111"}, {Netid: "udp6", Addr: "::.0.111"},
		{Netid: "local", Addr: "/run/rpcbind.sock"},
	}
	for _, e := range pm.SelfEntries(eps) {
		if _, err := reg.Set(registry.Caller{Transport: registry.Internal}, e); err != nil {
			t.Fatal(err)
		}
	}
	return &harness{t: t, pm: pm, mux: mux, reg: reg}
}

// from describes where a call comes from.
type from struct {
	netid  netid.ID
	remote string // addr:port for IP netids
	local  string // address called, for IP netids; "" when unknown
	uid    int    // for local: -1 means no credentials
}

var (
	loopbackUDP = from{netid: "udp", remote: "127.0.0.1:40000", local: "127.0.0.1:111"}
	loopbackTCP = from{netid: "tcp", remote: "127.0.0.1:40000", local: "127.0.0.1:111"}
	remoteUDP   = from{netid: "udp", remote: "192.0.2.77:40000", local: "192.0.2.10:111"}
	root        = from{netid: "local", uid: 0}
	user1000    = from{netid: "local", uid: 1000}
)

// call runs one procedure and returns what was replied (nil recorder
// fields when nothing was).
func (h *harness) call(f from, vers, proc uint32, args func(*xdr.Encoder)) *recorder {
	h.t.Helper()
	return h.callWith(&recorder{}, f, vers, proc, args)
}

// callWith is call replying to rec.
func (h *harness) callWith(rec *recorder, f from, vers, proc uint32, args func(*xdr.Encoder)) *recorder {
	h.t.Helper()
	var e xdr.Encoder
	if args != nil {
		args(&e)
	}
	c := &oncrpc.Call{
		CallHeader: xdr.CallHeader{XID: 1, RPCVers: 2, Prog: xdr.PmapProg, Vers: vers, Proc: proc},
		Args:       e.Bytes(),
		Peer:       peer.Peer{Transport: string(f.netid)},
	}
	if f.netid == "local" {
		if f.uid >= 0 {
			c.Peer.Cred = &peer.Cred{UID: uint32(f.uid), PID: 4242}
		}
	} else {
		c.Peer.Addr = netip.MustParseAddrPort(f.remote)
		if f.local != "" {
			c.Peer.Local = netip.MustParseAddrPort(f.local)
		}
	}
	h.mux.ServeRPC(rec, c)
	return rec
}

func (r *recorder) decode(t testing.TB, fn func(*xdr.Decoder)) {
	t.Helper()
	if !r.replied || r.header.Stat != xdr.MsgAccepted || r.header.Accept != xdr.Success {
		t.Fatalf("reply %+v, want SUCCESS", r.header)
	}
	d := xdr.NewDecoder(r.results)
	fn(d)
	if err := d.Finish(); err != nil {
		t.Fatalf("results: %v", err)
	}
}

func (r *recorder) boolean(t testing.TB) bool {
	var v bool
	r.decode(t, func(d *xdr.Decoder) { v = d.Bool() })
	return v
}

func (r *recorder) str(t testing.TB) string {
	var v string
	r.decode(t, func(d *xdr.Decoder) { v = d.String("", 1<<16) })
	return v
}

func rpcbArgs(prog, vers uint32, netid, addr string) func(*xdr.Encoder) {
	r := xdr.RPCB{Prog: prog, Vers: vers, Netid: netid, Addr: addr, Owner: "ignored"}
	return r.Encode
}
