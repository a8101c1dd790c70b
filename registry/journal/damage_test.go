package journal

import (
	"bytes"
	"encoding/binary"
	"flag"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/portmapd/portmapd/registry"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// damageFixture is a state directory whose snapshot holds progs 1..3 and
// whose journal holds one record per SET of progs 11..15.
func damageFixture(t *testing.T) (dir, journalPath string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "state")
	reg := registry.New(registry.Options{})
	var es []registry.Entry
	for p := uint32(1); p <= 3; p++ {
		es = append(es, registry.Entry{Prog: p, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.0.1", Owner: "superuser"})
	}
	reg.Restore(es, nil)
	j := startAt(t, dir, 0, reg, Options{})
	for p := uint32(11); p <= 15; p++ {
		mustSet(t, reg, root, registry.Entry{Prog: p, Vers: 1, Netid: "udp", Addr: "0.0.0.0.0.2"})
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, filepath.Join(dir, "journal.1")
}

// recordOffsets returns where each record of a state file starts.
func recordOffsets(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int
	for off := headerLen; off < len(b); off += recordHeadLen + int(binary.BigEndian.Uint32(b[off:])) {
		offs = append(offs, off)
	}
	return offs
}

func editFile(t *testing.T, path string, fn func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, fn(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDamage damages a state file in each way the daemon must survive and
// checks that every good record is restored, that the file is kept aside
// under a dated name, and that one log line (golden) says so.
func TestDamage(t *testing.T) {
	all := []uint32{1, 2, 3, 11, 12, 13, 14, 15}
	for _, tc := range []struct {
		name string
		// file is "snapshot" or "journal.1".
		file   string
		damage func(t *testing.T, path string)
		want   []uint32
	}{
		{"journal-truncated-record", "journal.1", func(t *testing.T, p string) {
			// Into prog 15's record, before the stamp of the stop.
			offs := recordOffsets(t, p)
			editFile(t, p, func(b []byte) []byte { return b[:offs[len(offs)-1]-3] })
		}, []uint32{1, 2, 3, 11, 12, 13, 14}},
		{"journal-stray-bytes", "journal.1", func(t *testing.T, p string) {
			editFile(t, p, func(b []byte) []byte { return append(b, 0, 0, 0) })
		}, all},
		{"journal-bad-checksum", "journal.1", func(t *testing.T, p string) {
			off := recordOffsets(t, p)[1] // prog 12's record
			editFile(t, p, func(b []byte) []byte { b[off+recordHeadLen+2] ^= 0x40; return b })
		}, []uint32{1, 2, 3, 11, 13, 14, 15}},
		{"journal-impossible-length", "journal.1", func(t *testing.T, p string) {
			off := recordOffsets(t, p)[3] // prog 14's record
			editFile(t, p, func(b []byte) []byte { binary.BigEndian.PutUint32(b[off:], 0xfffffff0); return b })
		}, []uint32{1, 2, 3, 11, 12, 13}},
		{"journal-unknown-version", "journal.1", func(t *testing.T, p string) {
			editFile(t, p, func(b []byte) []byte {
				h := appendHeader(nil, kindJournal, 1)
				binary.BigEndian.PutUint16(h[4:], 9)
				binary.BigEndian.PutUint32(h[16:], crcOf(h[:16]))
				return append(h, b[headerLen:]...)
			})
		}, []uint32{1, 2, 3}},
		{"journal-not-ours", "journal.1", func(t *testing.T, p string) {
			editFile(t, p, func(b []byte) []byte { return []byte("some other program's file\n") })
		}, []uint32{1, 2, 3}},
		{"journal-wrong-mode", "journal.1", func(t *testing.T, p string) {
			if err := os.Chmod(p, 0o666); err != nil {
				t.Fatal(err)
			}
		}, all},
		{"journal-wrong-owner", "journal.1", func(t *testing.T, p string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give the file away")
			}
			if err := os.Chown(p, 12345, 12345); err != nil {
				t.Fatal(err)
			}
		}, all},
		{"snapshot-truncated", "snapshot", func(t *testing.T, p string) {
			editFile(t, p, func(b []byte) []byte { return b[:len(b)-5] })
		}, all},
		{"snapshot-cut-after-a-record", "snapshot", func(t *testing.T, p string) {
			offs := recordOffsets(t, p)
			editFile(t, p, func(b []byte) []byte { return b[:offs[len(offs)-1]] })
		}, all},
		{"snapshot-bad-checksum", "snapshot", func(t *testing.T, p string) {
			off := recordOffsets(t, p)[0]
			editFile(t, p, func(b []byte) []byte { b[off+recordHeadLen+1] ^= 1; return b })
		}, []uint32{11, 12, 13, 14, 15}},
		{"snapshot-bad-header", "snapshot", func(t *testing.T, p string) {
			editFile(t, p, func(b []byte) []byte { b[10] ^= 0xff; return b })
		}, []uint32{11, 12, 13, 14, 15}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := damageFixture(t)
			path := filepath.Join(dir, tc.file)
			tc.damage(t, path)
			var logBuf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logBuf, nil))
			st := load(t, dir, log)
			var got []uint32
			for _, e := range st.Entries {
				got = append(got, e.Prog)
			}
			if !equalU32(got, tc.want) {
				t.Errorf("restored progs %v, want %v", got, tc.want)
			}
			if _, err := os.Stat(path); err == nil {
				t.Errorf("%s still in place", tc.file)
			}
			aside, _ := filepath.Glob(path + ".damaged-*")
			if len(aside) != 1 || !regexp.MustCompile(`\.damaged-\d{8}T\d{6}Z$`).MatchString(aside[0]) {
				t.Errorf("kept aside as %q, want one NAME.damaged-YYYYMMDDTHHMMSSZ", aside)
			}
			lines := strings.Split(strings.TrimSpace(logBuf.String()), "\n")
			if len(lines) != 1 {
				t.Errorf("logged %d lines, want 1:\n%s", len(lines), logBuf.String())
			}
			line := regexp.MustCompile(`time=\S+ `).ReplaceAllString(lines[0], "")
			line = strings.ReplaceAll(line, dir, "STATE")
			line = regexp.MustCompile(`\d{8}T\d{6}Z`).ReplaceAllString(line, "TIME")
			line = regexp.MustCompile(`uid \d+, not \d+`).ReplaceAllString(line, "uid N, not M")
			golden(t, filepath.Join("testdata", "damage", tc.name+".log"), line+"\n")

			// The daemon goes on: a new generation starts from what
			// was restored, and loads back whole.
			reg := registry.New(registry.Options{})
			reg.Restore(st.Entries, st.Services)
			startAt(t, dir, st.Gen, reg, Options{}).Close()
			st2 := load(t, dir, log)
			if len(st2.Damaged) != 0 || len(st2.Entries) != len(tc.want) {
				t.Errorf("reload after damage: %d entries, damage %q", len(st2.Entries), st2.Damaged)
			}
		})
	}
}

func crcOf(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

func equalU32(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s:\n got %s\nwant %s", path, got, want)
	}
}
