// Package rpcent reads the RPC program number database, /etc/rpc, as
// glibc's getrpcbyname and getrpcbynumber see it: one program per line,
//
//	name number [alias ...]
//
// with '#' starting a comment. A Table is loaded once and is read-only
// afterwards, so it is safe for concurrent use; the package keeps no state
// of its own.
//
// Malformed lines (no number, a number that is not a decimal uint32) are
// skipped, as glibc skips them, and remembered as Problems for whoever
// wants to report them. Parsing never fails on content, only on I/O.
package rpcent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// DefaultPath is where the database lives on Linux.
const DefaultPath = "/etc/rpc"

// maxLine bounds one line of the file; longer lines are skipped.
const maxLine = 4096

// An Entry is one program: its official name, number and aliases.
type Entry struct {
	Name    string
	Number  uint32
	Aliases []string
}

// A Problem is a line that was skipped.
type Problem struct {
	Line   int
	Reason string
}

func (p Problem) String() string { return fmt.Sprintf("line %d: %s", p.Line, p.Reason) }

// A Table is a parsed database. The zero value is an empty table.
type Table struct {
	entries  []Entry
	byName   map[string]int // name or alias -> first entry that has it
	byNumber map[uint32]int // number -> first entry with it
	problems []Problem
}

// Parse reads a database from r. It returns an error only when reading
// fails; malformed lines are skipped and listed by Problems.
func Parse(r io.Reader) (*Table, error) {
	t := &Table{byName: make(map[string]int), byNumber: make(map[uint32]int)}
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, tooLong, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if tooLong {
			t.problems = append(t.problems, Problem{n, fmt.Sprintf("longer than %d bytes", maxLine)})
		} else {
			t.parseLine(n, line)
		}
		if err != nil { // io.EOF
			return t, nil
		}
	}
}

// readLine returns the next line without its newline, or reports that it
// was longer than maxLine (and consumes it). err is io.EOF on the last line.
func readLine(br *bufio.Reader) (line string, tooLong bool, err error) {
	var b []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(b)+len(frag) > maxLine+1 {
			tooLong = true
		} else {
			b = append(b, frag...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if tooLong {
			b = nil
		}
		return strings.TrimSuffix(string(b), "\n"), tooLong, err
	}
}

func (t *Table) parseLine(n int, line string) {
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	f := strings.Fields(line)
	switch len(f) {
	case 0:
		return
	case 1:
		t.problems = append(t.problems, Problem{n, fmt.Sprintf("%q has no program number", f[0])})
		return
	}
	num, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		t.problems = append(t.problems, Problem{n, fmt.Sprintf("%q is not a program number", f[1])})
		return
	}
	e := Entry{Name: f[0], Number: uint32(num)}
	if len(f) > 2 {
		e.Aliases = f[2:]
	}
	i := len(t.entries)
	t.entries = append(t.entries, e)
	if _, ok := t.byNumber[e.Number]; !ok {
		t.byNumber[e.Number] = i
	}
	t.addName(e.Name, i)
	for _, name := range e.Aliases {
		t.addName(name, i)
	}
}

func (t *Table) addName(name string, i int) {
	if _, ok := t.byName[name]; !ok {
		t.byName[name] = i
	}
}

// Load reads the database at path. A file that does not exist gives an
// empty table, as getrpcbynumber then finds nothing.
func Load(path string) (*Table, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Table{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("rpcent: %s: %w", path, err)
	}
	return t, nil
}

// ByNumber returns the first entry for program number n.
func (t *Table) ByNumber(n uint32) (Entry, bool) {
	if t == nil {
		return Entry{}, false
	}
	return lookup(t.entries, t.byNumber, n)
}

// ByName returns the first entry whose name or one of whose aliases is
// name, compared exactly, as glibc does.
func (t *Table) ByName(name string) (Entry, bool) {
	if t == nil {
		return Entry{}, false
	}
	return lookup(t.entries, t.byName, name)
}

// lookup returns the entry that index points to for key.
func lookup[K comparable](entries []Entry, index map[K]int, key K) (Entry, bool) {
	i, ok := index[key]
	if !ok {
		return Entry{}, false
	}
	return entries[i], true
}

// Name returns the official name of program n, or "" when it has none.
func (t *Table) Name(n uint32) string {
	e, _ := t.ByNumber(n)
	return e.Name
}

// Entries returns the entries in file order.
func (t *Table) Entries() []Entry {
	if t == nil {
		return nil
	}
	return append([]Entry(nil), t.entries...)
}

// Problems returns the lines that were skipped, in file order.
func (t *Table) Problems() []Problem {
	if t == nil {
		return nil
	}
	return append([]Problem(nil), t.problems...)
}
