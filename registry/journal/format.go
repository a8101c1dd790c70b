// Package journal keeps portmapd's registrations on disk so that they
// survive the daemon: an append-only journal of changes, each request's
// changes in one length-prefixed, checksummed record made durable before
// the request is answered, and a snapshot that compaction writes so that
// the journal stays short.
//
// # Files
//
// The state directory (mode 0700) holds:
//
//	snapshot      the whole state as of the start of journal generation G
//	journal.G     changes since that snapshot, G in decimal
//
// Every file starts with a 20-byte header:
//
//	magic "PMPD" | version u16 (4; 1 to 3 are still read) | kind u16 (1 journal, 2 snapshot) | generation u64 | CRC-32C of the preceding 16 bytes
//
// and continues with records:
//
//	length u32 | CRC-32C u32 of the length and payload | payload
//
// all integers big-endian. A payload is a sequence of changes, each an op
// byte and its fields (see encodeChange). A snapshot ends with a record
// holding one end marker with the number of changes before it, so that a
// cut snapshot is told from a whole one.
//
// Since version 3, a time stamp (the wall clock when it was written) opens
// the first record of each batch the journal writes, the record written
// on a clean stop and a snapshot's end record: the state's last write time
// travels with the state, whatever a copy does to the files' times (see
// State.LastWrite).
//
// Since version 4, the registry's history travels too (State.Index,
// State.Feed): each journal record of changes begins with the index and
// time of its first change (the others follow it one by one), removals
// and changes of health carry the whole registration and the reason, a
// snapshot holds the latest changes after its state, each marked as
// history only, and its end record holds the index at its state.
//
// Compaction starts journal G+1 at the instant it copies the state, then
// writes snapshot G+1 beside it (written to a temporary file, synced and
// renamed), then deletes the journals before G+1. Loading reads the
// snapshot, of generation S, and replays every journal of generation S or
// later in order, so a crash at any step loses nothing.
package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
)

const (
	magic         = "PMPD"
	formatVersion = 4
	// versionNoNetNS is the first format, whose set changes lack the
	// registrant's network namespace. It is read, never written.
	versionNoNetNS = 1
	// versionStamps is the first format with time stamps.
	versionStamps = 3
	// versionHistory is the first format with indices, history, whole
	// removals, checks and health.
	versionHistory = 4
	kindJournal    = 1
	kindSnapshot   = 2
	headerLen      = 20
	recordHeadLen  = 8
	maxRecordBytes = 16 << 20
)

