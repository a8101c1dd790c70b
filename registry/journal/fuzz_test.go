package journal

// Fuzz targets for the decoders of the state directory. Run one with, for
// example,
//
//	go test -run '^$' -fuzz '^FuzzLoad$' -fuzztime 60s ./registry/journal
//
// Invariants: no panic; damage is reported, never returned as an error;
// what Load restores came from a valid record of the files; what decodes
// re-encodes to the bytes it came from.

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
)

// fuzzChanges covers every op, with empty and non-empty strings, times and
// flags.
var fuzzChanges = []registry.Change{
	{Op: registry.OpSet, Entry: registry.Entry{Prog: 100003, Vers: 3, Netid: "tcp", Addr: "0.0.0.0.8.1", Owner: "superuser", PID: 812, NetNS: 4026531840, Registered: time.Unix(1700000000, 123456789)}},
	{Op: registry.OpSet, Entry: registry.Entry{Prog: 100005, Vers: 1, Netid: "UDP", Addr: "::.3.2", Owner: "unknown"}},
	{Op: registry.OpUnset, Entry: registry.Entry{Prog: 100005, Vers: 1, Netid: "udp"}},
	{Op: registry.OpRegister, Service: registry.Service{Name: "web", Network: netid.TCP, Port: 8080, Flags: registry.Exclusive | registry.Public,
		Process: registry.Process{PID: 4242, UID: 1000, GID: 1000, Start: 987654, Exe: "/usr/bin/web"}, Registered: time.Unix(1700000001, 0)}},
	{Op: registry.OpRegister, Service: registry.Service{Name: "sock", Network: netid.Unix, Path: "/run/sock", Process: registry.Process{PID: 1, Start: 2}}},
	{Op: registry.OpDeregister, Service: registry.Service{Name: "sock", Network: netid.Unix, Path: "/run/sock", Process: registry.Process{PID: 1, Start: 2}}, Reason: "process exited"},
	{Op: registry.OpRegister, Service: registry.Service{Name: "checked.example.com", Network: netid.TCP, Port: 8081, Process: registry.Process{PID: 5, Start: 6},
		Checks: registry.Checks{TTL: 30 * time.Second, TCP: true, HTTP: "/healthz", RPC: true, RPCProg: 100003, RPCVers: 3, Interval: 10 * time.Second, Timeout: time.Second, DeregisterAfter: time.Minute},
		Health: registry.Health{Status: registry.Critical, Output: "not checked yet", Since: time.Unix(1700000002, 0)}}},
	{Op: registry.OpServiceHealth, Service: registry.Service{Name: "checked.example.com", Network: netid.TCP, Port: 8081, Process: registry.Process{PID: 5, Start: 6},
		Health: registry.Health{Status: registry.Warning, Output: "HTTP 429", Since: time.Unix(1700000003, 0)}}, Reason: "HTTP 429"},
	{Op: registry.OpEntryHealth, Entry: registry.Entry{Prog: 100003, Vers: 3, Netid: "tcp", Addr: "0.0.0.0.8.1", Health: registry.Health{Status: registry.Critical}}},
}

// indexed returns changes numbered from first, as the registry numbers
// what it hands the journal.
func indexed(first uint64, changes []registry.Change) []registry.Change {
	out := make([]registry.Change, len(changes))
	for i, c := range changes {
		c.Index, c.Time = first+uint64(i), time.Unix(1700000100, int64(i))
		out[i] = c
	}
	return out
}

// payloadOf returns the payload of a record built by appendRecord.
func payloadOf(changes []registry.Change) []byte {
	return appendRecord(nil, changes)[recordHeadLen:]
}

// endRecordBytes is a snapshot's end marker record, as writeSnapshot
// writes it, saying count changes came before it, at index 0.
func endRecordBytes(count uint64) []byte {
	b, start := beginRecord(nil)
	b = append(b, opEnd)
	b = binary.BigEndian.AppendUint64(b, count)
	b = binary.BigEndian.AppendUint64(b, 0)
	return endRecord(b, start)
}

// encodeDecoded re-encodes decoded changes in the current format.
// encodeChange knows only the registry's ops, so the markers, which only
// decoding produces, are written here as the journal writes them.
func encodeDecoded(cs []change) []byte {
	var b []byte
	for _, c := range cs {
		switch {
		case c.end:
			b = append(b, opEnd)
			b = binary.BigEndian.AppendUint64(b, c.count)
			b = binary.BigEndian.AppendUint64(b, c.index)
		case c.stamped:
			b = appendStamp(b, c.at)
		case c.marker:
			b = append(b, opIndex)
			b = binary.BigEndian.AppendUint64(b, c.index)
			b = appendTime(b, c.at)
		case c.history:
			b = appendHistory(b, c.Change)
		default:
			b = encodeChange(b, c.Change)
		}
	}
	return b
}

