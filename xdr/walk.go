package xdr

// A walker reads or writes a value's fields in wire order, so that the
// layout of a type is written once, in its walk method, and serves both
// its Encode and its Decode, as one xdr_* routine serves XDR_ENCODE and
// XDR_DECODE in C. Exactly one of enc and dec is set.
//
// A walker costs a call per field. What is encoded or decoded for every
// call, or for every entry of a large list (the call and reply headers,
// Mapping, RPCB), keeps Encode and Decode written out: through a walker,
// a DUMP's encoding takes half as long again.
type walker struct {
	enc *Encoder
	dec *Decoder
}

func encoding(e *Encoder) walker { return walker{enc: e} }
func decoding(d *Decoder) walker { return walker{dec: d} }

// uint32 walks unsigned ints, in order.
func (w walker) uint32(vs ...*uint32) {
	for _, v := range vs {
		if w.dec != nil {
			*v = w.dec.Uint32()
		} else {
			w.enc.Uint32(*v)
		}
	}
}

// int32 walks signed ints, in order.
func (w walker) int32(vs ...*int32) {
	for _, v := range vs {
		u := uint32(*v)
		w.uint32(&u)
		*v = int32(u)
	}
}

// string walks a string of at most max bytes; field names it in a
// decoding error.
func (w walker) string(v *string, field string, max int) {
	if w.dec != nil {
		*v = w.dec.String(field, max)
	} else {
		w.enc.String(*v)
	}
}

// opaque walks variable-length opaque data of at most max bytes; field
// names it in a decoding error.
func (w walker) opaque(v *[]byte, field string, max int) {
	if w.dec != nil {
		*v = w.dec.Opaque(field, max)
	} else {
		w.enc.Opaque(*v)
	}
}

// remaining is what a decoded item that may take the rest of the message
// is bounded by, such as a remote call's encoded arguments, which can be
// no larger than the message that carries them.
func (w walker) remaining() int {
	if w.dec != nil {
		return w.dec.Remaining()
	}
	return 0
}

// walkList walks an XDR optional-data list whose elements walk walks, as
// EncodeList and DecodeList do.
func walkList[T any](w walker, items *[]T, walk func(*T, walker)) {
	if w.dec != nil {
		*items = DecodeList(w.dec, func(v *T, d *Decoder) { walk(v, decoding(d)) })
	} else {
		EncodeList(w.enc, *items, func(v *T, e *Encoder) { walk(v, encoding(e)) })
	}
}