// op bytes in a record. They match registry.ChangeOp where they overlap.
const (
	opSet           = byte(registry.OpSet)
	opUnset         = byte(registry.OpUnset)
	opRegister      = byte(registry.OpRegister)
	opDeregister    = byte(registry.OpDeregister)
	opServiceHealth = byte(registry.OpServiceHealth)
	opEntryHealth   = byte(registry.OpEntryHealth)
	// opHistory marks the one change after it as history only (a
	// snapshot's latest changes), not state: index u64, time i64.
	opHistory = 0xfc
	// opIndex gives the index and time of the changes after it in its
	// record: index u64, time i64.
	opIndex = 0xfd
	opStamp = 0xfe
	opEnd   = 0xff
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func appendHeader(b []byte, kind uint16, gen uint64) []byte {
	start := len(b)
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint16(b, formatVersion)
	b = binary.BigEndian.AppendUint16(b, kind)
	b = binary.BigEndian.AppendUint64(b, gen)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// errVersion reports a file of a format this program does not know.
var errVersion = errors.New("unknown format version")

// A header is what a file's header says.
type header struct {
	version, kind uint16
	gen           uint64
}

// parseHeader checks a file's header.
func parseHeader(b []byte) (header, error) {
	if len(b) < headerLen {
		return header{}, errors.New("truncated header")
	}
	if string(b[:4]) != magic {
		return header{}, errors.New("not a portmapd state file (bad magic)")
	}
	if crc32.Checksum(b[:16], castagnoli) != binary.BigEndian.Uint32(b[16:20]) {
		return header{}, errors.New("bad header checksum")
	}
	v := binary.BigEndian.Uint16(b[4:6])
	if v < versionNoNetNS || v > formatVersion {
		return header{}, fmt.Errorf("%w %d (this portmapd reads %d to %d)", errVersion, v, versionNoNetNS, formatVersion)
	}
	return header{version: v, kind: binary.BigEndian.Uint16(b[6:8]), gen: binary.BigEndian.Uint64(b[8:16])}, nil
}

// beginRecord appends a record header to be completed by endRecord and
// returns where the record starts.
func beginRecord(b []byte) ([]byte, int) {
	return append(b, 0, 0, 0, 0, 0, 0, 0, 0), len(b)
}

func endRecord(b []byte, start int) []byte {
	n := len(b) - start - recordHeadLen
	binary.BigEndian.PutUint32(b[start:], uint32(n))
	sum := crc32.Update(crc32.Checksum(b[start:start+4], castagnoli), castagnoli, b[start+recordHeadLen:])
	binary.BigEndian.PutUint32(b[start+4:], sum)
	return b
}

// appendRecord appends one record holding changes.
func appendRecord(b []byte, changes []registry.Change) []byte {
	b, start := beginRecord(b)
	b = appendChanges(b, changes)
	return endRecord(b, start)
}

// appendChanges appends changes, made one after the other, led by the
// index and time of the first when they have one.
func appendChanges(b []byte, changes []registry.Change) []byte {
	if len(changes) > 0 && changes[0].Index != 0 {
		b = append(b, opIndex)
		b = binary.BigEndian.AppendUint64(b, changes[0].Index)
		b = appendTime(b, changes[0].Time)
	}
	for _, c := range changes {
		b = encodeChange(b, c)
	}
	return b
}

// appendHistory appends a change as history only, with its index and
// time.
func appendHistory(b []byte, c registry.Change) []byte {
	b = append(b, opHistory)
	b = binary.BigEndian.AppendUint64(b, c.Index)
	b = appendTime(b, c.Time)
	return encodeChange(b, c)
}

// appendStamp appends a time stamp change: op, Unix nanoseconds u64.
func appendStamp(b []byte, t time.Time) []byte {
	return appendTime(append(b, opStamp), t)
}

// appendStampedRecord appends one record holding a time stamp of now and
// then changes.
func appendStampedRecord(b []byte, now time.Time, changes []registry.Change) []byte {
	b, start := beginRecord(b)
	b = appendStamp(b, now)
	b = appendChanges(b, changes)
	return endRecord(b, start)
}

func appendString(b []byte, s string) []byte {
	if len(s) > 0xffff {
		s = s[:0xffff]
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	var n int64
	if !t.IsZero() {
		n = t.UnixNano()
	}
	return binary.BigEndian.AppendUint64(b, uint64(n))
}

// encodeChange appends one change, as version 4 has it:
//
//	set, unset, entry health:                 entry
//	register, deregister, service health:     service
//
//	entry:   prog u32, vers u32, netid, addr, owner, pid i32, registered i64, netns u64, health, reason
//	service: name, network, port u16, path, flags u8, pid i32, uid u32, gid u32, start u64, exe, registered i64, checks, health, reason
//	checks:  ttl i64, kinds u8 (1 tcp, 2 rpc), http, rpc prog u32, rpc vers u32, interval i64, timeout i64, deregister after i64
//	health:  status u8, since i64, output
//
// strings are u16 length and bytes; times are Unix nanoseconds, 0 for
// none; durations nanoseconds. Before version 4 there were no checks,
// health or reasons, an unset had only prog, vers and netid, and a
// deregister only name, network, port, path, pid and start; version 1
// files also lack a set's netns.
func encodeChange(b []byte, c registry.Change) []byte {
	b = append(b, byte(c.Op))
	switch c.Op {
	case registry.OpSet, registry.OpUnset, registry.OpEntryHealth:
		e := c.Entry
		b = binary.BigEndian.AppendUint32(b, e.Prog)
		b = binary.BigEndian.AppendUint32(b, e.Vers)
		b = appendString(b, string(e.Netid))
		b = appendString(b, e.Addr)
		b = appendString(b, e.Owner)
		b = binary.BigEndian.AppendUint32(b, uint32(e.PID))
		b = appendTime(b, e.Registered)
		b = binary.BigEndian.AppendUint64(b, e.NetNS)
		b = appendHealth(b, e.Health)
	case registry.OpRegister, registry.OpDeregister, registry.OpServiceHealth:
		s := c.Service
		b = appendString(b, s.Name)
		b = appendString(b, string(s.Network))
		b = binary.BigEndian.AppendUint16(b, s.Port)
		b = appendString(b, s.Path)
		b = append(b, byte(s.Flags))
		b = binary.BigEndian.AppendUint32(b, uint32(s.PID))
		b = binary.BigEndian.AppendUint32(b, s.UID)
		b = binary.BigEndian.AppendUint32(b, s.GID)
		b = binary.BigEndian.AppendUint64(b, s.Start)
		b = appendString(b, s.Exe)
		b = appendTime(b, s.Registered)
		b = appendChecks(b, s.Checks)
		b = appendHealth(b, s.Health)
	}
	return appendString(b, c.Reason)
}

// Kinds of active check, as a checks field's kinds byte has them.
const (
	checkTCP = 1 << iota
	checkRPC
)

func appendChecks(b []byte, c registry.Checks) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(c.TTL))
	var kinds byte
	if c.TCP {
		kinds |= checkTCP
	}
	if c.RPC {
		kinds |= checkRPC
	}
	b = append(b, kinds)
	b = appendString(b, c.HTTP)
	b = binary.BigEndian.AppendUint32(b, c.RPCProg)
	b = binary.BigEndian.AppendUint32(b, c.RPCVers)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Interval))
	b = binary.BigEndian.AppendUint64(b, uint64(c.Timeout))
	return binary.BigEndian.AppendUint64(b, uint64(c.DeregisterAfter))
}