func FuzzDecodeRecord(f *testing.F) {
	for _, c := range fuzzChanges {
		f.Add(payloadOf([]registry.Change{c}), uint16(formatVersion))
	}
	f.Add(payloadOf(fuzzChanges), uint16(formatVersion))
	f.Add(payloadOf(indexed(7, fuzzChanges)), uint16(formatVersion))
	f.Add(payloadOf(fuzzChanges), uint16(versionNoNetNS))
	hist, _ := beginRecord(nil)
	for _, c := range indexed(3, fuzzChanges) {
		hist = appendHistory(hist, c)
	}
	f.Add(hist[recordHeadLen:], uint16(formatVersion))
	f.Add(endRecordBytes(6)[recordHeadLen:], uint16(formatVersion))
	f.Add([]byte{}, uint16(formatVersion))
	f.Add([]byte{0x7f}, uint16(formatVersion))                        // unknown op
	f.Add([]byte{opSet, 0, 0, 0, 1}, uint16(formatVersion))           // cut short
	f.Add([]byte{opRegister, 0xff, 0xff, 'a'}, uint16(formatVersion)) // string longer than the record
	// The version 1 and 3 files in testdata hold real records of those
	// formats.
	for _, name := range []string{"testdata/v1/journal.1", "testdata/v1/snapshot", "testdata/v3/journal.1", "testdata/v3/snapshot"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		version := binary.BigEndian.Uint16(b[4:6])
		scanRecords(bytes.NewReader(b[headerLen:]), headerLen, int64(len(b)-headerLen), func(p []byte) error {
			f.Add(bytes.Clone(p), version)
			return nil
		})
	}
	f.Fuzz(func(t *testing.T, payload []byte, version uint16) {
		cs, err := decodeRecord(payload, version)
		if err != nil {
			if cs != nil {
				t.Fatalf("changes %+v returned with error %v", cs, err)
			}
			return
		}
		re := encodeDecoded(cs)
		// The current format carries every field, so decoding loses
		// nothing and re-encoding gives back the very bytes. Earlier ones
		// lack fields (a set's netns, health, reasons, whole removals),
		// which decode as zero and are written as more bytes.
		if version == formatVersion && !bytes.Equal(re, payload) {
			t.Fatalf("re-encoded %x, decoded from %x", re, payload)
		}
		cs2, err := decodeRecord(re, formatVersion)
		if err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", cs, err)
		}
		if !reflect.DeepEqual(cs, cs2) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", cs2, cs)
		}
	})
}

