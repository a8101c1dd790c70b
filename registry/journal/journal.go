package journal

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portmapd/portmapd/internal/safefile"
	"github.com/portmapd/portmapd/registry"
)

// DefaultCompactBytes is the journal size past which it is compacted into
// a snapshot, unless the last snapshot was larger.
const DefaultCompactBytes = 4 << 20

// Options configure a Store and the Journal it makes.
type Options struct {
	// Logger receives the log; nothing is logged when nil.
	Logger *slog.Logger
	// CompactBytes is the journal size that starts a compaction when it
	// is also larger than the last snapshot; DefaultCompactBytes when 0.
	CompactBytes int64
	// FeedSize is how many of the latest changes Load returns in
	// State.Feed; registry.DefaultFeedSize when 0. Snapshots keep what
	// the registry keeps.
	FeedSize int
	// Observer, when set, is told of every write and compaction, for
	// metrics.
	Observer Observer
}

// An Observer is told what a Journal writes, for counting (the daemon's
// metrics). It is called from the journal's own goroutines and must only
// count and return.
type Observer interface {
	// StateWritten is told of each batch of records written to the
	// journal: its size, how long its fdatasync took, and the error of
	// the write or sync (nil when both worked; sync is 0 when the write
	// failed).
	StateWritten(bytes int, sync time.Duration, err error)
	// StateCompacted is told of each compaction: how long it took and
	// its error.
	StateCompacted(took time.Duration, err error)
}

// A Journal is a registry.Journal writing to a state directory. Record
// queues a request's changes as one record; one writer goroutine writes
// whatever is queued with one write and one fdatasync, so that many
// concurrent requests share a sync (group commit), and wakes the requests
// whose records are then durable. Store.NewJournal makes one, Start
// starts its goroutines and Close ends them.
type Journal struct {
	store *Store
	dir   *safefile.Dir
	log   *slog.Logger
	reg   *registry.Registry
	opts  Options

	mu      sync.Mutex
	cond    *sync.Cond
	pending []byte
	spare   []byte
	queued  uint64 // sequence number of the last queued record
	durable uint64 // last record written and synced, or given up on
	closed  bool
	// size is the current journal's length including what is queued;
	// snapSize the last snapshot's.
	size, snapSize int64
	compacting     bool
	// afterStep, when a test sets it, is called after each step of a
	// compaction with the new generation, so that the test can see the
	// files as a crash at that step would leave them.
	afterStep func(step string, gen uint64)
	broken    bool

	// fmu is held while writing to, syncing or switching the file.
	fmu sync.Mutex
	f   *os.File
	gen uint64

	compactc chan struct{}
	quit     chan struct{}
	started  bool
	done     sync.WaitGroup
}

// NewJournal returns a journal of reg's changes in the store: it writes
// generation gen+1 (gen from Load) holding reg's present state and removes
// the older files, but starts no goroutine and records nothing until
// Start. Call it after restoring. The Journal takes the store over, and
// closing it closes the store; when NewJournal fails, the store is still
// the caller's.
func (s *Store) NewJournal(gen uint64, reg *registry.Registry) (*Journal, error) {
	j := &Journal{store: s, dir: s.dir, log: s.opts.Logger, reg: reg, opts: s.opts, gen: gen, compactc: make(chan struct{}, 1), quit: make(chan struct{})}
	j.cond = sync.NewCond(&j.mu)
	if err := j.compact(); err != nil {
		if j.f != nil {
			j.f.Close()
		}
		return nil, err
	}
	return j, nil
}

// Start attaches the journal to its registry, so that every later change
// is recorded, and starts the goroutines that write and compact. Call it
// once, before anything changes the registry after NewJournal (a change
// made in between is not recorded), and not at the same time as Close. It
// does nothing after Close.
func (j *Journal) Start() {
	j.mu.Lock()
	if j.started || j.closed {
		j.mu.Unlock()
		return
	}
	j.started = true
	j.done.Add(2)
	j.mu.Unlock()
	go j.writer()
	go j.compactor()
	// Not under j.mu: the registry calls Record with its own lock held.
	j.reg.SetJournal(j)
}

// Record queues changes as one record; see registry.Journal.
func (j *Journal) Record(changes []registry.Change) func() {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return func() {}
	}
	before := len(j.pending)
	if before == 0 {
		// The first record of a batch carries the time it is
		// written at.
		j.pending = appendStampedRecord(j.pending, time.Now(), changes)
	} else {
		j.pending = appendRecord(j.pending, changes)
	}
	j.size += int64(len(j.pending) - before)
	j.queued++
	seq := j.queued
	if !j.compacting && j.size > max(j.opts.CompactBytes, j.snapSize) {
		j.compacting = true
		select {
		case j.compactc <- struct{}{}:
		default:
		}
	}
	j.cond.Broadcast()
	j.mu.Unlock()
	return func() { j.wait(seq) }
}

