package residency

import (
	"os"
	"slices"
	"testing"
)

func TestReadOnlySpans(t *testing.T) {
	maps := []byte(`00400000-00ae5000 r-xp 00000000 fe:00 10019234                           /usr/sbin/portmapd
00ae5000-01294000 r--p 006e5000 fe:00 10019234                           /usr/sbin/portmapd
01294000-0131e000 rw-p 00e94000 fe:00 10019234                           /usr/sbin/portmapd
0131e000-01350000 rw-p 00000000 00:00 0
7f080ae97000-7f080afed000 r-xp 00026000 fe:00 326269                     /usr/lib/x86_64-linux-gnu/libc.so.6
7f080b000000-7f080b001000 r-xp 00000000 fe:00 1                          /usr/sbin/portmapd (deleted)
7f080c000000-7f080c001000 ---p 00000000 fe:00 10019234                   /usr/sbin/portmapd
`)
	tests := []struct {
		name, path string
		want       []span
	}{
		{"text and read-only data, not the data segment", "/usr/sbin/portmapd", []span{{0x400000, 0xae5000}, {0xae5000, 0x1294000}}},
		{"a path with a space", "/usr/sbin/portmapd (deleted)", []span{{0x7f080b000000, 0x7f080b001000}}},
		{"nothing of another file", "/usr/bin/other", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readOnlySpans(maps, tt.path)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("got %x, %v; want %x", got, err, tt.want)
			}
		})
	}
	if _, err := readOnlySpans([]byte("zz-00 r-xp 0 0:0 1 /x\n"), "/x"); err == nil {
		t.Error("an unreadable range was accepted")
	}
}

// TestDropExecutablePages: the test binary's own text is dropped and the
// process goes on running it, its data intact.
func TestDropExecutablePages(t *testing.T) {
	data := []int{1, 2, 3}
	n, err := DropExecutablePages()
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	if n == 0 {
		t.Fatalf("no read-only mapping of %s dropped", exe)
	}
	if !slices.Equal(data, []int{1, 2, 3}) || len(exe) == 0 {
		t.Fatal("memory changed")
	}
}
