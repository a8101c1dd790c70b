package xdr

// Procedures of rpcbind versions 3 and 4 (RFC 1833). Version 4 reuses 5
// as BCAST and adds 9 to 12.
const (
	RpcbProcNull        = 0
	RpcbProcSet         = 1
	RpcbProcUnset       = 2
	RpcbProcGetaddr     = 3
	RpcbProcDump        = 4
	RpcbProcCallit      = 5
	RpcbProcBcast       = 5
	RpcbProcGettime     = 6
	RpcbProcUaddr2taddr = 7
	RpcbProcTaddr2uaddr = 8
	RpcbProcGetversaddr = 9
	RpcbProcIndirect    = 10
	RpcbProcGetaddrlist = 11
	RpcbProcGetstat     = 12
)

// Highest procedure of each portmapper version (rpcb_highproc_2/3/4).
const (
	PmapHighProc  = PmapProcCallit
	RpcbHighProc3 = RpcbProcTaddr2uaddr
	RpcbHighProc4 = RpcbProcGetstat
)

// MaxRPCBString bounds the strings of rpcbind's arguments, as rpcbind's
// xdr_rpcb does with RPC_MAXDATASIZE.
const MaxRPCBString = DefaultMaxMessage

// RPCB is rpcbind's registration: program, version, netid, universal
// address and owner.
type RPCB struct {
	Prog, Vers uint32
	Netid      string
	Addr       string
	Owner      string
}

// Decode reads an rpcb. Like Mapping's, it and Encode are written out
// rather than walked, for speed (see walker).
func (r *RPCB) Decode(d *Decoder) {
	r.Prog = d.Uint32()
	r.Vers = d.Uint32()
	r.Netid = d.String("r_netid", MaxRPCBString)
	r.Addr = d.String("r_addr", MaxRPCBString)
	r.Owner = d.String("r_owner", MaxRPCBString)
}

// Encode appends r.
func (r *RPCB) Encode(e *Encoder) {
	e.Uint32(r.Prog)
	e.Uint32(r.Vers)
	e.String(r.Netid)
	e.String(r.Addr)
	e.String(r.Owner)
}

// RmtCallResult is the result of CALLIT, BCAST and INDIRECT in versions
// 3 and 4 (rpcb_rmtcallres): the universal address of the program called,
// as the caller can reach it, and that program's encoded results.
type RmtCallResult struct {
	Addr    string
	Results []byte
}

// Decode reads an rpcb_rmtcallres.
func (r *RmtCallResult) Decode(d *Decoder) { r.walk(decoding(d)) }

// Encode appends r.
func (r *RmtCallResult) Encode(e *Encoder) { r.walk(encoding(e)) }

// walk is rpcb_rmtcallres's layout. The results can be no larger than the
// message that carries them.
func (r *RmtCallResult) walk(w walker) {
	w.string(&r.Addr, "rpcb_rmtcallres.addr", MaxRPCBString)
	w.opaque(&r.Results, "rpcb_rmtcallres.results", w.remaining())
}

// An RPCBEntry is one element of GETADDRLIST's result: an address and the
// netconfig facts of its transport.
type RPCBEntry struct {
	MAddr string
	Netid string
	// Semantics is the transport's netconfig nc_semantics (netid.TpiClts,
	// netid.TpiCotsOrd, ...).
	Semantics uint32
	ProtoFmly string
	Proto     string
}

// Decode reads an rpcb_entry.
func (r *RPCBEntry) Decode(d *Decoder) { r.walk(decoding(d)) }

// Encode appends r.
func (r *RPCBEntry) Encode(e *Encoder) { r.walk(encoding(e)) }

// walk is rpcb_entry's layout.
func (r *RPCBEntry) walk(w walker) {
	w.string(&r.MAddr, "r_maddr", MaxRPCBString)
	w.string(&r.Netid, "r_nc_netid", MaxRPCBString)
	w.uint32(&r.Semantics)
	w.string(&r.ProtoFmly, "r_nc_protofmly", MaxRPCBString)
	w.string(&r.Proto, "r_nc_proto", MaxRPCBString)
}