func (j *Journal) wait(seq uint64) {
	j.mu.Lock()
	for j.durable < seq {
		j.cond.Wait()
	}
	j.mu.Unlock()
}

// writer writes and syncs what Record queues.
func (j *Journal) writer() {
	defer j.done.Done()
	for {
		j.mu.Lock()
		for len(j.pending) == 0 && !j.closed {
			j.cond.Wait()
		}
		if len(j.pending) == 0 && j.closed {
			j.mu.Unlock()
			return
		}
		j.mu.Unlock()
		j.fmu.Lock()
		j.flushLocked()
		j.fmu.Unlock()
	}
}

// flushLocked writes and syncs everything queued; j.fmu must be held, so
// that records reach the file in the order they were queued.
func (j *Journal) flushLocked() {
	j.mu.Lock()
	buf := j.pending
	upto := j.queued
	j.pending = j.spare[:0]
	j.mu.Unlock()
	if len(buf) > 0 {
		err := writeAll(j.f, buf)
		var took time.Duration
		if err == nil {
			start := time.Now()
			err = unix.Fdatasync(int(j.f.Fd()))
			took = time.Since(start)
		}
		if o := j.opts.Observer; o != nil {
			o.StateWritten(len(buf), took, err)
		}
		if err != nil {
			j.fail(fmt.Errorf("writing %s: %w", j.name(), err))
		}
	}
	j.mu.Lock()
	j.spare = buf[:0]
	j.durable = max(j.durable, upto)
	j.cond.Broadcast()
	j.mu.Unlock()
}

// name is the current journal file's path, for messages.
func (j *Journal) name() string {
	return filepath.Join(j.dir.Path(), journalPrefix+strconv.FormatUint(j.gen, 10))
}

func writeAll(f *os.File, b []byte) error {
	_, err := f.Write(b)
	return err
}

// fail logs a write failure once and asks for a compaction, which starts
// fresh files; the changes stay in memory.
func (j *Journal) fail(err error) {
	j.mu.Lock()
	first := !j.broken
	j.broken = true
	j.compacting = true
	j.mu.Unlock()
	if first {
		j.log.Error("cannot save registrations; they are kept in memory and will be saved again once writing works", "dir", j.dir.Path(), "err", err)
	}
	select {
	case j.compactc <- struct{}{}:
	default:
	}
}

func (j *Journal) compactor() {
	defer j.done.Done()
	for {
		select {
		case <-j.quit:
			return
		case <-j.compactc:
		}
		start := time.Now()
		err := j.compact()
		if o := j.opts.Observer; o != nil {
			o.StateCompacted(time.Since(start), err)
		}
		if err != nil {
			j.log.Error("state compaction failed", "dir", j.dir.Path(), "err", err)
		}
	}
}

// compact starts a new generation at the registry's present state: it
// switches to a new journal while no change can happen, then writes the
// snapshot of that state and removes the older files.
func (j *Journal) compact() error {
	var saved registry.Saved
	var err error
	var oldSize int64
	gen := j.gen + 1
	j.reg.Checkpoint(func(st registry.Saved) {
		saved = st
		j.mu.Lock()
		oldSize = j.size
		j.mu.Unlock()
		err = j.rotate(gen)
	})
	j.mu.Lock()
	j.compacting = false
	j.mu.Unlock()
	if err != nil {
		return err
	}
	j.step(stepRotated, gen)
	n, err := writeSnapshot(j.dir, gen, saved, func() { j.step(stepTmpSynced, gen) })
	if err != nil {
		return err
	}
	j.step(stepRenamed, gen)
	j.mu.Lock()
	j.snapSize = n
	wasBroken := j.broken
	j.broken = false
	j.mu.Unlock()
	if wasBroken {
		j.log.Info("registrations saved again", "dir", j.dir.Path())
	}
	removeOlder(j.dir, gen)
	j.log.Debug("compacted state", "dir", j.dir.Path(), "gen", gen, "journal_bytes", oldSize, "snapshot_bytes", n, "rpc", len(saved.Entries), "named", len(saved.Services), "index", saved.Index)
	return nil
}

