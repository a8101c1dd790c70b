package rpcbind

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/netid/ifaddrs"
	"github.com/portmapd/portmapd/xdr"
)

const progT = 0x2fff0001

func TestSetUnsetAllVersions(t *testing.T) {
	for _, vers := range []uint32{3, 4} {
		t.Run("v"+string(rune('0'+vers)), func(t *testing.T) {
			h := newHarness(t)
			steps := []struct {
				name string
				f    from
				proc uint32
				args func(*xdr.Encoder)
				want bool
			}{
				{"set tcp", root, xdr.RpcbProcSet, rpcbArgs(progT, 1, "tcp", "127.0.0.1.156.65"), true},
				{"same address again", root, xdr.RpcbProcSet, rpcbArgs(progT, 1, "tcp", "127.0.0.1.156.65"), true},
				{"other address", root, xdr.RpcbProcSet, rpcbArgs(progT, 1, "tcp", "127.0.0.1.156.66"), false},
				{"netid is case-insensitive", root, xdr.RpcbProcSet, rpcbArgs(progT, 1, "TCP", "127.0.0.1.156.66"), false},
				{"set tcp6", root, xdr.RpcbProcSet, rpcbArgs(progT, 1, "tcp6", "::1.156.67"), true},
				{"unknown netid refused", user1000, xdr.RpcbProcSet, rpcbArgs(progT, 2, "bogus", "/run/x.sock"), false},
				{"address not of the netid's form refused", user1000, xdr.RpcbProcSet, rpcbArgs(progT, 2, "tcp", "not an address"), false},
				{"user sets local", user1000, xdr.RpcbProcSet, rpcbArgs(progT, 2, "local", "/run/x.sock"), true},
				{"user cannot unset root's", user1000, xdr.RpcbProcUnset, rpcbArgs(progT, 1, "tcp", ""), false},
				{"user unsets own", user1000, xdr.RpcbProcUnset, rpcbArgs(progT, 2, "", ""), true},
				{"root unsets one netid", root, xdr.RpcbProcUnset, rpcbArgs(progT, 1, "tcp", ""), true},
				{"unset of nothing", root, xdr.RpcbProcUnset, rpcbArgs(progT, 1, "tcp", ""), true},
				{"root unsets all netids", root, xdr.RpcbProcUnset, rpcbArgs(progT, 1, "", ""), true},
			}
			for _, st := range steps {
				t.Run(st.name, func(t *testing.T) {
					if got := h.call(st.f, vers, st.proc, st.args).boolean(t); got != st.want {
						t.Errorf("got %v, want %v", got, st.want)
					}
				})
			}
			if n := h.reg.Len(); n != 12 {
				t.Errorf("registry has %d entries after the sequence, want the portmapper's 12", n)
			}
		})
	}
}

func TestOwners(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		f     from
		owner string
	}{
		{root, "superuser"},
		{user1000, "1000"},
		{from{netid: "local", uid: -1}, "unknown"},
		{loopbackUDP, "unknown"},
		{from{netid: "udp", remote: "127.0.0.1:700", local: "127.0.0.1:111"}, "superuser"},
	}
	for i, c := range cases {
		prog := uint32(0x2fff0100 + i)
		h.call(c.f, 3, xdr.RpcbProcSet, rpcbArgs(prog, 1, "udp", "0.0.0.0.1.2")).boolean(t)
		e, ok := h.reg.LookupExact(prog, 1, "udp")
		if !ok || e.Owner != c.owner {
			t.Errorf("%+v: owner %q, want %q", c.f, e.Owner, c.owner)
		}
	}
}

