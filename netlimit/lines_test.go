package netlimit

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestLineLimiter: a source logs its burst, then nothing until its
// bucket refills, and the line it may then log says how many it did not;
// a source that went quiet gets its count in one summary; other sources
// are not held back; past lineKeys sources share one bucket.
func TestLineLimiter(t *testing.T) {
	var mu sync.Mutex
	summaries := map[string]uint64{}
	// 600 lines a minute: a token every 100ms.
	l := NewLineLimiter(3, 600, func(key string, n uint64) {
		mu.Lock()
		summaries[key] += n
		mu.Unlock()
	})
	t.Run("burst", func(t *testing.T) {
		for i := range 3 {
			if ok, n := l.Allow("uid 1000"); !ok || n != 0 {
				t.Fatalf("line %d: allowed %v, not logged %d; want the burst", i, ok, n)
			}
		}
		for i := range 5 {
			if ok, _ := l.Allow("uid 1000"); ok {
				t.Fatalf("line %d past the burst allowed", i)
			}
		}
		if ok, _ := l.Allow("uid 1001"); !ok {
			t.Fatal("another source held back")
		}
	})
	t.Run("summary", func(t *testing.T) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			n := summaries["uid 1000"]
			mu.Unlock()
			if n == 5 {
				break
			}
			if n != 0 || time.Now().After(deadline) {
				t.Fatalf("summary of uid 1000: %d lines not logged, want 5", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("next line counts", func(t *testing.T) {
		for i := range 20 {
			l.Allow("uid 2000")
			_ = i
		}
		var ok bool
		var n uint64
		for deadline := time.Now().Add(10 * time.Second); !ok && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			ok, n = l.Allow("uid 2000")
		}
		mu.Lock()
		summarized := summaries["uid 2000"]
		mu.Unlock()
		// Whichever came first, the summary or this line, reported
		// them; together, every line not logged is counted once.
		if !ok || n+summarized < 17 {
			t.Errorf("after the refill: allowed %v, not logged %d, summarized %d; want 17 or more counted", ok, n, summarized)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		l := NewLineLimiter(1, 1, nil)
		for i := range lineKeys + 10 {
			l.Allow("source " + strconv.Itoa(i))
		}
		l.mu.Lock()
		n := l.sources.Len()
		l.mu.Unlock()
		if n > lineKeys+1 {
			t.Errorf("%d sources kept, want at most %d", n, lineKeys+1)
		}
	})
	t.Run("nil allows", func(t *testing.T) {
		var l *LineLimiter
		if ok, _ := l.Allow("x"); !ok {
			t.Error("nil LineLimiter refused")
		}
		l.Flush()
	})
}
