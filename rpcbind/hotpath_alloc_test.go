package rpcbind

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/netid/ifaddrs"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

// rawUDPCaller makes one encoded call again and again over a connected
// UDP socket, with nothing allocated per call, so that a test can count
// what the server allocates to answer it.
type rawUDPCaller struct {
	conn *net.UDPConn
	msg  []byte
	buf  []byte
	xid  uint32
}

func newRawUDPCaller(t testing.TB, to string, vers, proc uint32, args func(*xdr.Encoder)) *rawUDPCaller {
	t.Helper()
	conn, err := net.Dial("udp4", to)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var e xdr.Encoder
	h := xdr.CallHeader{RPCVers: xdr.RPCVersion, Prog: xdr.PmapProg, Vers: vers, Proc: proc}
	h.Encode(&e)
	args(&e)
	return &rawUDPCaller{conn: conn.(*net.UDPConn), msg: e.Bytes(), buf: make([]byte, 1500)}
}

// call sends the call under a new xid and returns the reply's results.
func (c *rawUDPCaller) call(t testing.TB) []byte {
	c.xid++
	binary.BigEndian.PutUint32(c.msg, c.xid)
	if _, err := c.conn.Write(c.msg); err != nil {
		t.Fatal(err)
	}
	if err := c.conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := c.conn.Read(c.buf)
		if err != nil {
			t.Fatal(err)
		}
		if n >= 24 && binary.BigEndian.Uint32(c.buf) == c.xid {
			return c.buf[24:n]
		}
	}
}

// TestUDPLookupsAllocateNothing: a GETPORT, GETADDR or GETVERSADDR over
// UDP with AUTH_NONE (as glibc's pmap_getport and libtirpc's rpcb_getaddr
// send them) is served, from the datagram's arrival to its reply's
// departure, without allocating, GETADDR's merged address included:
// measured over the whole process, client included, which allocates
// nothing itself.
func TestUDPLookupsAllocateNothing(t *testing.T) {
	// With the daemon's interface list, kept between calls.
	table, err := ifaddrs.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { table.Close() })
	s := startPortmapper(t, func(p *Portmapper) { p.Interfaces = table.Addrs })
	e := registry.Entry{Prog: 0x40000000, Vers: 1, Netid: netid.UDP, Addr: "0.0.0.0.4.1"}
	if ok, err := s.reg.Set(registry.Caller{Transport: registry.Internal}, e); !ok || err != nil {
		t.Fatal(ok, err)
	}
	for _, tc := range []struct {
		name       string
		vers, proc uint32
		args       func(*xdr.Encoder)
		want       []byte
	}{
		{"GETPORT", xdr.PmapVers, xdr.PmapProcGetport, func(e *xdr.Encoder) {
			m := xdr.Mapping{Prog: e2prog, Vers: 1, Prot: netid.ProtoUDP}
			m.Encode(e)
		}, []byte{0, 0, 4, 1}},
		{"GETADDR", xdr.RpcbVers, xdr.RpcbProcGetaddr, func(e *xdr.Encoder) {
			// As libtirpc's rpcb_getaddr asks: r_addr is the
			// address it called.
			r := xdr.RPCB{Prog: e2prog, Vers: 1, Netid: "udp", Addr: "127.0.0.1.0.111"}
			r.Encode(e)
		}, xdrString("127.0.0.1.4.1")},
		{"GETVERSADDR", xdr.RpcbVers4, xdr.RpcbProcGetversaddr, func(e *xdr.Encoder) {
			r := xdr.RPCB{Prog: e2prog, Vers: 1, Netid: "udp"}
			r.Encode(e)
		}, xdrString("127.0.0.1.4.1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newRawUDPCaller(t, s.udp.String(), tc.vers, tc.proc, tc.args)
			first := c.call(t)
			if tc.want != nil && string(first) != string(tc.want) {
				t.Fatalf("results % x, want % x", first, tc.want)
			}
			if allocs := testing.AllocsPerRun(2000, func() { c.call(t) }); allocs != 0 {
				t.Errorf("%v allocations per call, want 0", allocs)
			}
		})
	}
}

const e2prog = 0x40000000

func xdrString(s string) []byte {
	var e xdr.Encoder
	e.String(s)
	return e.Bytes()
}
