package journal

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portmapd/portmapd/internal/safefile"
	"github.com/portmapd/portmapd/netid"
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
	// LastWrite is when portmapd last wrote the state: the latest time
	// stamp recorded in the files (each batch of changes, each snapshot
	// and each clean stop records one), so that a copy of the directory
	// keeps it. Files of formats before stamps give their modification
	// time instead. Zero when nothing was saved.
	LastWrite time.Time
	// Index is the index of the last change saved, and Feed the latest
	// changes, oldest first, at most Options.FeedSize of them (see
	// registry.Resume). Both are empty for files of formats before
	// indices.
	Index uint64
	Feed  []registry.Change
}

type entryKey struct {
	prog, vers uint32
	netid      netid.ID
}

func keyOfEntry(e registry.Entry) entryKey {
	return entryKey{e.Prog, e.Vers, e.Netid.Lower()}
}

// A replay holds, for each key still registered, the value first added
// and its place in the replay, so that what survives is listed in the
// order it was added, as the registry lists it.
type replay[K comparable, V any] map[K]placed[V]

type placed[V any] struct {
	v   V
	seq int
}

// apply replays op on the registration v, keyed k, at seq. An addition
// keeps v unless k is already there (the registry ignores a SET or a
// registration of what it holds), a removal forgets k, and a change of
// health sets the health held under k, keeping its place, when k is
// there. health gives a registration's Health.
func (m replay[K, V]) apply(op registry.ChangeOp, k K, v V, seq int, health func(*V) *registry.Health) {
	switch op {
	case registry.OpSet, registry.OpRegister:
		if _, ok := m[k]; !ok {
			m[k] = placed[V]{v, seq}
		}
	case registry.OpUnset, registry.OpDeregister:
		delete(m, k)
	case registry.OpEntryHealth, registry.OpServiceHealth:
		if p, ok := m[k]; ok {
			*health(&p.v) = *health(&v)
			m[k] = p
		}
	}
}

// inOrder returns the values in the order they were added; nil when
// there are none.
func (m replay[K, V]) inOrder() []V {
	var out []V
	for _, p := range slices.SortedFunc(maps.Values(m), func(x, y placed[V]) int { return cmp.Compare(x.seq, y.seq) }) {
		out = append(out, p.v)
	}
	return out
}

// builder replays changes into a state, and keeps the latest of them as
// history.
type builder struct {
	seq      int
	entries  replay[entryKey, registry.Entry]
	services replay[registry.ServiceKey, registry.Service]
	// index is the highest index read; feed the latest changes, at
	// most 2*feedSize before state trims it to feedSize.
	index    uint64
	feed     []registry.Change
	feedSize int
}

func newBuilder(feedSize int) *builder {
	if feedSize <= 0 {
		feedSize = registry.DefaultFeedSize
	}
	return &builder{entries: replay[entryKey, registry.Entry]{}, services: replay[registry.ServiceKey, registry.Service]{}, feedSize: feedSize}
}

// apply replays a change of state, and keeps it as history when it has
// an index.
func (b *builder) apply(c registry.Change) {
	b.seq++
	switch c.Op {
	case registry.OpSet, registry.OpUnset, registry.OpEntryHealth:
		b.entries.apply(c.Op, keyOfEntry(c.Entry), c.Entry, b.seq, func(e *registry.Entry) *registry.Health { return &e.Health })
	case registry.OpRegister, registry.OpDeregister, registry.OpServiceHealth:
		b.services.apply(c.Op, c.Service.Key(), c.Service, b.seq, func(s *registry.Service) *registry.Health { return &s.Health })
	}
	b.history(c)
}

// history keeps c as one of the latest changes, when it has an index.
func (b *builder) history(c registry.Change) {
	if c.Index == 0 {
		return
	}
	b.seen(c.Index)
	b.feed = append(b.feed, c)
	if len(b.feed) > 2*b.feedSize {
		b.feed = append(b.feed[:0], b.feed[len(b.feed)-b.feedSize:]...)
	}
}

// seen raises the index to i.
func (b *builder) seen(i uint64) { b.index = max(b.index, i) }

func (b *builder) state() State {
	feed := b.feed
	if len(feed) > b.feedSize {
		feed = feed[len(feed)-b.feedSize:]
	}
	return State{Entries: b.entries.inOrder(), Services: b.services.inOrder(), Index: b.index, Feed: slices.Clip(feed)}
}

