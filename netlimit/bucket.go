package netlimit

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// bucketSlots is how many token buckets SourceBuckets keeps. Sources share
// slots by a keyed hash, so memory stays fixed however many addresses a
// spoofer uses; a source that happens to share a slot with one under
// attack is limited with it, which costs it only what the limit guards
// (the excess of its replies over its requests, or its forwarded calls).
const bucketSlots = 4096

// SourceBuckets is a token bucket per source (see SourceKey): each source
// may spend up to burst tokens at once, refilled at rate tokens a second.
// Loopback sources are never limited. Its methods are safe for concurrent
// use.
type SourceBuckets struct {
	rate, burst float64 // tokens per second, tokens

	seed  maphash.Seed
	start time.Time

	mu    sync.Mutex
	slots [bucketSlots]bucket
}

type bucket struct {
	tokens float64
	at     time.Duration // since start; 0: never used, so full
}

// NewSourceBuckets returns buckets that refill at rate tokens per second
// up to burst tokens, or nil, which allows everything, when rate is not
// positive.
func NewSourceBuckets(rate, burst float64) *SourceBuckets {
	if rate <= 0 {
		return nil
	}
	return &SourceBuckets{rate: rate, burst: burst, seed: maphash.MakeSeed(), start: time.Now()}
}

// Take reports whether src may spend cost tokens at now, and if so takes
// them from src's bucket. A refused cost takes nothing.
func (b *SourceBuckets) Take(src netip.Addr, cost float64, now time.Time) bool {
	if b == nil || cost <= 0 {
		return true
	}
	key, limited := SourceKey(src)
	if !limited {
		return true
	}
	var h maphash.Hash
	h.SetSeed(b.seed)
	a := key.Addr().As16()
	h.Write(a[:])
	slot := &b.slots[h.Sum64()%bucketSlots]
	t := max(now.Sub(b.start), 1)

	b.mu.Lock()
	defer b.mu.Unlock()
	tokens := b.burst
	if slot.at != 0 {
		// Calls that read the clock before another took the lock do
		// not refill backwards.
		t = max(t, slot.at)
		tokens = min(b.burst, slot.tokens+b.rate*(t-slot.at).Seconds())
	}
	slot.at = t
	if cost > tokens {
		slot.tokens = tokens
		return false
	}
	slot.tokens = tokens - cost
	return true
}

// ReplyBuckets limits, per source, the bytes by which the replies of a
// connectionless server exceed the requests that asked for them: what a
// spoofed request reflects at its victim. Loopback sources are never
// limited. Its methods are safe for concurrent use.
type ReplyBuckets struct {
	buckets *SourceBuckets
}

// NewReplyBuckets returns buckets that refill at rate bytes per second up
// to burst bytes, or nil, which allows everything, when rate is 0.
func NewReplyBuckets(rate, burst int) *ReplyBuckets {
	if rate <= 0 {
		return nil
	}
	return &ReplyBuckets{buckets: NewSourceBuckets(float64(rate), float64(burst))}
}

// Allow reports whether a reply of replyLen bytes to a request of
// requestLen bytes from src may be sent at now, and if so takes the
// excess from src's bucket. A reply no larger than its request costs
// nothing.
func (b *ReplyBuckets) Allow(src netip.Addr, requestLen, replyLen int, now time.Time) bool {
	if b == nil {
		return true
	}
	return b.buckets.Take(src, float64(replyLen-requestLen), now)
}
