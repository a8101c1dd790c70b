package xdr

import "encoding/binary"

// An Encoder appends XDR values to a byte slice.
//
// Replies are built in one buffer and sent with one write (on UDP every write
// is a datagram), and a large DUMP reply encodes tens of thousands of words,
// so the Encoder appends in place instead of going through an io.Writer per
// primitive. The zero value is ready to use.
type Encoder struct {
	buf []byte
}

// NewEncoder returns an Encoder that appends to buf[:0], reusing its storage.
func NewEncoder(buf []byte) *Encoder { return &Encoder{buf: buf[:0]} }

// Bytes returns the encoded message.
func (e *Encoder) Bytes() []byte { return e.buf }

// Len returns the number of bytes encoded so far.
func (e *Encoder) Len() int { return len(e.buf) }

// Reset discards what was encoded and keeps the storage.
func (e *Encoder) Reset() { e.buf = e.buf[:0] }

// Uint32 encodes an unsigned int.
func (e *Encoder) Uint32(v uint32) { e.buf = binary.BigEndian.AppendUint32(e.buf, v) }

// Int32 encodes a signed int.
func (e *Encoder) Int32(v int32) { e.Uint32(uint32(v)) }

// Bool encodes a bool as 1 or 0.
func (e *Encoder) Bool(v bool) {
	if v {
		e.Uint32(1)
	} else {
		e.Uint32(0)
	}
}

// Opaque encodes variable-length opaque data: its length, the bytes, and
// zero padding to a multiple of four.
func (e *Encoder) Opaque(b []byte) {
	e.Uint32(uint32(len(b)))
	e.buf = append(e.buf, b...)
	e.pad(len(b))
}

// String encodes a string the way Opaque encodes bytes.
func (e *Encoder) String(s string) {
	e.Uint32(uint32(len(s)))
	e.buf = append(e.buf, s...)
	e.pad(len(s))
}

// FixedOpaque encodes fixed-length opaque data with its padding and no
// length word.
func (e *Encoder) FixedOpaque(b []byte) {
	e.buf = append(e.buf, b...)
	e.pad(len(b))
}

func (e *Encoder) pad(n int) {
	for ; n%4 != 0; n++ {
		e.buf = append(e.buf, 0)
	}
}
