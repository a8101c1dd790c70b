package journal

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/portmapd/portmapd/registry"
)

// File names in the state directory.
const (
	snapshotName  = "snapshot"
	journalPrefix = "journal."
	tmpSuffix     = ".tmp"
	damagedInfix  = ".damaged-"
)

// State is what a state directory held.
type State struct {
	// Entries are the RPC registrations in DUMP order.
	Entries []registry.Entry
	// Services are the named services in registration order.
	Services []registry.Service
	// Gen is the highest generation found; the next journal uses Gen+1.
	Gen uint64
	// Damaged lists one line per file that could not be read whole,
	// as logged.
	Damaged []string
}

type entryKey struct {
	prog, vers uint32
	netid      string
}

type serviceKey struct {
	name, network string
	port          uint16
	path          string
	pid           int32
	start         uint64
}

func keyOfEntry(e registry.Entry) entryKey {
	return entryKey{e.Prog, e.Vers, strings.ToLower(e.Netid)}
}

func keyOfService(s registry.Service) serviceKey {
	return serviceKey{strings.ToLower(s.Name), s.Network, s.Port, s.Path, s.PID, s.Start}
}

type seqEntry struct {
	registry.Entry
	seq int
}

type seqService struct {
	registry.Service
	seq int
}

// builder replays changes into a state.
type builder struct {
	seq      int
	entries  map[entryKey]*seqEntry
	services map[serviceKey]*seqService
}

func newBuilder() *builder {
	return &builder{entries: map[entryKey]*seqEntry{}, services: map[serviceKey]*seqService{}}
}

func (b *builder) apply(c registry.Change) {
	b.seq++
	switch c.Op {
	case registry.OpSet:
		k := keyOfEntry(c.Entry)
		if _, ok := b.entries[k]; !ok {
			b.entries[k] = &seqEntry{c.Entry, b.seq}
		}
	case registry.OpUnset:
		delete(b.entries, keyOfEntry(c.Entry))
	case registry.OpRegister:
		k := keyOfService(c.Service)
		if _, ok := b.services[k]; !ok {
			b.services[k] = &seqService{c.Service, b.seq}
		}
	case registry.OpDeregister:
		delete(b.services, keyOfService(c.Service))
	}
}

func (b *builder) state() State {
	var st State
	es := make([]*seqEntry, 0, len(b.entries))
	for _, e := range b.entries {
		es = append(es, e)
	}
	slices.SortFunc(es, func(x, y *seqEntry) int { return cmp.Compare(x.seq, y.seq) })
	for _, e := range es {
		st.Entries = append(st.Entries, e.Entry)
	}
	ss := make([]*seqService, 0, len(b.services))
	for _, s := range b.services {
		ss = append(ss, s)
	}
	slices.SortFunc(ss, func(x, y *seqService) int { return cmp.Compare(x.seq, y.seq) })
	for _, s := range ss {
		st.Services = append(st.Services, s.Service)
	}
	return st
}

// Load reads the state saved in dir, creating dir (mode 0700) if it does
// not exist. It never fails because of what the files hold: a file that
// cannot be read whole (a truncated or corrupt record, an unknown format
// version, permissions that let others write it) gives up every record
// that can still be read, is renamed aside to NAME.damaged-TIME, and is
// reported in one log line. It fails only when dir itself is unusable.
func Load(dir string, log *slog.Logger) (State, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := prepareDir(dir, log); err != nil {
		return State{}, err
	}
	l := loader{dir: dir, log: log, b: newBuilder(), now: time.Now()}
	snapGen, haveSnap := l.readFile(snapshotName, kindSnapshot)
	gens, tmps, err := journalGens(dir)
	if err != nil {
		return State{}, err
	}
	for _, g := range gens {
		if haveSnap && g < snapGen {
			continue
		}
		l.readFile(journalPrefix+strconv.FormatUint(g, 10), kindJournal)
		l.gen = max(l.gen, g)
	}
	st := l.b.state()
	st.Gen = max(l.gen, snapGen)
	st.Damaged = l.damaged
	// Leftover temporary files are a compaction that did not finish:
	// a snapshot being written, or a journal whose header was not yet
	// synced, before which nothing was recorded in it.
	_ = os.Remove(filepath.Join(dir, snapshotName+tmpSuffix))
	for _, tmp := range tmps {
		_ = os.Remove(filepath.Join(dir, tmp))
	}
	return st, nil
}

