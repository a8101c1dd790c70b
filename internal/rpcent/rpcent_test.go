package rpcent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// testdata/debian-etc-rpc is /etc/rpc from Debian's netbase 6.4.

func TestDebianFile(t *testing.T) {
	tab, err := Load(filepath.Join("testdata", "debian-etc-rpc"))
	if err != nil {
		t.Fatal(err)
	}
	if p := tab.Problems(); len(p) != 0 {
		t.Errorf("problems in Debian's file: %v", p)
	}
	tests := []struct {
		lookup string // name to look up, or "" to look up num
		num    uint32
		want   string // official name, "" for none
	}{
		{"", 100000, "portmapper"},
		{"portmapper", 0, "portmapper"},
		{"rpcbind", 0, "portmapper"},
		{"sunrpc", 0, "portmapper"},
		{"", 100003, "nfs"},
		{"", 100024, "status"},
		{"", 100021, "nlockmgr"},
		{"", 300019, "amd"},
		{"amq", 0, "amd"},
		{"", 788585389, "bwnfsd"}, // indented with spaces, not tabs
		{"", 100037, "tfsd"},      // trailing blank
		{"", 200000, ""},
		{"Portmapper", 0, ""}, // case-sensitive, as glibc
		{"100000", 0, ""},     // numbers are not names
	}
	for _, tt := range tests {
		name := tt.lookup
		if name == "" {
			name = fmt.Sprint("number ", tt.num)
		}
		t.Run(name, func(t *testing.T) {
			var e Entry
			var ok bool
			if tt.lookup != "" {
				e, ok = tab.ByName(tt.lookup)
			} else {
				e, ok = tab.ByNumber(tt.num)
			}
			if ok != (tt.want != "") || e.Name != tt.want {
				t.Errorf("got %+v, %v; want name %q", e, ok, tt.want)
			}
			if tt.lookup == "" && tab.Name(tt.num) != tt.want {
				t.Errorf("Name(%d) = %q, want %q", tt.num, tab.Name(tt.num), tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	long := "x " + strings.Repeat("9", 5000) + "\n"
	tests := []struct {
		name     string
		in       string
		entries  []Entry
		problems []int // line numbers
	}{
		{name: "empty", in: ""},
		{name: "only comments", in: "# a\n   # b\n\n\t\n"},
		{name: "basic", in: "portmapper 100000 portmap sunrpc\n",
			entries: []Entry{{"portmapper", 100000, []string{"portmap", "sunrpc"}}}},
		{name: "no final newline", in: "a 1", entries: []Entry{{"a", 1, nil}}},
		{name: "crlf", in: "a 1 b\r\n", entries: []Entry{{"a", 1, []string{"b"}}}},
		{name: "trailing comment", in: "a\t1\tb # c d\n", entries: []Entry{{"a", 1, []string{"b"}}}},
		{name: "comment glued", in: "a 1#2\n", entries: []Entry{{"a", 1, nil}}},
		{name: "max number", in: "big 4294967295\n", entries: []Entry{{"big", 4294967295, nil}}},
		{name: "missing number", in: "lonely\nok 2\n", entries: []Entry{{"ok", 2, nil}}, problems: []int{1}},
		{name: "number overflows", in: "a 4294967296\n", problems: []int{1}},
		{name: "negative", in: "a -1\n", problems: []int{1}},
		{name: "hex", in: "a 0x10\n", problems: []int{1}},
		{name: "number with junk", in: "a 12abc\n", problems: []int{1}},
		{name: "name only comment", in: "# x 1\n a", problems: []int{2}},
		{name: "binary junk", in: "\x00\xff\xfe 7 \x01\n", entries: []Entry{{"\x00\xff\xfe", 7, []string{"\x01"}}}},
		{name: "overlong line skipped", in: "a 1\n" + long + "b 2\n",
			entries: []Entry{{"a", 1, nil}, {"b", 2, nil}}, problems: []int{2}},
		{name: "overlong last line", in: "a 1\n" + strings.TrimSuffix(long, "\n"),
			entries: []Entry{{"a", 1, nil}}, problems: []int{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := Parse(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			got := tab.Entries()
			if !slices.EqualFunc(got, tt.entries, func(a, b Entry) bool {
				return a.Name == b.Name && a.Number == b.Number && slices.Equal(a.Aliases, b.Aliases)
			}) {
				t.Errorf("entries = %+v, want %+v", got, tt.entries)
			}
			var lines []int
			for _, p := range tab.Problems() {
				lines = append(lines, p.Line)
				if p.String() == "" {
					t.Error("empty problem text")
				}
			}
			if !slices.Equal(lines, tt.problems) {
				t.Errorf("problem lines = %v (%v), want %v", lines, tab.Problems(), tt.problems)
			}
		})
	}
}

func TestFirstWins(t *testing.T) {
	tab, err := Parse(strings.NewReader("one 1 uno shared\ntwo 1 dos shared\nthree 3 one\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		got  func() (Entry, bool)
		want string
	}{
		{"number 1", func() (Entry, bool) { return tab.ByNumber(1) }, "one"},
		{"alias shared", func() (Entry, bool) { return tab.ByName("shared") }, "one"},
		{"name two", func() (Entry, bool) { return tab.ByName("two") }, "two"},
		{"alias dos", func() (Entry, bool) { return tab.ByName("dos") }, "two"},
		{"name one beats alias", func() (Entry, bool) { return tab.ByName("one") }, "one"},
		{"number 3", func() (Entry, bool) { return tab.ByNumber(3) }, "three"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := tt.got()
			if !ok || e.Name != tt.want {
				t.Errorf("got %+v, %v; want %q", e, ok, tt.want)
			}
		})
	}
}

func TestNilAndZeroTable(t *testing.T) {
	for _, tab := range []*Table{nil, {}} {
		if _, ok := tab.ByNumber(100000); ok {
			t.Error("ByNumber found something in an empty table")
		}
		if _, ok := tab.ByName("portmapper"); ok {
			t.Error("ByName found something in an empty table")
		}
		if tab.Name(1) != "" || tab.Entries() != nil || tab.Problems() != nil {
			t.Error("empty table is not empty")
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	t.Run("missing file is empty", func(t *testing.T) {
		tab, err := Load(filepath.Join(dir, "nope"))
		if err != nil || len(tab.Entries()) != 0 {
			t.Fatalf("Load = %v, %v", tab, err)
		}
	})
	t.Run("directory is an error", func(t *testing.T) {
		if _, err := Load(dir); err == nil {
			t.Fatal("Load of a directory succeeded")
		}
	})
	t.Run("file", func(t *testing.T) {
		p := filepath.Join(dir, "rpc")
		if err := os.WriteFile(p, []byte("x 5 y\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		tab, err := Load(p)
		if err != nil || tab.Name(5) != "x" {
			t.Fatalf("Load = %v, %v", tab, err)
		}
	})
}

func TestReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := Parse(iotest.ErrReader(boom))
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("portmapper 100000 portmap sunrpc\n# c\nx\ny 1x\n")
	f.Fuzz(func(t *testing.T, in string) {
		tab, err := Parse(strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range tab.Entries() {
			if got, ok := tab.ByName(e.Name); !ok || got.Name == "" {
				t.Fatalf("entry %q not found by name", e.Name)
			}
			if _, ok := tab.ByNumber(e.Number); !ok {
				t.Fatalf("entry %d not found by number", e.Number)
			}
		}
	})
}

// TestNames checks that Names follows its file: read again once changed,
// empty once gone, and keeping only what keep accepts.
func TestNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rpc")
	write := func(s string, mod time.Time) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(path, mod, mod)
	}
	write("portmapper 100000 portmap sunrpc\nnfs 100003\nnot_a_label 100004\nnfs2 100003\n", time.Unix(1_700_000_000, 0))
	n := NewNames(path, func(name string) bool { return !strings.Contains(name, "_") })
	if n.Name(100000) != "" {
		t.Error("named before Refresh")
	}
	n.Refresh()
	for prog, want := range map[uint32]string{100000: "portmapper", 100003: "nfs", 100004: "", 100005: ""} {
		if got := n.Name(prog); got != want {
			t.Errorf("Name(%d) = %q, want %q", prog, got, want)
		}
	}
	for name, want := range map[string]uint32{"portmapper": 100000, "NFS": 100003, "nfs2": 0, "portmap": 0, "not_a_label": 0} {
		if got, ok := n.Number(name); got != want || ok != (want != 0) {
			t.Errorf("Number(%q) = %d, %v, want %d", name, got, ok, want)
		}
	}
	write("mountd 100005\n", time.Unix(1_700_000_100, 0))
	n.Refresh()
	if n.Name(100005) != "mountd" || n.Name(100000) != "" {
		t.Errorf("after a change: %q %q", n.Name(100005), n.Name(100000))
	}
	os.Remove(path)
	n.Refresh()
	if n.Name(100005) != "" {
		t.Error("names kept after the file went")
	}
	var none *Names
	none.Refresh()
	if _, ok := none.Number("nfs"); none.Name(1) != "" || ok {
		t.Error("a nil Names named something")
	}
}