// Steps of a compaction, after which afterStep is called.
const (
	stepRotated   = "journal started"  // journal gen written, no snapshot
	stepTmpSynced = "snapshot synced"  // snapshot.tmp whole, not renamed
	stepRenamed   = "snapshot renamed" // older journals not yet removed
)

func (j *Journal) step(step string, gen uint64) {
	if j.afterStep != nil {
		j.afterStep(step, gen)
	}
}

// rotate flushes the current journal and switches to a new one of
// generation gen. The registry is locked, so nothing is being recorded.
func (j *Journal) rotate(gen uint64) error {
	j.fmu.Lock()
	defer j.fmu.Unlock()
	if j.f != nil {
		j.flushLocked()
	}
	// The journal appears under its name only with its header synced, so
	// that a crash here leaves a temporary file, not a journal that
	// looks damaged.
	f, err := j.dir.Create(journalPrefix+strconv.FormatUint(gen, 10), 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	hdr := appendHeader(nil, kindJournal, gen)
	if err := writeAll(f.File, hdr); err != nil {
		f.Abort()
		return fmt.Errorf("journal: %w", err)
	}
	if err := f.Commit(); err != nil {
		f.Abort()
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f = f.File
	j.gen = gen
	j.mu.Lock()
	j.size = int64(len(hdr)) + int64(len(j.pending))
	j.mu.Unlock()
	return nil
}

// snapshotBatch is how many changes a snapshot puts in one record.
const snapshotBatch = 512

// writeSnapshot writes the snapshot of generation gen, holding saved's
// state, then its latest changes as history, then its index, and returns
// its size.
func writeSnapshot(dir *safefile.Dir, gen uint64, saved registry.Saved, synced func()) (int64, error) {
	entries, svcs := saved.Entries, saved.Services
	b := appendHeader(make([]byte, 0, 64*(len(entries)+len(svcs))+128*len(saved.Feed)+64), kindSnapshot, gen)
	batch := make([]registry.Change, 0, snapshotBatch)
	flush := func() {
		if len(batch) > 0 {
			b = appendRecord(b, batch)
			batch = batch[:0]
		}
	}
	for _, e := range entries {
		batch = append(batch, registry.Change{Op: registry.OpSet, Entry: e})
		if len(batch) == snapshotBatch {
			flush()
		}
	}
	for _, s := range svcs {
		batch = append(batch, registry.Change{Op: registry.OpRegister, Service: s})
		if len(batch) == snapshotBatch {
			flush()
		}
	}
	flush()
	for chunk := range slices.Chunk(saved.Feed, snapshotBatch) {
		var start int
		b, start = beginRecord(b)
		for _, c := range chunk {
			b = appendHistory(b, c)
		}
		b = endRecord(b, start)
	}
	b, start := beginRecord(b)
	b = appendStamp(b, time.Now())
	b = append(b, opEnd)
	b = binary.BigEndian.AppendUint64(b, uint64(len(entries)+len(svcs)))
	b = binary.BigEndian.AppendUint64(b, saved.Index)
	b = endRecord(b, start)

	f, err := dir.Create(snapshotName, 0o600)
	if err != nil {
		return 0, fmt.Errorf("journal: snapshot: %w", err)
	}
	defer f.Abort()
	if err := writeAll(f.File, b); err != nil {
		return 0, fmt.Errorf("journal: snapshot: %w", err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("journal: snapshot: %w", err)
	}
	synced()
	if err := f.Commit(); err != nil {
		return 0, fmt.Errorf("journal: snapshot: %w", err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("journal: snapshot: %w", err)
	}
	return int64(len(b)), nil
}

// removeOlder removes the journals before generation gen.
func removeOlder(dir *safefile.Dir, gen uint64) {
	gens, _, err := journalGens(dir)
	if err != nil {
		return
	}
	for _, g := range gens {
		if g < gen {
			_ = dir.Remove(journalPrefix + strconv.FormatUint(g, 10))
		}
	}
}

// Close writes what is queued and a time stamp, so that the state's last
// write time is the time it was closed, detaches the journal from the
// registry, ends its goroutines and closes its file. The files stay for
// the next start. It may be called without Start.
func (j *Journal) Close() error {
	j.reg.SetJournal(nil)
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	j.pending = appendStampedRecord(j.pending, time.Now(), nil)
	j.cond.Broadcast()
	j.mu.Unlock()
	close(j.quit)
	j.done.Wait()
	j.fmu.Lock()
	defer j.fmu.Unlock()
	j.flushLocked()
	err := j.f.Close()
	if serr := j.store.Close(); err == nil {
		err = serr
	}
	return err
}