// A Store is an open state directory. It holds an exclusive lock on the
// directory from Open to Close, so that a second portmapd pointed at the
// same directory (started without the lock file) reads and writes
// nothing there.
type Store struct {
	dir  *safefile.Dir
	opts Options
}

// ErrInUse reports a state directory another process holds open.
var ErrInUse = errors.New("in use by another portmapd")

// Open opens the state directory at path, creating it (mode 0700) if it
// does not exist. The directory must belong to this process's user and
// must not be a symbolic link (see package safefile); one that others may
// read or write is made owner-only, with a warning. opts.Logger receives
// the warning and, from Load, the damage found; the Journal that
// NewJournal makes takes opts too.
func Open(path string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.CompactBytes <= 0 {
		opts.CompactBytes = DefaultCompactBytes
	}
	if err := safefile.MkdirAll(path, 0o700, false, -1, -1); err != nil {
		return nil, fmt.Errorf("journal: state directory: %w", err)
	}
	d, err := safefile.OpenDir(path, safefile.Policy{Private: true})
	if err != nil {
		return nil, fmt.Errorf("journal: state directory %w", err)
	}
	if err := d.Flock(unix.LOCK_EX | unix.LOCK_NB); err != nil {
		defer d.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			holder := ""
			if st, err := d.Stat(); err == nil {
				if pid, ok := safefile.FlockHolder(&st); ok {
					holder = " (pid " + strconv.Itoa(pid) + ")"
				}
			}
			return nil, fmt.Errorf("journal: state directory %s: %w%s", path, ErrInUse, holder)
		}
		return nil, fmt.Errorf("journal: state directory: %w", err)
	}
	if perm := d.Perm(); perm != 0o700 {
		opts.Logger.Warn("state directory was not owner-only; made it 0700", "dir", path, "mode", fmt.Sprintf("%04o", perm))
	}
	return &Store{dir: d, opts: opts}, nil
}

// Close releases the directory. A Journal started on it must be closed
// first.
func (s *Store) Close() error { return s.dir.Close() }

// checkEvery is how many records Load reads between looks at its
// context.
const checkEvery = 256

// Load reads the saved state. It never fails because of what the files
// hold: a file that cannot be read whole (a truncated or corrupt record,
// an unknown format version, permissions that let others write it, a
// FIFO or link in its place) gives up every record that can still be
// read, is renamed aside to NAME.damaged-TIME, and is reported in one log
// line. Files are read record by record, so memory follows the state
// they hold, not their size. It fails only when the directory cannot be
// listed, or with ctx's error when ctx ends first.
func (s *Store) Load(ctx context.Context) (State, error) {
	l := loader{ctx: ctx, dir: s.dir, log: s.opts.Logger, b: newBuilder(s.opts.FeedSize), now: time.Now()}
	snapGen, haveSnap, err := l.readFile(snapshotName, kindSnapshot)
	if err != nil {
		return State{}, err
	}
	gens, tmps, err := journalGens(s.dir)
	if err != nil {
		return State{}, err
	}
	for _, g := range gens {
		if haveSnap && g < snapGen {
			continue
		}
		if _, _, err := l.readFile(journalPrefix+strconv.FormatUint(g, 10), kindJournal); err != nil {
			return State{}, err
		}
		l.gen = max(l.gen, g)
	}
	st := l.b.state()
	st.Gen = max(l.gen, snapGen)
	st.Damaged = l.damaged
	st.LastWrite = l.lastWrite
	// Leftover temporary files are a compaction that did not finish:
	// a snapshot being written, or a journal whose header was not yet
	// synced, before which nothing was recorded in it.
	for _, tmp := range tmps {
		_ = s.dir.Remove(tmp)
	}
	return st, nil
}

