package netlimit

import (
	"sync"
	"time"
)

// Defaults of a LineLimiter: a source may cause 64 lines at once, then 6
// a minute. A host's services register some tens of entries when they
// start (an NFS server about 50), which the burst logs whole; a loop
// registering without end logs at most 6 lines a minute, a few hundred
// kilobytes a day.
const (
	DefaultLineBurst      = 64
	DefaultLinesPerMinute = 6
)

// lineKeys bounds the sources a LineLimiter tells apart; past it, new
// sources share OverflowKey's bucket.
const lineKeys = 1024

// A LineLimiter bounds the log lines each source (a uid, an address) can
// make the daemon write: Burst at once, then one per 1/rate, by a token
// bucket per source. A line it refuses is counted, and the count is
// reported once the source's bucket has a token again: on the source's
// next line that is allowed, or by the summary function, called from a
// timer, if the source has gone quiet. Its methods are safe for
// concurrent use; a nil LineLimiter allows every line.
type LineLimiter struct {
	every   time.Duration // between tokens
	burst   float64
	summary func(key string, notLogged uint64)

	mu      sync.Mutex
	sources *KeyTable[lineBucket]
}

type lineBucket struct {
	tokens    float64
	at        time.Time
	notLogged uint64
	pending   *time.Timer
}

// NewLineLimiter returns a LineLimiter allowing each source burst lines
// at once and perMinute lines a minute after that (the Defaults when 0).
// summary, when set, writes the count of a quiet source's refused lines.
func NewLineLimiter(burst, perMinute int, summary func(key string, notLogged uint64)) *LineLimiter {
	if burst <= 0 {
		burst = DefaultLineBurst
	}
	if perMinute <= 0 {
		perMinute = DefaultLinesPerMinute
	}
	l := &LineLimiter{every: time.Minute / time.Duration(perMinute), burst: float64(burst), summary: summary}
	l.sources = NewKeyTable(lineKeys, l.fullBucket, l.quiet)
	return l
}

// Allow reports whether source key may log a line now, and how many of
// its lines were refused since its last one (which that line should say).
func (l *LineLimiter) Allow(key string) (ok bool, notLogged uint64) {
	if l == nil {
		return true, 0
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	key, b := l.sources.Get(key, now)
	l.refill(b, now)
	if b.tokens >= 1 {
		b.tokens--
		notLogged, b.notLogged = b.notLogged, 0
		return true, notLogged
	}
	b.notLogged++
	if b.pending == nil && l.summary != nil {
		wait := time.Duration((1 - b.tokens) * float64(l.every))
		b.pending = time.AfterFunc(wait, func() { l.summarize(key, b) })
	}
	return false, 0
}

func (l *LineLimiter) refill(b *lineBucket, now time.Time) {
	b.tokens = min(l.burst, b.tokens+float64(now.Sub(b.at))/float64(l.every))
	b.at = now
}

// summarize reports b's refused lines, if it still has any to report,
// spending a token on the line.
func (l *LineLimiter) summarize(key string, b *lineBucket) {
	l.mu.Lock()
	b.pending = nil
	n := b.notLogged
	if n > 0 {
		l.refill(b, time.Now())
		b.tokens = max(b.tokens-1, 0)
		b.notLogged = 0
	}
	l.mu.Unlock()
	if n > 0 {
		l.summary(key, n)
	}
}

// fullBucket is a new source's bucket: full.
func (l *LineLimiter) fullBucket(now time.Time) *lineBucket {
	return &lineBucket{tokens: l.burst, at: now}
}

// quiet reports whether b is full again with nothing to report, so that
// its source can be forgotten.
func (l *LineLimiter) quiet(b *lineBucket, now time.Time) bool {
	l.refill(b, now)
	return b.tokens >= l.burst && b.notLogged == 0 && b.pending == nil
}

// Flush reports at once the refused lines of every source that has any,
// as when the daemon stops, and cancels their timers.
func (l *LineLimiter) Flush() {
	if l == nil {
		return
	}
	type report struct {
		key string
		n   uint64
	}
	var due []report
	l.mu.Lock()
	for k, b := range l.sources.All() {
		if b.pending != nil {
			b.pending.Stop()
			b.pending = nil
		}
		if b.notLogged > 0 {
			due = append(due, report{k, b.notLogged})
			b.notLogged = 0
		}
	}
	l.mu.Unlock()
	if l.summary != nil {
		for _, r := range due {
			l.summary(r.key, r.n)
		}
	}
}
