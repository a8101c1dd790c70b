package xdr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrTruncated reports that a message ended before a value was complete.
var ErrTruncated = errors.New("xdr: message truncated")

// ErrTrailingData reports bytes left over after a value that should have
// consumed the whole body.
var ErrTrailingData = errors.New("xdr: trailing data after arguments")

// A LengthError reports a length prefix that exceeds the bound of its field
// or the bytes that remain in the message.
type LengthError struct {
	Field     string // what was being decoded
	Length    uint32 // the length the peer claimed
	Max       int    // the specification's bound for the field
	Remaining int    // bytes left in the message when the length was read
}

func (e *LengthError) Error() string {
	if uint64(e.Length) > uint64(e.Max) {
		return fmt.Sprintf("xdr: %s length %d exceeds limit %d", e.Field, e.Length, e.Max)
	}
	return fmt.Sprintf("xdr: %s length %d exceeds the %d bytes remaining", e.Field, e.Length, e.Remaining)
}

// Unwrap lets errors.Is(err, ErrTruncated) match a length that runs past the
// end of the message.
func (e *LengthError) Unwrap() error {
	if uint64(e.Length) <= uint64(e.Max) {
		return ErrTruncated
	}
	return nil
}

// A Decoder reads XDR values from one complete message held in memory.
//
// Every variable-length item is bounded before anything is allocated for
// it (go-xdr, whose encoding the tests check this one against, allocates
// the size a peer claims before reading). The first error is sticky;
// later calls return zero values and Err reports it. A Decoder holds no
// pointer but to its message, so that one kept in a reused struct (as
// oncrpc's Call keeps one for its arguments) decodes without allocating.
type Decoder struct {
	b   []byte
	r   bytes.Reader
	err error
}

// NewDecoder returns a Decoder over b. It does not copy b: Rest returns a
// slice of b, while Opaque and String return copies.
func NewDecoder(b []byte) *Decoder {
	d := &Decoder{}
	d.Reset(b)
	return d
}

// Reset makes d read b from its beginning and clears any error.
func (d *Decoder) Reset(b []byte) {
	d.b = b
	d.r.Reset(b)
	d.err = nil
}

// Err returns the first error the Decoder met, or nil.
func (d *Decoder) Err() error { return d.err }

// Remaining returns how many bytes are still unread.
func (d *Decoder) Remaining() int { return d.r.Len() }

// Rest returns the unread bytes without consuming them. The result aliases
// the message.
func (d *Decoder) Rest() []byte { return d.b[len(d.b)-d.r.Len():] }

func (d *Decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

// Uint32 decodes an unsigned int. Fixed-size words are read straight
// from the message: go-xdr's DecodeUint allocates for each one, and a DUMP
// of a large registry holds hundreds of thousands of them.
func (d *Decoder) Uint32() uint32 {
	if d.err != nil {
		return 0
	}
	off := len(d.b) - d.r.Len()
	if d.r.Len() < 4 {
		d.fail(ErrTruncated)
		return 0
	}
	v := binary.BigEndian.Uint32(d.b[off:])
	_, _ = d.r.Seek(4, io.SeekCurrent)
	return v
}

// Int32 decodes a signed int.
func (d *Decoder) Int32() int32 { return int32(d.Uint32()) }

// Bool decodes a bool. Any value other than 0 or 1 is an error, as XDR
// requires.
func (d *Decoder) Bool() bool {
	v := d.Uint32()
	if v > 1 {
		d.fail(fmt.Errorf("xdr: bool value %d is neither TRUE nor FALSE", v))
		return false
	}
	return v == 1
}

// Opaque decodes variable-length opaque data of at most max bytes. The
// result is a copy owned by the caller.
func (d *Decoder) Opaque(field string, max int) []byte {
	view := d.OpaqueView(field, max)
	if len(view) == 0 {
		return nil
	}
	return bytes.Clone(view)
}

// OpaqueView decodes variable-length opaque data (or a string) of at most
// max bytes as a slice of the message, without copying it: it is valid
// only as long as the message is.
func (d *Decoder) OpaqueView(field string, max int) []byte {
	n := d.length(field, max)
	if d.err != nil || n == 0 {
		return nil
	}
	off := len(d.b) - d.r.Len()
	_, _ = d.r.Seek(int64((n+3)&^3), io.SeekCurrent)
	return d.b[off : off+n : off+n]
}

// String decodes a string of at most max bytes. It is read straight from
// the message into the string, one allocation rather than Opaque's copy
// and then the string's: a DUMP holds three strings per entry.
func (d *Decoder) String(field string, max int) string {
	n := d.length(field, max)
	if d.err != nil || n == 0 {
		return ""
	}
	off := len(d.b) - d.r.Len()
	s := string(d.b[off : off+n])
	_, _ = d.r.Seek(int64((n+3)&^3), io.SeekCurrent)
	return s
}

// length reads a length prefix and checks it against max and against the
// padded bytes remaining, before anything is allocated for it.
func (d *Decoder) length(field string, max int) int {
	n := d.Uint32()
	if d.err != nil {
		return 0
	}
	padded := (uint64(n) + 3) &^ 3
	if uint64(n) > uint64(max) || padded > uint64(d.r.Len()) {
		d.fail(&LengthError{Field: field, Length: n, Max: max, Remaining: d.r.Len()})
		return 0
	}
	return int(n)
}

// Finish reports the Decoder's error, or ErrTrailingData when bytes remain
// unread.
func (d *Decoder) Finish() error {
	if d.err != nil {
		return d.err
	}
	if d.r.Len() != 0 {
		return ErrTrailingData
	}
	return nil
}
