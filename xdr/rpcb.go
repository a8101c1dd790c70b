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

// Decode reads an rpcb.
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
func (r *RPCBEntry) Decode(d *Decoder) {
	r.MAddr = d.String("r_maddr", MaxRPCBString)
	r.Netid = d.String("r_nc_netid", MaxRPCBString)
	r.Semantics = d.Uint32()
	r.ProtoFmly = d.String("r_nc_protofmly", MaxRPCBString)
	r.Proto = d.String("r_nc_proto", MaxRPCBString)
}

// Encode appends r.
func (r *RPCBEntry) Encode(e *Encoder) {
	e.String(r.MAddr)
	e.String(r.Netid)
	e.Uint32(r.Semantics)
	e.String(r.ProtoFmly)
	e.String(r.Proto)
}

// A Netbuf carries a transport address in its native form (on Linux, a
// struct sockaddr). Len(Buf) never exceeds MaxLen.
type Netbuf struct {
	MaxLen uint32
	Buf    []byte
}

// Decode reads a netbuf; like libtirpc's xdr_netbuf, a buffer longer than
// its own maxlen is malformed.
func (n *Netbuf) Decode(d *Decoder) {
	n.MaxLen = d.Uint32()
	n.Buf = d.Opaque("netbuf.buf", int(min(n.MaxLen, MaxRPCBString)))
}

// Encode appends n.
func (n *Netbuf) Encode(e *Encoder) {
	e.Uint32(n.MaxLen)
	e.Opaque(n.Buf)
}

// RmtCallRes is the result of rpcbind's CALLIT, BCAST and INDIRECT: the
// merged address of the service and its encoded results.
type RmtCallRes struct {
	Addr    string
	Results []byte
}

// Decode reads rpcb_rmtcallres.
func (r *RmtCallRes) Decode(d *Decoder) {
	r.Addr = d.String("rmtcallres.addr", MaxRPCBString)
	r.Results = d.Opaque("rmtcallres.results", d.Remaining())
}

// Encode appends r.
func (r *RmtCallRes) Encode(e *Encoder) {
	e.String(r.Addr)
	e.Opaque(r.Results)
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
func (a *AddrStat) Encode(e *Encoder) {
	e.Uint32(a.Prog)
	e.Uint32(a.Vers)
	e.Int32(a.Success)
	e.Int32(a.Failure)
	e.String(a.Netid)
}

// Decode reads the rpcbs_addr fields.
func (a *AddrStat) Decode(d *Decoder) {
	a.Prog = d.Uint32()
	a.Vers = d.Uint32()
	a.Success = d.Int32()
	a.Failure = d.Int32()
	a.Netid = d.String("rpcbs_addr.netid", MaxRPCBString)
}

// RmtCallStat counts remote calls for one program, version, procedure and
// netid.
type RmtCallStat struct {
	Prog, Vers, Proc           uint32
	Success, Failure, Indirect int32
	Netid                      string
}

// Encode appends the rpcbs_rmtcall fields of r.
func (r *RmtCallStat) Encode(e *Encoder) {
	e.Uint32(r.Prog)
	e.Uint32(r.Vers)
	e.Uint32(r.Proc)
	e.Int32(r.Success)
	e.Int32(r.Failure)
	e.Int32(r.Indirect)
	e.String(r.Netid)
}

// Decode reads the rpcbs_rmtcall fields.
func (r *RmtCallStat) Decode(d *Decoder) {
	r.Prog = d.Uint32()
	r.Vers = d.Uint32()
	r.Proc = d.Uint32()
	r.Success = d.Int32()
	r.Failure = d.Int32()
	r.Indirect = d.Int32()
	r.Netid = d.String("rpcbs_rmtcall.netid", MaxRPCBString)
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
func (s *VersionStat) Encode(e *Encoder) {
	for _, n := range s.Info {
		e.Int32(n)
	}
	e.Int32(s.SetInfo)
	e.Int32(s.UnsetInfo)
	EncodeList(e, s.AddrInfo, (*AddrStat).Encode)
	EncodeList(e, s.RmtInfo, (*RmtCallStat).Encode)
}

// Decode reads an rpcb_stat.
func (s *VersionStat) Decode(d *Decoder) {
	for i := range s.Info {
		s.Info[i] = d.Int32()
	}
	s.SetInfo = d.Int32()
	s.UnsetInfo = d.Int32()
	s.AddrInfo = DecodeList(d, (*AddrStat).Decode)
	s.RmtInfo = DecodeList(d, (*RmtCallStat).Decode)
}
