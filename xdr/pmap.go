package xdr

// Program numbers and versions of the portmapper (RFC 1833).
const (
	PmapProg  = 100000
	PmapVers  = 2
	RpcbVers  = 3
	RpcbVers4 = 4
	PmapPort  = 111
)

// Portmap version 2 procedures.
const (
	PmapProcNull    = 0
	PmapProcSet     = 1
	PmapProcUnset   = 2
	PmapProcGetport = 3
	PmapProcDump    = 4
	PmapProcCallit  = 5
)

// A Mapping is portmap v2's registration: program, version, IP protocol
// number (netid.ProtoTCP or netid.ProtoUDP, whose meaning the netid package
// owns) and port.
type Mapping struct {
	Prog, Vers, Prot, Port uint32
}

// Decode reads a mapping.
func (m *Mapping) Decode(d *Decoder) {
	m.Prog = d.Uint32()
	m.Vers = d.Uint32()
	m.Prot = d.Uint32()
	m.Port = d.Uint32()
}

// Encode appends m.
func (m *Mapping) Encode(e *Encoder) {
	e.Uint32(m.Prog)
	e.Uint32(m.Vers)
	e.Uint32(m.Prot)
	e.Uint32(m.Port)
}

// EncodeList appends a pmaplist, the XDR optional-data list of mappings:
// TRUE before each element and FALSE after the last.
func EncodeList[T any](e *Encoder, items []T, encode func(*T, *Encoder)) {
	for i := range items {
		e.Bool(true)
		encode(&items[i], e)
	}
	e.Bool(false)
}

// DecodeList reads an XDR optional-data list. It never preallocates: the
// list grows with elements actually decoded, so its size is bounded by the
// message. On error it returns nil and d.Err reports why.
func DecodeList[T any](d *Decoder, decode func(*T, *Decoder)) []T {
	var items []T
	var zero T
	for d.Bool() {
		// Decoding in place: a local passed to decode, which the
		// compiler cannot see into, would be moved to the heap, one
		// allocation per item.
		items = append(items, zero)
		decode(&items[len(items)-1], d)
		if d.Err() != nil {
			return nil
		}
	}
	if d.Err() != nil {
		return nil
	}
	return items
}

// CallArgs are the arguments of CALLIT: the procedure to call and its
// already encoded arguments. Versions 3 and 4 send the same layout
// (rpcb_rmtcallargs) to CALLIT, BCAST and INDIRECT.
type CallArgs struct {
	Prog, Vers, Proc uint32
	Args             []byte
}

// Decode reads call_args.
func (c *CallArgs) Decode(d *Decoder) { c.walk(decoding(d)) }

// Encode appends c.
func (c *CallArgs) Encode(e *Encoder) { c.walk(encoding(e)) }

// walk is call_args's layout. The arguments can be no larger than the
// message that carries them.
func (c *CallArgs) walk(w walker) {
	w.uint32(&c.Prog, &c.Vers, &c.Proc)
	w.opaque(&c.Args, "call_args.args", w.remaining())
}

// CallResult is CALLIT's result: the port of the program called and its
// encoded results.
type CallResult struct {
	Port uint32
	Res  []byte
}

// Decode reads call_result.
func (c *CallResult) Decode(d *Decoder) { c.walk(decoding(d)) }

// Encode appends c.
func (c *CallResult) Encode(e *Encoder) { c.walk(encoding(e)) }

// walk is call_result's layout.
func (c *CallResult) walk(w walker) {
	w.uint32(&c.Port)
	w.opaque(&c.Res, "call_result.res", w.remaining())
}
