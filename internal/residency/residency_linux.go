package residency

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DropExecutablePages unmaps from this process's page tables the pages of
// its own executable's read-only mappings (text and read-only data), with
// madvise(MADV_DONTNEED), and returns how many bytes those mappings span.
// Only mappings without write permission are touched: for those, the
// pages are the file's and come back unchanged when next used. A writable
// private mapping (the data segment) would lose its changes, and is left
// alone.
func DropExecutablePages() (int, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("residency: %w", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("residency: %w", err)
	}
	spans, err := readOnlySpans(maps, exe)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, s := range spans {
		// By address, as /proc/self/maps gives it: the range is no Go
		// object, so it is not made a slice.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, s.start, s.end-s.start, unix.MADV_DONTNEED); errno != 0 {
			return total, fmt.Errorf("residency: madvise %#x-%#x: %w", s.start, s.end, errno)
		}
		total += int(s.end - s.start)
	}
	return total, nil
}

// A span is an address range of a mapping.
type span struct{ start, end uintptr }

// readOnlySpans returns the mappings of path in maps (/proc/PID/maps)
// whose permissions do not include writing.
func readOnlySpans(maps []byte, path string) ([]span, error) {
	var out []span
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// start-end perms offset dev inode path
		f := strings.Fields(sc.Text())
		if len(f) < 6 || strings.Join(f[5:], " ") != path || strings.Contains(f[1], "w") || !strings.HasPrefix(f[1], "r") {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("residency: unreadable mapping %q", sc.Text())
		}
		out = append(out, span{uintptr(start), uintptr(end)})
	}
	return out, sc.Err()
}
