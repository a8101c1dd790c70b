package registry

import (
	"fmt"
	"slices"
	"testing"
	"unsafe"

	"github.com/portmapd/portmapd/netid"
)

// TestNodeSize: a node stays 64 bytes, which BenchmarkMemory's figure and
// table.go's account assume.
func TestNodeSize(t *testing.T) {
	if got := unsafe.Sizeof(node{}); got != 64 {
		t.Fatalf("node is %d bytes, want 64", got)
	}
}

// pageAll reads every program with ProgramsAfter, maxEntries at a time,
// calling between after each page; it returns "prog/vers/netid" of each
// entry, with "|" between pages.
func pageAll(r *Registry, maxEntries int, between func(page int)) []string {
	var out []string
	var c ProgramCursor
	for page := 0; ; page++ {
		entries := r.ProgramsAfter(nil, c, maxEntries)
		if len(entries) == 0 {
			return out
		}
		for _, e := range entries {
			if e.Program.Prog != e.Prog {
				panic(fmt.Sprintf("%+v listed under program %d", e.Entry, e.Program.Prog))
			}
			out = append(out, fmt.Sprintf("%d/%d/%s", e.Prog, e.Vers, e.Netid))
		}
		out = append(out, "|")
		c = entries[len(entries)-1].Program
		if between != nil {
			between(page)
		}
	}
}

func TestProgramsAfter(t *testing.T) {
	fill := func(t *testing.T) *Registry {
		r := New(Options{})
		// Programs interleaved: each is listed where its first entry
		// was registered, with all of its entries.
		for _, e := range []Entry{
			{Prog: 1, Vers: 1, Netid: netid.TCP},
			{Prog: 2, Vers: 1, Netid: netid.TCP},
			{Prog: 1, Vers: 2, Netid: netid.UDP},
			{Prog: 3, Vers: 1, Netid: netid.TCP},
			{Prog: 2, Vers: 2, Netid: netid.TCP},
			{Prog: 4, Vers: 1, Netid: netid.TCP},
		} {
			e.Addr = "0.0.0.0.1.1"
			mustSet(t, r, root, e)
		}
		return r
	}
	tests := []struct {
		name       string
		maxEntries int
		between    func(r *Registry, page int)
		want       []string
	}{
		{name: "one page", maxEntries: 100,
			want: []string{"1/1/tcp", "1/2/udp", "2/1/tcp", "2/2/tcp", "3/1/tcp", "4/1/tcp", "|"}},
		{name: "a program per page, whole even past the bound", maxEntries: 1,
			want: []string{"1/1/tcp", "1/2/udp", "|", "2/1/tcp", "2/2/tcp", "|", "3/1/tcp", "|", "4/1/tcp", "|"}},
		{name: "two entries a page", maxEntries: 2,
			want: []string{"1/1/tcp", "1/2/udp", "|", "2/1/tcp", "2/2/tcp", "|", "3/1/tcp", "4/1/tcp", "|"}},
		{name: "the cursor's program removed between pages", maxEntries: 1,
			between: func(r *Registry, page int) {
				if page == 1 {
					r.Unset(root, 2, 1, "")
					r.Unset(root, 2, 2, "")
				}
			},
			want: []string{"1/1/tcp", "1/2/udp", "|", "2/1/tcp", "2/2/tcp", "|", "3/1/tcp", "|", "4/1/tcp", "|"}},
		{name: "the cursor's first entry removed between pages", maxEntries: 1,
			between: func(r *Registry, page int) {
				if page == 0 {
					r.Unset(root, 1, 1, "")
				}
			},
			// Program 1 now begins later, after the cursor: a row
			// that changed may be shown twice.
			want: []string{"1/1/tcp", "1/2/udp", "|", "2/1/tcp", "2/2/tcp", "|", "1/2/udp", "|", "3/1/tcp", "|", "4/1/tcp", "|"}},
		{name: "registered between pages, after the cursor", maxEntries: 2,
			between: func(r *Registry, page int) {
				if page == 0 {
					mustSet(t, r, root, Entry{Prog: 5, Vers: 1, Netid: netid.TCP, Addr: "0.0.0.0.1.1"})
				}
			},
			want: []string{"1/1/tcp", "1/2/udp", "|", "2/1/tcp", "2/2/tcp", "|", "3/1/tcp", "4/1/tcp", "|", "5/1/tcp", "|"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fill(t)
			var between func(int)
			if tt.between != nil {
				between = func(page int) { tt.between(r, page) }
			}
			if got := pageAll(r, tt.maxEntries, between); !slices.Equal(got, tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestNamedAfter(t *testing.T) {
	r := New(Options{})
	for i, name := range []string{"a.example", "b.example", "A.example", "c.example"} {
		if _, err := r.RegisterNamed(root, proc(0, int32(10+i)), []Service{tcp(name, uint16(80+i), 0)}); err != nil {
			t.Fatal(err)
		}
	}
	read := func(max int, between func(page int)) []string {
		var out []string
		var c NamedCursor
		for page := 0; ; page++ {
			svcs := r.NamedAfter(nil, c, max)
			if len(svcs) == 0 {
				return out
			}
			for _, s := range svcs {
				out = append(out, fmt.Sprintf("%s:%d", s.Name, s.Port))
			}
			c = svcs[len(svcs)-1].At
			if between != nil {
				between(page)
			}
		}
	}
	all := []string{"a.example:80", "b.example:81", "A.example:82", "c.example:83"}
	if got := read(3, nil); !slices.Equal(got, all) {
		t.Errorf("pages of 3: %v, want %v", got, all)
	}
	// The cursor's service, b.example, leaves after the second page.
	got := read(1, func(page int) {
		if page == 1 {
			if _, err := r.DeregisterName(root, "b.example"); err != nil {
				t.Fatal(err)
			}
		}
	})
	if !slices.Equal(got, all) {
		t.Errorf("cursor's service removed: %v, want %v", got, all)
	}
}