func appendHealth(b []byte, h registry.Health) []byte {
	b = append(b, byte(h.Status))
	b = appendTime(b, h.Since)
	return appendString(b, h.Output)
}

// decoder reads the fields of one record's payload.
type decoder struct {
	b   []byte
	bad bool
}

// zeros stands in for a field cut short. It is never longer than a fixed
// field: a string's length comes from the file, and a record cut in a
// string must not allocate the 64 KiB it claims.
var zeros [8]byte

func (d *decoder) take(n int) []byte {
	if d.bad || len(d.b) < n {
		d.bad = true
		return zeros[:min(n, len(zeros))]
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() byte    { return d.take(1)[0] }
func (d *decoder) u16() uint16 { return binary.BigEndian.Uint16(d.take(2)) }
func (d *decoder) u32() uint32 { return binary.BigEndian.Uint32(d.take(4)) }
func (d *decoder) u64() uint64 { return binary.BigEndian.Uint64(d.take(8)) }
func (d *decoder) str() string { return string(d.take(int(d.u16()))) }
func (d *decoder) when() time.Time {
	n := int64(d.u64())
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// duration reads a duration, refusing a negative one.
func (d *decoder) duration() time.Duration {
	v := time.Duration(d.u64())
	if v < 0 {
		d.bad = true
		return 0
	}
	return v
}

func (d *decoder) checks() registry.Checks {
	var c registry.Checks
	c.TTL = d.duration()
	kinds := d.u8()
	if kinds&^(checkTCP|checkRPC) != 0 {
		d.bad = true
	}
	c.TCP = kinds&checkTCP != 0
	c.RPC = kinds&checkRPC != 0
	c.HTTP = d.str()
	c.RPCProg = d.u32()
	c.RPCVers = d.u32()
	c.Interval = d.duration()
	c.Timeout = d.duration()
	c.DeregisterAfter = d.duration()
	return c
}

func (d *decoder) health() registry.Health {
	var h registry.Health
	h.Status = registry.Status(d.u8())
	if h.Status > registry.Critical {
		d.bad = true
	}
	h.Since = d.when()
	h.Output = d.str()
	return h
}

// change is a decoded change, the end marker of a snapshot or a time
// stamp.
type change struct {
	registry.Change
	// history is set for a change that is history only (a snapshot's
	// latest changes), not state.
	history bool
	end     bool
	count   uint64
	// index is the end marker's index at the snapshot's state, or an
	// index marker's (marker set) for the changes after it.
	index   uint64
	marker  bool
	stamped bool
	at      time.Time
}

// decodeRecord decodes a record's payload, of a file of format version,
// into its changes.
func decodeRecord(p []byte, version uint16) ([]change, error) {
	d := &decoder{b: p}
	var out []change
	// next and at number the changes after an index marker.
	var next uint64
	var at time.Time
	for len(d.b) > 0 && !d.bad {
		op := d.u8()
		var c change
		switch op {
		case opEnd:
			c.end = true
			c.count = d.u64()
			if version >= versionHistory {
				c.index = d.u64()
			}
		case opStamp:
			if version < versionStamps {
				return nil, fmt.Errorf("unknown change type %#x", op)
			}
			c.stamped = true
			c.at = d.when()
		case opIndex:
			if version < versionHistory {
				return nil, fmt.Errorf("unknown change type %#x", op)
			}
			next, at = d.u64(), d.when()
			if next == 0 {
				return nil, errors.New("index 0")
			}
			c.marker, c.index, c.at = true, next, at
		case opHistory:
			if version < versionHistory {
				return nil, fmt.Errorf("unknown change type %#x", op)
			}
			c.history = true
			c.Index, c.Time = d.u64(), d.when()
			if c.Index == 0 {
				return nil, errors.New("index 0")
			}
			if d.bad {
				break
			}
			var err error
			if c.Change, err = decodeChange(d, d.u8(), version, c.Index, c.Time); err != nil {
				return nil, err
			}
		default:
			var err error
			if c.Change, err = decodeChange(d, op, version, next, at); err != nil {
				return nil, err
			}
			if next != 0 {
				next++
			}
		}
		if d.bad {
			break
		}
		out = append(out, c)
	}
	if d.bad {
		return nil, errors.New("malformed record")
	}
	return out, nil
}

// decodeChange decodes the fields of one change of type op, of a file of
// format version, giving it index and time at.
func decodeChange(d *decoder, op byte, version uint16, index uint64, at time.Time) (registry.Change, error) {
	c := registry.Change{Op: registry.ChangeOp(op), Index: index, Time: at}
	whole := version >= versionHistory
	switch op {
	case opSet, opUnset, opEntryHealth:
		if op == opEntryHealth && !whole {
			break
		}
		e := &c.Entry
		e.Prog = d.u32()
		e.Vers = d.u32()
		e.Netid = netid.ID(d.str())
		if op == opSet || whole {
			e.Addr = d.str()
			e.Owner = d.str()
			e.PID = int32(d.u32())
			e.Registered = d.when()
			if version > versionNoNetNS {
				e.NetNS = d.u64()
			}
		}
		if whole {
			e.Health = d.health()
			c.Reason = d.str()
		}
		return c, nil
	case opRegister, opDeregister, opServiceHealth:
		if op == opServiceHealth && !whole {
			break
		}
		s := &c.Service
		s.Name = d.str()
		s.Network = netid.ID(d.str())
		s.Port = d.u16()
		s.Path = d.str()
		full := op != opDeregister || whole
		if full {
			s.Flags = registry.NamedFlags(d.u8())
		}
		s.PID = int32(d.u32())
		if full {
			s.UID = d.u32()
			s.GID = d.u32()
		}
		s.Start = d.u64()
		if full {
			s.Exe = d.str()
			s.Registered = d.when()
		}
		if whole {
			s.Checks = d.checks()
			s.Health = d.health()
			c.Reason = d.str()
		}
		return c, nil
	}
	return c, fmt.Errorf("unknown change type %#x", op)
}

// A recordErr is damage found at an offset of a file.
type recordErr struct {
	off    int64
	reason string
	// fatal is set when the records after it cannot be found.
	fatal bool
}

// errStop, returned by scanRecords' fn, ends the scan without damage.
var errStop = errors.New("stop")

// scanRecords reads the records of r, the part of a file after its header
// at offset base, which holds size more bytes, and calls fn with the
// payload of each whole, valid one (valid until fn returns). It returns
// the damage it found. A record with a bad checksum whose length still
// leads to a valid record is skipped and scanning goes on; anything else
// ends the scan. A length is believed only as far as the bytes are there:
// a record claiming more than maxRecordBytes, or more than is left, is
// damage, and nothing is allocated for it.
func scanRecords(r io.Reader, base, size int64, fn func(payload []byte) error) []recordErr {
	var errs []recordErr
	var head [recordHeadLen]byte
	var payload []byte
	off := int64(0)
	for {
		n, err := io.ReadFull(r, head[:])
		if err == io.EOF {
			return errs
		}
		if err != nil {
			errs = append(errs, recordErr{base + off, fmt.Sprintf("truncated record (%d stray bytes at the end)", n), true})
			return errs
		}
		length := int64(binary.BigEndian.Uint32(head[:]))
		if length > maxRecordBytes {
			errs = append(errs, recordErr{base + off, fmt.Sprintf("impossible record length %d", length), true})
			return errs
		}
		if left := size - off - recordHeadLen; length > left {
			errs = append(errs, recordErr{base + off, fmt.Sprintf("truncated record (%d of %d bytes)", max(left, 0), length), true})
			return errs
		}
		if int64(cap(payload)) < length {
			payload = make([]byte, length)
		}
		payload = payload[:length]
		if got, err := io.ReadFull(r, payload); err != nil {
			errs = append(errs, recordErr{base + off, fmt.Sprintf("truncated record (%d of %d bytes)", got, length), true})
			return errs
		}
		sum := crc32.Update(crc32.Checksum(head[:4], castagnoli), castagnoli, payload)
		if sum != binary.BigEndian.Uint32(head[4:]) {
			errs = append(errs, recordErr{base + off, "bad checksum", false})
			off += recordHeadLen + length
			continue
		}
		if err := fn(payload); err == errStop {
			return errs
		} else if err != nil {
			errs = append(errs, recordErr{base + off, err.Error(), false})
		}
		off += recordHeadLen + length
	}
}