// writeStateDir writes a state directory of generation 1, as Start leaves
// one: owner-only, a snapshot and journal.1 whose valid headers are
// followed by the given record streams.
func writeStateDir(t *testing.T, journal, snapshot []byte) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		kind uint16
		recs []byte
	}{{snapshotName, kindSnapshot, snapshot}, {journalPrefix + "1", kindJournal, journal}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), append(appendHeader(nil, f.kind, 1), f.recs...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// decodedChanges returns every change of the valid records of streams,
// whatever a damaged file would have made of them.
func decodedChanges(streams ...[]byte) []registry.Change {
	var out []registry.Change
	for _, s := range streams {
		scanRecords(bytes.NewReader(s), headerLen, int64(len(s)), func(p []byte) error {
			cs, err := decodeRecord(p, formatVersion)
			for _, c := range cs {
				if !c.end {
					out = append(out, c.Change)
				}
			}
			return err
		})
	}
	return out
}

// checkLoad loads the state directory that journal and snapshot make, twice,
// and checks what fuzzing checks. It returns the first load's state.
func checkLoad(t *testing.T, journal, snapshot []byte) State {
	t.Helper()
	dir := writeStateDir(t, journal, snapshot)
	st := load(t, dir, nil)
	if st.Gen != 1 {
		t.Errorf("Gen %d, want 1", st.Gen)
	}
	if len(st.Damaged) > 2 {
		t.Errorf("%d files damaged of 2:\n%s", len(st.Damaged), strings.Join(st.Damaged, "\n"))
	}
	changes := decodedChanges(journal, snapshot)
	seenE := map[entryKey]bool{}
	for _, e := range st.Entries {
		k := keyOfEntry(e)
		if seenE[k] {
			t.Errorf("entry %+v restored twice", k)
		}
		seenE[k] = true
		if !restoredFrom(changes, registry.Change{Op: registry.OpSet, Entry: e}) {
			t.Errorf("entry %+v is set by no valid record", e)
		}
	}
	seenS := map[registry.ServiceKey]bool{}
	for _, s := range st.Services {
		k := s.Key()
		if seenS[k] {
			t.Errorf("service %+v restored twice", k)
		}
		seenS[k] = true
		if !restoredFrom(changes, registry.Change{Op: registry.OpRegister, Service: s}) {
			t.Errorf("service %+v is registered by no valid record", s)
		}
	}
	// The first Load moved every damaged file aside, so what is left reads
	// whole, and, when nothing was damaged, reads the same.
	st2 := load(t, dir, nil)
	if len(st2.Damaged) != 0 {
		t.Errorf("second Load found damage:\n%s", strings.Join(st2.Damaged, "\n"))
	}
	if len(st.Damaged) == 0 && (!reflect.DeepEqual(st.Entries, st2.Entries) || !reflect.DeepEqual(st.Services, st2.Services)) {
		t.Errorf("second Load restored\n%+v\n%+v\nfirst\n%+v\n%+v", st2.Entries, st2.Services, st.Entries, st.Services)
	}
	return st
}

// restoredFrom reports whether what c adds came from cs: added by a
// change of its op with every field as it is, but for the health, which
// is the one it was added with or one a change of health gave it.
func restoredFrom(cs []registry.Change, c registry.Change) bool {
	bare := c
	bare.Entry.Health, bare.Service.Health = registry.Health{}, registry.Health{}
	added, healthy := false, false
	for _, x := range cs {
		switch x.Op {
		case registry.OpSet, registry.OpRegister:
			y := x
			y.Entry.Health, y.Service.Health = registry.Health{}, registry.Health{}
			y.Index, y.Time, y.Reason = 0, time.Time{}, ""
			if reflect.DeepEqual(y, bare) {
				added = true
				healthy = healthy || reflect.DeepEqual(x.Entry.Health, c.Entry.Health) && reflect.DeepEqual(x.Service.Health, c.Service.Health)
			}
		case registry.OpEntryHealth:
			healthy = healthy || c.Op == registry.OpSet && keyOfEntry(x.Entry) == keyOfEntry(c.Entry) && reflect.DeepEqual(x.Entry.Health, c.Entry.Health)
		case registry.OpServiceHealth:
			healthy = healthy || c.Op == registry.OpRegister && x.Service.Key() == c.Service.Key() && reflect.DeepEqual(x.Service.Health, c.Service.Health)
		}
	}
	return added && healthy
}

// fuzzSnapshot is a whole snapshot's record stream: every change that
// adds something, then the end marker.
func fuzzSnapshot() []byte {
	var adds []registry.Change
	for _, c := range fuzzChanges {
		if c.Op == registry.OpSet || c.Op == registry.OpRegister {
			adds = append(adds, c)
		}
	}
	return append(appendRecord(nil, adds), endRecordBytes(uint64(len(adds)))...)
}

// fuzzJournal is a journal's record stream: one record per change.
func fuzzJournal() []byte {
	var b []byte
	for _, c := range fuzzChanges {
		b = appendRecord(b, []registry.Change{c})
	}
	return b
}

func FuzzLoad(f *testing.F) {
	snap, jour := fuzzSnapshot(), fuzzJournal()
	f.Add(jour, snap)
	f.Add([]byte{}, endRecordBytes(0))
	f.Add([]byte{}, []byte{})
	f.Add(jour[:len(jour)-3], snap)                              // journal cut in a record
	f.Add(jour, snap[:len(snap)-len(endRecordBytes(0))])         // snapshot without its end marker
	f.Add(jour, append(bytes.Clone(snap), 0, 0))                 // stray bytes
	f.Add(append([]byte{0xff, 0xff, 0xff, 0xff}, jour...), snap) // impossible length
	bad := bytes.Clone(jour)
	bad[recordHeadLen+1] ^= 1 // bad checksum on the first record
	f.Add(bad, endRecordBytes(5))
	f.Fuzz(func(t *testing.T, journal, snapshot []byte) {
		checkLoad(t, journal, snapshot)
		// Mutations almost never carry a right checksum, so the same
		// streams are loaded again with theirs repaired, to reach decoding
		// and replay and not only the framing.
		fj, fs := fixChecksums(journal), fixChecksums(snapshot)
		if !bytes.Equal(fj, journal) || !bytes.Equal(fs, snapshot) {
			checkLoad(t, fj, fs)
		}
	})
}

// fixChecksums returns a copy of a record stream with the checksum of each
// record that its length frames made right.
func fixChecksums(b []byte) []byte {
	b = bytes.Clone(b)
	for off := 0; len(b)-off >= recordHeadLen; {
		n := int(binary.BigEndian.Uint32(b[off:]))
		if n > len(b)-off-recordHeadLen {
			break
		}
		endRecord(b[:off+recordHeadLen+n], off)
		off += recordHeadLen + n
	}
	return b
}

// allocBytes returns the bytes fn allocates, on average over runs.
func allocBytes(runs int, fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		fn()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// TestLengthsDoNotAllocate checks that a length read from a file, which
// can claim up to 64 KiB for a string and 16 MiB for a record, allocates
// nothing beyond the bytes present when they are fewer.
func TestLengthsDoNotAllocate(t *testing.T) {
	// A string claiming 0xffff bytes of which one is present.
	cut := []byte{opRegister, 0xff, 0xff, 'a'}
	if n := allocBytes(100, func() { decodeRecord(cut, formatVersion) }); n > 4096 {
		t.Errorf("decoding a record cut in a 64 KiB string allocated %d bytes", n)
	}
	// A record claiming the largest length allowed, with 4 bytes present.
	head := binary.BigEndian.AppendUint32(nil, maxRecordBytes)
	head = binary.BigEndian.AppendUint32(head, 0)
	dir := writeStateDir(t, append(head, 1, 2, 3, 4), endRecordBytes(0))
	var st State
	if n := allocBytes(1, func() { st = load(t, dir, nil) }); n > 1<<20 {
		t.Errorf("loading a journal whose record claims %d bytes allocated %d bytes", maxRecordBytes, n)
	}
	if len(st.Damaged) != 1 {
		t.Errorf("damage reported: %q, want the journal", st.Damaged)
	}
}

// TestLoadCases runs the checks of FuzzLoad on record streams that reach
// the corners of replay, and checks what each restores.
func TestLoadCases(t *testing.T) {
	snap, jour := fuzzSnapshot(), fuzzJournal()
	malformed := func(p []byte) []byte { // a record whose checksum is right
		b, start := beginRecord(nil)
		return endRecord(append(b, p...), start)
	}
	for _, tc := range []struct {
		name              string
		journal, snapshot []byte
		damaged           int
		progs             []uint32
		services          []string
	}{
		{"whole", jour, snap, 0, []uint32{100003}, []string{"web", "checked.example.com"}},
		{"empty snapshot", nil, endRecordBytes(0), 0, nil, nil},
		{"snapshot without end marker", nil, appendRecord(nil, fuzzChanges[:1]), 1, []uint32{100003}, nil},
		{"snapshot end marker miscounts", nil, append(appendRecord(nil, fuzzChanges[:1]), endRecordBytes(2)...), 1, []uint32{100003}, nil},
		{"end marker in a journal is ignored", append(endRecordBytes(7), jour...), snap, 0, []uint32{100003}, []string{"web", "checked.example.com"}},
		{"unset matches netid in any case", appendRecord(nil, fuzzChanges[2:3]), snap, 0, []uint32{100003}, []string{"web", "sock", "checked.example.com"}},
		{"string cut short after a good record", append(appendRecord(nil, fuzzChanges[:1]), malformed([]byte{opRegister, 0xff, 0xff, 'a'})...), endRecordBytes(0), 1, []uint32{100003}, nil},
		{"unknown op after a good record", append(appendRecord(nil, fuzzChanges[:1]), malformed([]byte{0x7f})...), endRecordBytes(0), 1, []uint32{100003}, nil},
		{"record claiming the largest length", binary.BigEndian.AppendUint64(nil, maxRecordBytes<<32), endRecordBytes(0), 1, nil, nil},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			st := checkLoad(t, tc.journal, tc.snapshot)
			if len(st.Damaged) != tc.damaged {
				t.Errorf("%d files damaged, want %d: %q", len(st.Damaged), tc.damaged, st.Damaged)
			}
			var progs []uint32
			for _, e := range st.Entries {
				progs = append(progs, e.Prog)
			}
			var names []string
			for _, s := range st.Services {
				names = append(names, s.Name)
			}
			if !reflect.DeepEqual(progs, tc.progs) || !reflect.DeepEqual(names, tc.services) {
				t.Errorf("restored progs %v services %v, want %v %v", progs, names, tc.progs, tc.services)
			}
		})
	}
}
