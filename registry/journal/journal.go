package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/portmapd/portmapd/registry"
)

// DefaultCompactBytes is the journal size past which it is compacted into
// a snapshot, unless the last snapshot was larger.
const DefaultCompactBytes = 4 << 20

// Options configure a Journal.
type Options struct {
	// Logger receives the log; nothing is logged when nil.
	Logger *slog.Logger
	// CompactBytes is the journal size that starts a compaction when it
	// is also larger than the last snapshot; DefaultCompactBytes when 0.
	CompactBytes int64
}

// A Journal is a registry.Journal writing to a state directory. Record
// queues a request's changes as one record; one writer goroutine writes
// whatever is queued with one write and one fdatasync, so that many
// concurrent requests share a sync (group commit), and wakes the requests
// whose records are then durable.
type Journal struct {
	dir  string
	log  *slog.Logger
	reg  *registry.Registry
	opts Options

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
	broken         bool

	// fmu is held while writing to, syncing or switching the file.
	fmu sync.Mutex
	f   *os.File
	gen uint64

	compactc chan struct{}
	quit     chan struct{}
	done     sync.WaitGroup
}

// Start begins journaling reg's changes in dir: it writes generation gen+1
// (gen from Load) holding reg's present state, removes the older files and
// attaches itself to reg. Call it after restoring, before serving.
func Start(dir string, gen uint64, reg *registry.Registry, opts Options) (*Journal, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.CompactBytes <= 0 {
		opts.CompactBytes = DefaultCompactBytes
	}
	if err := prepareDir(dir, opts.Logger); err != nil {
		return nil, err
	}
	j := &Journal{dir: dir, log: opts.Logger, reg: reg, opts: opts, gen: gen, compactc: make(chan struct{}, 1), quit: make(chan struct{})}
	j.cond = sync.NewCond(&j.mu)
	if err := j.compact(); err != nil {
		if j.f != nil {
			j.f.Close()
		}
		return nil, err
	}
	j.done.Add(2)
	go j.writer()
	go j.compactor()
	reg.SetJournal(j)
	return j, nil
}

// Record queues changes as one record; see registry.Journal.
func (j *Journal) Record(changes []registry.Change) func() {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return func() {}
	}
	before := len(j.pending)
	j.pending = appendRecord(j.pending, changes)
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
		if err == nil {
			err = unix.Fdatasync(int(j.f.Fd()))
		}
		if err != nil {
			j.fail(fmt.Errorf("writing %s: %w", j.f.Name(), err))
		}
	}
	j.mu.Lock()
	j.spare = buf[:0]
	j.durable = max(j.durable, upto)
	j.cond.Broadcast()
	j.mu.Unlock()
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
		j.log.Error("cannot save registrations; they are kept in memory and will be saved again once writing works", "dir", j.dir, "err", err)
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
		if err := j.compact(); err != nil {
			j.log.Error("state compaction failed", "dir", j.dir, "err", err)
		}
	}
}

// compact starts a new generation at the registry's present state: it
// switches to a new journal while no change can happen, then writes the
// snapshot of that state and removes the older files.
func (j *Journal) compact() error {
	var entries []registry.Entry
	var svcs []registry.Service
	var err error
	var oldSize int64
	gen := j.gen + 1
	j.reg.Checkpoint(func(e []registry.Entry, s []registry.Service) {
		entries, svcs = e, s
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
	testStep(stepRotated, gen)
	n, err := writeSnapshot(j.dir, gen, entries, svcs)
	if err != nil {
		return err
	}
	testStep(stepRenamed, gen)
	j.mu.Lock()
	j.snapSize = n
	wasBroken := j.broken
	j.broken = false
	j.mu.Unlock()
	if wasBroken {
		j.log.Info("registrations saved again", "dir", j.dir)
	}
	removeOlder(j.dir, gen)
	j.log.Debug("compacted state", "dir", j.dir, "gen", gen, "journal_bytes", oldSize, "snapshot_bytes", n, "rpc", len(entries), "named", len(svcs))
	return nil
}

// Steps of a compaction, after which compactStep is called.
const (
	stepRotated   = "journal started"  // journal gen written, no snapshot
	stepTmpSynced = "snapshot synced"  // snapshot.tmp whole, not renamed
	stepRenamed   = "snapshot renamed" // older journals not yet removed
)

// compactStep, when tests set it, is called after each step of a
// compaction with the new generation, so that they can see the files as
// a crash at that step would leave them. It is nil otherwise.
var compactStep func(step string, gen uint64)

func testStep(step string, gen uint64) {
	if compactStep != nil {
		compactStep(step, gen)
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
	path := filepath.Join(j.dir, journalPrefix+strconv.FormatUint(gen, 10))
	f, err := os.OpenFile(path+tmpSuffix, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	hdr := appendHeader(nil, kindJournal, gen)
	if err := writeAll(f, hdr); err != nil {
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	if err := os.Rename(path+tmpSuffix, path); err != nil {
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	if err := syncDir(j.dir); err != nil {
		f.Close()
		return err
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f = f
	j.gen = gen
	j.mu.Lock()
	j.size = int64(len(hdr)) + int64(len(j.pending))
	j.mu.Unlock()
	return nil
}

// snapshotBatch is how many changes a snapshot puts in one record.
const snapshotBatch = 512

// writeSnapshot writes the snapshot of generation gen and returns its size.
func writeSnapshot(dir string, gen uint64, entries []registry.Entry, svcs []registry.Service) (int64, error) {
	b := appendHeader(make([]byte, 0, 64*(len(entries)+len(svcs))+64), kindSnapshot, gen)
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
	b, start := beginRecord(b)
	b = append(b, opEnd)
	b = binary.BigEndian.AppendUint64(b, uint64(len(entries)+len(svcs)))
	b = endRecord(b, start)

	tmp := filepath.Join(dir, snapshotName+tmpSuffix)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("journal: snapshot: %w", err)
	}
	if err := writeAll(f, b); err != nil {
		f.Close()
		return 0, fmt.Errorf("journal: snapshot: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return 0, fmt.Errorf("journal: snapshot: %w", err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("journal: snapshot: %w", err)
	}
	testStep(stepTmpSynced, gen)
	if err := os.Rename(tmp, filepath.Join(dir, snapshotName)); err != nil {
		return 0, fmt.Errorf("journal: snapshot: %w", err)
	}
	return int64(len(b)), syncDir(dir)
}

// removeOlder removes the journals before generation gen.
func removeOlder(dir string, gen uint64) {
	gens, _, err := journalGens(dir)
	if err != nil {
		return
	}
	for _, g := range gens {
		if g < gen {
			_ = os.Remove(filepath.Join(dir, journalPrefix+strconv.FormatUint(g, 10)))
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("journal: sync %s: %w", dir, err)
	}
	return nil
}

// Close writes what is queued, detaches the journal from the registry
// and closes its file. The files stay for the next start.
func (j *Journal) Close() error {
	j.reg.SetJournal(nil)
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	j.cond.Broadcast()
	j.mu.Unlock()
	close(j.quit)
	j.done.Wait()
	j.fmu.Lock()
	defer j.fmu.Unlock()
	j.flushLocked()
	return j.f.Close()
}