func TestChangesFromRemoteAreTooWeak(t *testing.T) {
	h := newHarness(t)
	for _, vers := range []uint32{2, 3, 4} {
		for _, proc := range []uint32{1, 2} {
			var args func(*xdr.Encoder)
			if vers == 2 {
				m := xdr.Mapping{Prog: progT, Vers: 1, Prot: 17, Port: 1}
				args = m.Encode
			} else {
				args = rpcbArgs(progT, 1, "udp", "0.0.0.0.0.1")
			}
			r := h.call(remoteUDP, vers, proc, args)
			if r.header.Stat != xdr.MsgDenied || r.header.Auth != xdr.AuthTooWeak {
				t.Errorf("v%d proc %d from %s: %+v, want AUTH_TOOWEAK", vers, proc, remoteUDP.remote, r.header)
			}
		}
	}
}

func TestOneListBehindAllVersions(t *testing.T) {
	h := newHarness(t)
	h.call(root, 3, xdr.RpcbProcSet, rpcbArgs(progT, 1, "udp", "127.0.0.1.156.65")).boolean(t)
	h.call(root, 3, xdr.RpcbProcSet, rpcbArgs(progT, 1, "udp6", "::1.156.66")).boolean(t)
	m := xdr.Mapping{Prog: progT, Vers: 2, Prot: netid.ProtoTCP, Port: 40002}
	if !h.call(loopbackUDP, 2, xdr.PmapProcSet, m.Encode).boolean(t) {
		t.Fatal("v2 set refused")
	}
	var v3 []xdr.RPCB
	h.call(loopbackTCP, 3, xdr.RpcbProcDump, nil).decode(t, func(d *xdr.Decoder) { v3 = xdr.DecodeList(d, (*xdr.RPCB).Decode) })
	want := []xdr.RPCB{
		{Prog: progT, Vers: 1, Netid: "udp", Addr: "127.0.0.1.156.65", Owner: "superuser"},
		{Prog: progT, Vers: 1, Netid: "udp6", Addr: "::1.156.66", Owner: "superuser"},
		{Prog: progT, Vers: 2, Netid: "tcp", Addr: "0.0.0.0.156.66", Owner: "unknown"},
	}
	if len(v3) != 12+len(want) {
		t.Fatalf("v3 dump has %d entries", len(v3))
	}
	for i, w := range want {
		if v3[12+i] != w {
			t.Errorf("v3 entry %d = %+v, want %+v", 12+i, v3[12+i], w)
		}
	}
	var v2 []xdr.Mapping
	h.call(loopbackTCP, 2, xdr.PmapProcDump, nil).decode(t, func(d *xdr.Decoder) { v2 = xdr.DecodeList(d, (*xdr.Mapping).Decode) })
	wantV2 := []xdr.Mapping{{Prog: progT, Vers: 1, Prot: 17, Port: 40001}, {Prog: progT, Vers: 2, Prot: 6, Port: 40002}}
	if len(v2) != 6+2 || v2[6] != wantV2[0] || v2[7] != wantV2[1] {
		t.Errorf("v2 dump tail %v, want %v (udp6 must not appear)", v2[6:], wantV2)
	}
	// v2 UNSET leaves udp6 alone.
	um := xdr.Mapping{Prog: progT, Vers: 1}
	h.call(root, 2, xdr.PmapProcUnset, um.Encode).boolean(t)
	if _, ok := h.reg.LookupExact(progT, 1, "udp6"); !ok {
		t.Error("v2 UNSET removed the udp6 entry")
	}
	if _, ok := h.reg.LookupExact(progT, 1, "udp"); ok {
		t.Error("v2 UNSET left the udp entry")
	}
}