// journalGens lists the generations of the journals in dir, in order, and
// the temporary files left by a compaction that did not finish (see
// rotate and writeSnapshot).
func journalGens(dir *safefile.Dir) (gens []uint64, tmps []string, err error) {
	names, err := dir.Names()
	if err != nil {
		return nil, nil, fmt.Errorf("journal: state directory: %w", err)
	}
	for _, name := range names {
		if !strings.HasPrefix(name, journalPrefix) && !strings.HasPrefix(name, snapshotName) {
			continue
		}
		// NAME.tmp is what versions before the random temporary
		// names left.
		if safefile.IsTemp(name) || strings.HasSuffix(name, tmpSuffix) {
			tmps = append(tmps, name)
			continue
		}
		if !strings.HasPrefix(name, journalPrefix) {
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
	ctx     context.Context
	dir     *safefile.Dir
	log     *slog.Logger
	b       *builder
	now     time.Time
	gen     uint64
	damaged []string
	// lastWrite is the latest time stamp read, or for files of formats
	// without them the latest such file's modification time.
	lastWrite time.Time
}

// readFile replays one file, record by record. It returns the generation
// in its header and whether the header could be read; the error is only
// ever the context's.
func (l *loader) readFile(name string, kind uint16) (uint64, bool, error) {
	f, fi, err := l.dir.Open(name, math.MaxInt64)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		l.damage(name, errorText(err), 0)
		return 0, false, nil
	}
	defer f.Close()
	var problems []string
	if p := permissionProblem(fi); p != "" {
		problems = append(problems, p)
	}
	r := bufio.NewReaderSize(f, 64<<10)
	hb := make([]byte, headerLen)
	n, err := io.ReadFull(r, hb)
	h, herr := parseHeader(hb[:n])
	if herr == nil && h.kind != kind {
		herr = fmt.Errorf("file kind %d where %d was expected", h.kind, kind)
	}
	if herr == nil && err != nil {
		herr = err
	}
	if herr != nil {
		l.damage(name, strings.Join(append(problems, herr.Error()), "; "), 0)
		return 0, false, nil
	}
	applied, records := 0, 0
	var ended, stamped, interrupted bool
	var count uint64
	errs := scanRecords(r, headerLen, fi.Size()-headerLen, func(p []byte) error {
		if records++; records%checkEvery == 0 && l.ctx.Err() != nil {
			interrupted = true
			return errStop
		}
		cs, err := decodeRecord(p, h.version)
		if err != nil {
			return err
		}
		for _, c := range cs {
			switch {
			case c.end:
				ended, count = true, c.count
				l.b.seen(c.index)
			case c.history:
				l.b.history(c.Change)
			case c.marker:
			case c.stamped:
				stamped = true
				if c.at.After(l.lastWrite) {
					l.lastWrite = c.at
				}
			default:
				l.b.apply(c.Change)
				applied++
			}
		}
		return nil
	})
	if interrupted {
		return 0, false, fmt.Errorf("journal: reading %s: %w", f.Name(), context.Cause(l.ctx))
	}
	if !stamped && h.version < versionStamps && fi.ModTime().After(l.lastWrite) {
		l.lastWrite = fi.ModTime()
	}
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
		l.damage(name, strings.Join(problems, "; "), applied)
	}
	return h.gen, true, nil
}

// errorText is err without the paths, which the damage line already
// names.
func errorText(err error) string {
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		return pe.Err.Error()
	case errors.As(err, &le):
		return le.Err.Error()
	}
	return err.Error()
}

// permissionProblem says what is wrong with a state file's owner or mode,
// or "" when it is the daemon's own and owner-only.
func permissionProblem(fi fs.FileInfo) string {
	var p []string
	if fi.Mode().Perm()&0o077 != 0 {
		p = append(p, fmt.Sprintf("mode %04o lets others read or write it", fi.Mode().Perm()))
	}
	if uid, ok := safefile.FileOwner(fi); ok && uid != os.Geteuid() {
		p = append(p, fmt.Sprintf("owned by uid %d, not %d", uid, os.Geteuid()))
	}
	if len(p) == 0 {
		return ""
	}
	return "wrong permissions: " + strings.Join(p, ", ")
}

// maxAsideTries bounds the search for a free NAME.damaged-TIME.N.
const maxAsideTries = 100

// damage renames a damaged file aside and logs one line saying what was
// wrong, how much was restored and where the file went. A file that
// cannot be renamed stays where it is, and the line says why.
func (l *loader) damage(name, what string, restored int) {
	stamp := l.now.UTC().Format("20060102T150405Z")
	where := ""
	for i := 0; i < maxAsideTries; i++ {
		aside := name + damagedInfix + stamp
		if i > 0 {
			aside += "." + strconv.Itoa(i)
		}
		err := l.dir.RenameNoReplace(name, aside)
		if err == nil {
			where = filepath.Join(l.dir.Path(), aside)
			break
		}
		if !errors.Is(err, fs.ErrExist) {
			where = "left in place (cannot rename it: " + errorText(err) + ")"
			break
		}
	}
	if where == "" {
		where = fmt.Sprintf("left in place (%d names for it taken)", maxAsideTries)
	}
	path := filepath.Join(l.dir.Path(), name)
	line := fmt.Sprintf("state file %s damaged (%s): restored %d good changes from it; file kept as %s", path, what, restored, where)
	l.log.Error(line)
	l.damaged = append(l.damaged, line)
}