// prepareDir creates dir owner-only, or makes an existing one so.
func prepareDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("journal: state directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("journal: state directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("journal: state directory %s is not a directory", dir)
	}
	if fi.Mode().Perm() != 0o700 {
		log.Warn("state directory was not owner-only; made it 0700", "dir", dir, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("journal: state directory: %w", err)
		}
	}
	return nil
}

// journalGens lists the generations of the journals in dir, in order, and
// the names of journals left half-created (see rotate).
func journalGens(dir string) (gens []uint64, tmps []string, err error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("journal: state directory: %w", err)
	}
	for _, de := range des {
		name := de.Name()
		if !strings.HasPrefix(name, journalPrefix) {
			continue
		}
		if strings.HasSuffix(name, tmpSuffix) {
			tmps = append(tmps, name)
			continue
		}
		g, err := strconv.ParseUint(name[len(journalPrefix):], 10, 64)
		if err != nil {
			continue // a damaged file kept aside, or not ours
		}
		gens = append(gens, g)
	}
	slices.Sort(gens)
	return gens, tmps, nil
}

type loader struct {
	dir     string
	log     *slog.Logger
	b       *builder
	now     time.Time
	gen     uint64
	damaged []string
}

// readFile replays one file. It returns the generation in its header and
// whether the header could be read.
func (l *loader) readFile(name string, kind uint16) (uint64, bool) {
	path := filepath.Join(l.dir, name)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false
	}
	var problems []string
	if err != nil {
		l.damage(path, err.Error(), 0)
		return 0, false
	}
	if p := permissionProblem(path); p != "" {
		problems = append(problems, p)
	}
	h, err := parseHeader(data)
	if err == nil && h.kind != kind {
		err = fmt.Errorf("file kind %d where %d was expected", h.kind, kind)
	}
	if err != nil {
		l.damage(path, strings.Join(append(problems, err.Error()), "; "), 0)
		return 0, false
	}
	applied := 0
	var ended bool
	var count uint64
	errs := scanRecords(data[headerLen:], headerLen, func(p []byte) error {
		cs, err := decodeRecord(p, h.version)
		if err != nil {
			return err
		}
		for _, c := range cs {
			if c.end {
				ended, count = true, c.count
				continue
			}
			l.b.apply(c.Change)
			applied++
		}
		return nil
	})
	for _, e := range errs {
		problems = append(problems, fmt.Sprintf("%s at byte %d", e.reason, e.off))
	}
	if kind == kindSnapshot {
		switch {
		case !ended && len(errs) == 0:
			problems = append(problems, "snapshot cut short (no end marker)")
		case ended && count != uint64(applied) && len(errs) == 0:
			problems = append(problems, fmt.Sprintf("snapshot holds %d changes, says %d", applied, count))
		}
	}
	if len(problems) > 0 {
		l.damage(path, strings.Join(problems, "; "), applied)
	}
	return h.gen, true
}

// permissionProblem says what is wrong with a state file's owner or mode,
// or "" when it is the daemon's own and owner-only.
func permissionProblem(path string) string {
	fi, err := os.Lstat(path)
	if err != nil {
		return err.Error()
	}
	if !fi.Mode().IsRegular() {
		return "not a regular file"
	}
	var p []string
	if fi.Mode().Perm()&0o077 != 0 {
		p = append(p, fmt.Sprintf("mode %04o lets others read or write it", fi.Mode().Perm()))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		p = append(p, fmt.Sprintf("owned by uid %d, not %d", st.Uid, os.Geteuid()))
	}
	if len(p) == 0 {
		return ""
	}
	return "wrong permissions: " + strings.Join(p, ", ")
}

// damage renames a damaged file aside and logs one line saying what was
// wrong, how much was restored and where the file went.
func (l *loader) damage(path, what string, restored int) {
	aside := path + damagedInfix + l.now.UTC().Format("20060102T150405Z")
	for i := 1; ; i++ {
		if _, err := os.Lstat(aside); errors.Is(err, fs.ErrNotExist) {
			break
		}
		aside = path + damagedInfix + l.now.UTC().Format("20060102T150405Z") + "." + strconv.Itoa(i)
	}
	where := aside
	if err := os.Rename(path, aside); err != nil {
		where = "left in place (" + err.Error() + ")"
	}
	line := fmt.Sprintf("state file %s damaged (%s): restored %d good changes from it; file kept as %s", path, what, restored, where)
	l.log.Error(line)
	l.damaged = append(l.damaged, line)
}