func TestGetaddr(t *testing.T) {
	h := newHarness(t)
	h.call(root, 3, xdr.RpcbProcSet, rpcbArgs(progT, 1, "udp", "0.0.0.0.156.65")).boolean(t)
	h.call(root, 3, xdr.RpcbProcSet, rpcbArgs(progT, 3, "udp", "0.0.0.0.156.67")).boolean(t)
	h.call(root, 3, xdr.RpcbProcSet, rpcbArgs(progT, 1, "tcp6", "::.156.66")).boolean(t)
	h.call(root, 3, xdr.RpcbProcSet, rpcbArgs(progT, 1, "local", "/run/t.sock")).boolean(t)
	tests := []struct {
		name string
		f    from
		vers uint32
		proc uint32
		args func(*xdr.Encoder)
		want string
	}{
		{"loopback caller gets loopback", loopbackUDP, 3, xdr.RpcbProcGetaddr, rpcbArgs(progT, 1, "udp", ""), "127.0.0.1.156.65"},
		{"r_netid is ignored for the arrival netid", loopbackUDP, 3, xdr.RpcbProcGetaddr, rpcbArgs(progT, 1, "tcp6", ""), "127.0.0.1.156.65"},
		{"remote caller gets the interface on its network", remoteUDP, 4, xdr.RpcbProcGetaddr, rpcbArgs(progT, 1, "", ""), "192.0.2.10.156.65"},
		{"the address called beats the hint", loopbackUDP, 3, xdr.RpcbProcGetaddr, rpcbArgs(progT, 1, "", "192.0.2.10.0.111"), "127.0.0.1.156.65"},
		{"without the address called, a hint names the interface", from{netid: "udp", remote: "127.0.0.1:40000"}, 3, xdr.RpcbProcGetaddr, rpcbArgs(progT, 1, "", "192.0.2.10.0.111"), "192.0.2.10.156.65"},
		{"a broadcast destination gives the interface on its network", from{netid: "udp", remote: "192.0.2.77:40000", local: "192.0.2.255:111"}, 4, xdr.RpcbProcGetaddr, rpcbArgs(progT, 1, "", ""), "192.0.2.10.156.65"},
		{"127.0.0.2 gives the first ordinary interface, as from rpcbind", from{netid: "udp", remote: "127.0.0.2:40000", local: "127.0.0.2:111"}, 4, xdr.RpcbProcGetaddr, rpcbArgs(progT, 1, "", ""), "192.0.2.10.156.65"},
		{"a malformed hint gives the registered address", loopbackUDP, 3, xdr.RpcbProcGetaddr, rpcbArgs(progT, 1, "", "bogus"), "0.0.0.0.156.65"},
		{"another version falls back to the last", loopbackUDP, 3, xdr.RpcbProcGetaddr, rpcbArgs(progT, 7, "", ""), "127.0.0.1.156.67"},
		{"GETVERSADDR is exact", loopbackUDP, 4, xdr.RpcbProcGetversaddr, rpcbArgs(progT, 7, "", ""), ""},
		{"GETVERSADDR exact hit", loopbackUDP, 4, xdr.RpcbProcGetversaddr, rpcbArgs(progT, 3, "", ""), "127.0.0.1.156.67"},
		{"IPv6 caller", from{netid: "tcp6", remote: "[::1]:4000", local: "[::1]:111"}, 4, xdr.RpcbProcGetaddr, rpcbArgs(progT, 1, "", ""), "::1.156.66"},
		{"local caller gets the address unmerged", root, 4, xdr.RpcbProcGetaddr, rpcbArgs(progT, 1, "", ""), "/run/t.sock"},
		{"unregistered program", loopbackUDP, 3, xdr.RpcbProcGetaddr, rpcbArgs(progT+9, 1, "", ""), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := h.call(tc.f, tc.vers, tc.proc, tc.args).str(t); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestGetaddrMulticastCall: a call sent to a multicast group (an IPv6
// broadcast remote call) names no interface, so the caller's address does:
// a link-local caller gets the link-local address of its link, as from
// rpcbind, which merges with the caller's address.
func TestGetaddrMulticastCall(t *testing.T) {
	h := newHarness(t)
	ifs := append(slices.Clone(loopbackIfaces), ifaddrs.Addr{Prefix: netip.MustParsePrefix("fe80::10/64"), Index: 2, Name: "eth0", Up: true})
	h.pm.Interfaces = func(netip.Addr) ([]ifaddrs.Addr, error) { return ifs, nil }
	h.call(root, 3, xdr.RpcbProcSet, rpcbArgs(progT, 1, "udp6", "::.156.65")).boolean(t)
	for _, tc := range []struct {
		f    from
		want string
	}{
		{from{netid: "udp6", remote: "[fe80::77%eth0]:40000", local: "[ff02::202]:111"}, "fe80::10.156.65"},
		{from{netid: "udp6", remote: "[2001:db8::77]:40000", local: "[ff02::202]:111"}, "2001:db8::10.156.65"},
	} {
		if got := h.call(tc.f, 4, xdr.RpcbProcGetaddr, rpcbArgs(progT, 1, "", "")).str(t); got != tc.want {
			t.Errorf("from %s to %s: %q, want %q", tc.f.remote, tc.f.local, got, tc.want)
		}
	}
}

func TestGetaddrlist(t *testing.T) {
	h := newHarness(t)
	var list []xdr.RPCBEntry
	h.call(loopbackUDP, 4, xdr.RpcbProcGetaddrlist, rpcbArgs(xdr.PmapProg, 4, "udp", "127.0.0.1.0.111")).decode(t, func(d *xdr.Decoder) {
		list = xdr.DecodeList(d, (*xdr.RPCBEntry).Decode)
	})
	want := []xdr.RPCBEntry{
		{MAddr: "127.0.0.1.0.111", Netid: "tcp", Semantics: netid.TpiCotsOrd, ProtoFmly: "inet", Proto: "tcp"},
		{MAddr: "127.0.0.1.0.111", Netid: "udp", Semantics: netid.TpiClts, ProtoFmly: "inet", Proto: "udp"},
	}
	if len(list) != len(want) {
		t.Fatalf("got %+v, want %+v", list, want)
	}
	for i := range want {
		if list[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, list[i], want[i])
		}
	}
	h.call(loopbackUDP, 4, xdr.RpcbProcGetaddrlist, rpcbArgs(progT, 1, "", "")).decode(t, func(d *xdr.Decoder) {
		if l := xdr.DecodeList(d, (*xdr.RPCBEntry).Decode); len(l) != 0 {
			t.Errorf("unregistered program listed %v", l)
		}
	})
	// As from rpcbind: an entry on a netid it does not serve (here unix,
	// /etc/netconfig's other name for local) leaves GETADDRLIST for that
	// program unanswered.
	if !h.call(root, 3, xdr.RpcbProcSet, rpcbArgs(progT, 1, "unix", "/run/x.sock")).boolean(t) {
		t.Fatal("SET on unix refused")
	}
	if r := h.call(loopbackUDP, 4, xdr.RpcbProcGetaddrlist, rpcbArgs(progT, 1, "", "")); r.replied {
		t.Errorf("answered %+v, want no reply", r.header)
	}
}

func TestAddressConversions(t *testing.T) {
	h := newHarness(t)
	str := func(s string) func(*xdr.Encoder) { return func(e *xdr.Encoder) { e.String(s) } }
	nb := func(n xdr.Netbuf) func(*xdr.Encoder) { return n.Encode }
	tests := []struct {
		name    string
		f       from
		uaddr   string
		wantLen int
		wantMax uint32
	}{
		{"inet", loopbackUDP, "127.0.0.1.3.232", 16, 16},
		{"inet6", from{netid: "udp6", remote: "[::1]:4000", local: "[::1]:111"}, "::1.3.232", 28, 28},
		{"local path", root, "/run/rpcbind.sock", 2 + len("/run/rpcbind.sock"), 110},
		{"local non-path loses its last two fields", root, "127.0.0.1.3.232", 11, 110},
		{"inet6 address on inet", loopbackUDP, "::1.3.232", 0, 0},
		{"no port", loopbackUDP, "127.0.0.1", 0, 0},
		{"garbage", loopbackUDP, "x", 0, 0},
		{"empty", loopbackUDP, "", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got xdr.Netbuf
			h.call(tc.f, 3, xdr.RpcbProcUaddr2taddr, str(tc.uaddr)).decode(t, got.Decode)
			if len(got.Buf) != tc.wantLen || got.MaxLen != tc.wantMax {
				t.Fatalf("netbuf maxlen %d len %d, want %d %d", got.MaxLen, len(got.Buf), tc.wantMax, tc.wantLen)
			}
			if tc.wantLen == 0 || tc.f.netid == "local" && tc.wantLen == 11 {
				return
			}
			back := h.call(tc.f, 3, xdr.RpcbProcTaddr2uaddr, nb(got)).str(t)
			if back != tc.uaddr {
				t.Errorf("round trip gave %q", back)
			}
		})
	}
	t.Run("short netbuf", func(t *testing.T) {
		if got := h.call(loopbackUDP, 4, xdr.RpcbProcTaddr2uaddr, nb(xdr.Netbuf{MaxLen: 8, Buf: make([]byte, 8)})).str(t); got != "" {
			t.Errorf("got %q, want empty", got)
		}
	})
	t.Run("buffer longer than maxlen is garbage", func(t *testing.T) {
		r := h.call(loopbackUDP, 4, xdr.RpcbProcTaddr2uaddr, func(e *xdr.Encoder) { e.Uint32(4); e.Opaque(make([]byte, 16)) })
		if r.header.Accept != xdr.GarbageArgs {
			t.Errorf("got %+v, want GARBAGE_ARGS", r.header)
		}
	})
}

func TestGettime(t *testing.T) {
	h := newHarness(t)
	var got uint32
	h.call(loopbackUDP, 3, xdr.RpcbProcGettime, nil).decode(t, func(d *xdr.Decoder) { got = d.Uint32() })
	if got != 1_800_000_000 {
		t.Errorf("got %d", got)
	}
}

func TestRemoteCalls(t *testing.T) {
	h := newHarness(t)
	h.call(root, 3, xdr.RpcbProcSet, rpcbArgs(progT, 2, "udp", "0.0.0.0.156.65")).boolean(t)
	args := func(prog, vers, proc uint32) func(*xdr.Encoder) {
		a := xdr.CallArgs{Prog: prog, Vers: vers, Proc: proc, Args: []byte{1, 2, 3, 4}}
		return a.Encode
	}
	tests := []struct {
		name string
		f    from
		vers uint32
		proc uint32
		args func(*xdr.Encoder)
		// want: replied false means silence.
		replied bool
		hdr     xdr.ReplyHeader
	}{
		{"CALLIT to a registered program is dropped", loopbackUDP, 2, 5, args(progT, 2, 1), false, xdr.ReplyHeader{}},
		{"CALLIT over TCP is dropped", loopbackTCP, 2, 5, args(xdr.PmapProg, 2, 3), false, xdr.ReplyHeader{}},
		{"CALLIT to the portmapper is too weak", loopbackUDP, 2, 5, args(xdr.PmapProg, 2, 3), true, xdr.Denied(1, xdr.AuthTooWeak)},
		{"CALLIT to NFS is too weak", loopbackUDP, 3, 5, args(progNFS, 3, 1), true, xdr.Denied(1, xdr.AuthTooWeak)},
		{"NULL may always be called", loopbackUDP, 4, 5, args(progNFS, 3, 0), false, xdr.ReplyHeader{}},
		{"INDIRECT to an unregistered program", loopbackUDP, 4, 10, args(progT+5, 1, 1), true, xdr.Accepted(1, xdr.ProgUnavail)},
		{"INDIRECT to a wrong version", loopbackUDP, 4, 10, args(progT, 9, 1), true, xdr.ReplyHeader{XID: 1, Stat: xdr.MsgAccepted, Accept: xdr.ProgMismatch, Mismatch: xdr.Mismatch{Low: 2, High: 2}}},
		{"INDIRECT it would forward is SYSTEM_ERR", loopbackUDP, 4, 10, args(progT, 2, 1), true, xdr.Accepted(1, xdr.SystemErr)},
		// The programs a Forwarder denies are its own: without one, as
		// without -r, the answers are as they were before it had any.
		{"INDIRECT to keyserv without forwarding", loopbackUDP, 4, 10, args(progKeyserv, 1, 1), true, xdr.Accepted(1, xdr.ProgUnavail)},
		{"INDIRECT with bad arguments", loopbackUDP, 4, 10, func(e *xdr.Encoder) { e.Uint32(1) }, true, xdr.Accepted(1, xdr.GarbageArgs)},
		{"CALLIT with bad arguments is silent", loopbackUDP, 2, 5, func(e *xdr.Encoder) { e.Uint32(1) }, false, xdr.ReplyHeader{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.call(tc.f, tc.vers, tc.proc, tc.args)
			if r.replied != tc.replied {
				t.Fatalf("replied %v (%+v), want %v", r.replied, r.header, tc.replied)
			}
			if tc.replied && !reflect.DeepEqual(r.header, tc.hdr) {
				t.Errorf("reply %+v, want %+v", r.header, tc.hdr)
			}
		})
	}
}

func TestProcedureRouting(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		vers, proc uint32
		want       xdr.AcceptStat
	}{
		{2, 6, xdr.ProcUnavail}, {3, 9, xdr.ProcUnavail}, {4, 13, xdr.ProcUnavail},
		{1, 0, xdr.ProgMismatch}, {5, 0, xdr.ProgMismatch},
		{2, 0, xdr.Success}, {3, 0, xdr.Success}, {4, 0, xdr.Success},
	}
	for _, tc := range tests {
		r := h.call(loopbackUDP, tc.vers, tc.proc, nil)
		if r.header.Accept != tc.want {
			t.Errorf("v%d proc %d: %v, want %v", tc.vers, tc.proc, r.header.Accept, tc.want)
		}
		if tc.want == xdr.ProgMismatch && r.header.Mismatch != (xdr.Mismatch{Low: 2, High: 4}) {
			t.Errorf("mismatch range %+v, want 2..4", r.header.Mismatch)
		}
	}
}

func TestGetstatCounts(t *testing.T) {
	h := newHarness(t)
	m := xdr.Mapping{Prog: progT, Vers: 1, Prot: netid.ProtoUDP, Port: 7}
	h.call(loopbackUDP, 2, xdr.PmapProcSet, m.Encode).boolean(t)
	h.call(loopbackUDP, 2, xdr.PmapProcGetport, m.Encode)
	miss := xdr.Mapping{Prog: progT + 1, Vers: 1, Prot: netid.ProtoUDP}
	h.call(loopbackUDP, 2, xdr.PmapProcGetport, miss.Encode)
	h.call(loopbackUDP, 3, xdr.RpcbProcGetaddr, rpcbArgs(progT, 1, "", "")).str(t)
	h.call(remoteUDP, 3, xdr.RpcbProcSet, rpcbArgs(progT, 1, "udp", "x"))
	h.call(loopbackUDP, 2, 5, func(e *xdr.Encoder) { (&xdr.CallArgs{Prog: progT, Vers: 1, Proc: 1}).Encode(e) })
	var st [3]xdr.VersionStat
	h.call(loopbackUDP, 4, xdr.RpcbProcGetstat, nil).decode(t, func(d *xdr.Decoder) {
		for i := range st {
			st[i].Decode(d)
		}
	})
	if st[0].Info[1] != 1 || st[0].Info[3] != 2 || st[0].Info[5] != 1 || st[0].SetInfo != 1 {
		t.Errorf("v2 counters %+v", st[0])
	}
	if st[1].Info[1] != 1 || st[1].SetInfo != 0 {
		t.Errorf("v3: refused SET must count as a call but not as a set: %+v", st[1])
	}
	if st[2].Info[12] != 1 {
		t.Errorf("GETSTAT must count itself: %+v", st[2].Info)
	}
	wantAddr := []xdr.AddrStat{
		{Prog: progT + 1, Vers: 1, Failure: 1, Netid: "udp"},
		{Prog: progT, Vers: 1, Success: 1, Netid: "udp"},
	}
	if len(st[0].AddrInfo) != 2 || st[0].AddrInfo[0] != wantAddr[0] || st[0].AddrInfo[1] != wantAddr[1] {
		t.Errorf("v2 addrinfo %+v, want newest first %+v", st[0].AddrInfo, wantAddr)
	}
	if len(st[0].RmtInfo) != 1 || st[0].RmtInfo[0].Success != 1 {
		t.Errorf("v2 rmtinfo %+v", st[0].RmtInfo)
	}
}

// TestRmtCallIndirectCount: rpcbind starts each remote-call row's
// indirect count at one, whatever the procedure of the call that made the
// row, and counts later calls only when they are INDIRECT.
func TestRmtCallIndirectCount(t *testing.T) {
	var s Stats
	for _, c := range []struct {
		indirect bool
		want     int32
	}{{false, 1}, {false, 1}, {true, 2}, {false, 2}, {true, 3}} {
		s.RmtCall(4, c.indirect, progT, 1, 0, "udp", true)
		if got := s.Snapshot()[2].RmtInfo[0].Indirect; got != c.want {
			t.Errorf("after a call (indirect %v): indirect count %d, want %d", c.indirect, got, c.want)
		}
	}
	s.RmtCall(4, true, progT, 2, 0, "udp", false)
	if r := s.Snapshot()[2].RmtInfo[0]; r.Indirect != 1 || r.Failure != 1 {
		t.Errorf("a new row made by INDIRECT: %+v, want indirect 1", r)
	}
}

func TestStatListsAreBounded(t *testing.T) {
	s := &Stats{MaxEntries: 3}
	for i := range 100 {
		s.Addr(3, uint32(i), 1, "udp", "")
	}
	if n := len(s.Snapshot()[1].AddrInfo); n != 3 {
		t.Errorf("%d entries kept, want 3", n)
	}
}

// TestGetaddrFollowsTheInterfaces is the case a one-second interface cache
// got wrong: a GETADDR from loopback, then an address is added, then at
// once a GETADDR from another host reaches that address. Every answer must
// come from the list as it is when the call arrives, and the list is
// asked about the address the call arrived at, so that a cache can tell it
// is stale.
func TestGetaddrFollowsTheInterfaces(t *testing.T) {
	h := newHarness(t)
	lo := []ifaddrs.Addr{
		{Prefix: netip.MustParsePrefix("127.0.0.1/8"), Index: 1, Name: "lo", Up: true, Loopback: true},
		{Prefix: netip.MustParsePrefix("::1/128"), Index: 1, Name: "lo", Up: true, Loopback: true},
	}
	kernel := lo
	var asked []netip.Addr
	h.pm.Interfaces = func(dst netip.Addr) ([]ifaddrs.Addr, error) {
		asked = append(asked, dst)
		return kernel, nil
	}
	h.call(root, 3, xdr.RpcbProcSet, rpcbArgs(progT, 1, "tcp", "0.0.0.0.156.65")).boolean(t)
	h.call(root, 3, xdr.RpcbProcSet, rpcbArgs(progT, 1, "tcp6", "::.156.66")).boolean(t)
	linkLocal := func(addr, name string, index int) ifaddrs.Addr {
		return ifaddrs.Addr{Prefix: netip.MustParsePrefix(addr), Index: index, Name: name, Up: true}
	}
	steps := []struct {
		name   string
		kernel []ifaddrs.Addr
		f      from
		hint   string
		want   string
	}{
		{"from loopback", lo, loopbackTCP, "127.0.0.1.0.111", "127.0.0.1.156.65"},
		{"from another host just after 10.0.0.2 was added", append(slices.Clone(lo), ifaddrs.Addr{Prefix: netip.MustParsePrefix("10.0.0.2/24"), Index: 2, Name: "veth0", Up: true}),
			from{netid: "tcp", remote: "10.0.0.1:900", local: "10.0.0.2:111"}, "10.0.0.2.0.111", "10.0.0.2.156.65"},
		{"after 10.0.0.2 became 10.0.0.3", append(slices.Clone(lo), ifaddrs.Addr{Prefix: netip.MustParsePrefix("10.0.0.3/24"), Index: 2, Name: "veth0", Up: true}),
			from{netid: "tcp", remote: "10.0.0.1:900", local: "10.0.0.3:111"}, "10.0.0.3.0.111", "10.0.0.3.156.65"},
		{"link-local, by the caller's link", append(slices.Clone(lo), linkLocal("fe80::3/64", "veth1", 3), linkLocal("fe80::2/64", "veth0", 2)),
			from{netid: "tcp6", remote: "[fe80::1%veth0]:900", local: "[fe80::2%veth0]:111"}, "fe80::2.0.111", "fe80::2.156.66"},
		{"link-local, datagram destination without a zone", append(slices.Clone(lo), linkLocal("fe80::3/64", "veth1", 3), linkLocal("fe80::2/64", "veth0", 2)),
			from{netid: "tcp6", remote: "[fe80::1%2]:900", local: "[fe80::2]:111"}, "fe80::2.0.111", "fe80::2.156.66"},
		{"after the last address went", lo, from{netid: "tcp", remote: "10.0.0.1:900", local: "10.0.0.3:111"}, "10.0.0.3.0.111", "127.0.0.1.156.65"},
	}
	for _, st := range steps {
		kernel, asked = st.kernel, nil
		netid := "tcp"
		if st.f.netid == "tcp6" {
			netid = "tcp6"
		}
		got := h.call(st.f, 4, xdr.RpcbProcGetaddr, rpcbArgs(progT, 1, netid, st.hint)).str(t)
		if got != st.want {
			t.Errorf("%s: got %q, want %q", st.name, got, st.want)
		}
		if want := netip.MustParseAddrPort(st.f.local).Addr(); len(asked) != 1 || asked[0] != want {
			t.Errorf("%s: the interfaces were asked about %v, want once about %v", st.name, asked, want)
		}
	}
}

// TestLookupCountedBeforeReply checks that every lookup is in GETSTAT's
// counts by the time its reply is written, as rpcbind counts before its
// dispatcher answers: a client that asks for GETSTAT once it has its answer
// must see the lookup it made.
func TestLookupCountedBeforeReply(t *testing.T) {
	m := xdr.Mapping{Prog: progT, Vers: 1, Prot: netid.ProtoUDP, Port: 7}
	for _, tc := range []struct {
		name       string
		vers, proc uint32
		args       func(*xdr.Encoder)
		// statVers is the index of the version whose counts the lookup
		// lands in: 0 for v2, 1 for v3, 2 for v4.
		statVers int
	}{
		{"v2 GETPORT", 2, xdr.PmapProcGetport, m.Encode, 0},
		{"v3 GETADDR", 3, xdr.RpcbProcGetaddr, rpcbArgs(progT, 1, "udp", ""), 1},
		{"v4 GETADDR", 4, xdr.RpcbProcGetaddr, rpcbArgs(progT, 1, "udp", ""), 2},
		{"v4 GETVERSADDR", 4, xdr.RpcbProcGetversaddr, rpcbArgs(progT, 1, "udp", ""), 2},
		{"v4 GETADDRLIST", 4, xdr.RpcbProcGetaddrlist, rpcbArgs(progT, 1, "udp", ""), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.call(loopbackUDP, 2, xdr.PmapProcSet, m.Encode).boolean(t)
			counted := -1
			rec := &recorder{atReply: func() {
				counted = len(h.pm.Stats.Snapshot()[tc.statVers].AddrInfo)
			}}
			h.callWith(rec, loopbackUDP, tc.vers, tc.proc, tc.args)
			if !rec.replied {
				t.Fatal("no reply")
			}
			if counted != 1 {
				t.Errorf("lookups counted when the reply was written: %d, want 1", counted)
			}
		})
	}
}