// A Netbuf carries a transport address in its native form (on Linux, a
// struct sockaddr). Len(Buf) never exceeds MaxLen.
type Netbuf struct {
	MaxLen uint32
	Buf    []byte
}

// Decode reads a netbuf.
func (n *Netbuf) Decode(d *Decoder) { n.walk(decoding(d)) }

// Encode appends n.
func (n *Netbuf) Encode(e *Encoder) { n.walk(encoding(e)) }

// walk is netbuf's layout; like libtirpc's xdr_netbuf, a buffer longer
// than its own maxlen is malformed.
func (n *Netbuf) walk(w walker) {
	w.uint32(&n.MaxLen)
	w.opaque(&n.Buf, "netbuf.buf", int(min(n.MaxLen, MaxRPCBString)))
}

// Layout of rpcbind's statistics (rpcb_prot.x).
const (
	// StatHighProc is RPCBSTAT_HIGHPROC: the length of a version's
	// procedure counters.
	StatHighProc = 13
	// StatVersions is RPCBVERS_STAT: statistics are kept for versions 2,
	// 3 and 4, in that order.
	StatVersions = 3
)

// AddrStat counts GETADDR (and GETPORT, GETADDRLIST) answers for one
// program, version and netid.
type AddrStat struct {
	Prog, Vers       uint32
	Success, Failure int32
	Netid            string
}

// Encode appends the rpcbs_addr fields of a.
func (a *AddrStat) Encode(e *Encoder) { a.walk(encoding(e)) }

// Decode reads the rpcbs_addr fields.
func (a *AddrStat) Decode(d *Decoder) { a.walk(decoding(d)) }

// walk is the layout of rpcbs_addr's fields.
func (a *AddrStat) walk(w walker) {
	w.uint32(&a.Prog, &a.Vers)
	w.int32(&a.Success, &a.Failure)
	w.string(&a.Netid, "rpcbs_addr.netid", MaxRPCBString)
}

// RmtCallStat counts remote calls for one program, version, procedure and
// netid.
type RmtCallStat struct {
	Prog, Vers, Proc           uint32
	Success, Failure, Indirect int32
	Netid                      string
}

// Encode appends the rpcbs_rmtcall fields of r.
func (r *RmtCallStat) Encode(e *Encoder) { r.walk(encoding(e)) }

// Decode reads the rpcbs_rmtcall fields.
func (r *RmtCallStat) Decode(d *Decoder) { r.walk(decoding(d)) }

// walk is the layout of rpcbs_rmtcall's fields.
func (r *RmtCallStat) walk(w walker) {
	w.uint32(&r.Prog, &r.Vers, &r.Proc)
	w.int32(&r.Success, &r.Failure, &r.Indirect)
	w.string(&r.Netid, "rpcbs_rmtcall.netid", MaxRPCBString)
}

// VersionStat is rpcb_stat: one version's counters.
type VersionStat struct {
	Info      [StatHighProc]int32
	SetInfo   int32
	UnsetInfo int32
	AddrInfo  []AddrStat
	RmtInfo   []RmtCallStat
}

// Encode appends s.
func (s *VersionStat) Encode(e *Encoder) { s.walk(encoding(e)) }

// Decode reads an rpcb_stat.
func (s *VersionStat) Decode(d *Decoder) { s.walk(decoding(d)) }

// walk is rpcb_stat's layout.
func (s *VersionStat) walk(w walker) {
	for i := range s.Info {
		w.int32(&s.Info[i])
	}
	w.int32(&s.SetInfo, &s.UnsetInfo)
	walkList(w, &s.AddrInfo, (*AddrStat).walk)
	walkList(w, &s.RmtInfo, (*RmtCallStat).walk)
}
