package netlimit

import (
	"iter"
	"time"
)

// OverflowKey is the key under which a full KeyTable holds the state that
// the keys it has no room for share.
const OverflowKey = "*"

// A KeyTable holds the state S a limit keeps for each key it tells apart
// (a uid, an address), and at most maxKeys of them, so that memory stays
// bounded however many keys a flood uses. When a new key finds the table
// full, the table forgets the keys whose state is idle; if none is, the
// new key shares OverflowKey's state. It is not safe for concurrent use:
// the limit that owns it holds its own lock.
type KeyTable[S any] struct {
	maxKeys int
	fresh   func(now time.Time) *S
	idle    func(s *S, now time.Time) bool
	keys    map[string]*S
}

// NewKeyTable returns a KeyTable of at most maxKeys keys and OverflowKey.
// fresh makes a new key's state; idle reports whether s may be forgotten
// at now: whether a fresh state would serve its key the same.
func NewKeyTable[S any](maxKeys int, fresh func(now time.Time) *S, idle func(s *S, now time.Time) bool) *KeyTable[S] {
	return &KeyTable[S]{maxKeys: maxKeys, fresh: fresh, idle: idle, keys: make(map[string]*S)}
}

// Get returns key's state at now, made by fresh if key has none, and the
// key that holds it: key, or OverflowKey when the table is full.
func (t *KeyTable[S]) Get(key string, now time.Time) (string, *S) {
	s := t.keys[key]
	if s == nil {
		if len(t.keys) >= t.maxKeys {
			t.sweep(now)
		}
		if len(t.keys) >= t.maxKeys {
			key = OverflowKey
			s = t.keys[key]
		}
	}
	if s == nil {
		s = t.fresh(now)
		t.keys[key] = s
	}
	return key, s
}

// Forget forgets key if its state is idle at now.
func (t *KeyTable[S]) Forget(key string, now time.Time) {
	if s := t.keys[key]; s != nil && t.idle(s, now) {
		delete(t.keys, key)
	}
}

// sweep forgets the keys whose state is idle at now.
func (t *KeyTable[S]) sweep(now time.Time) {
	for k, s := range t.keys {
		if t.idle(s, now) {
			delete(t.keys, k)
		}
	}
}

// Len returns how many keys the table holds.
func (t *KeyTable[S]) Len() int { return len(t.keys) }

// All yields each key the table holds with its state.
func (t *KeyTable[S]) All() iter.Seq2[string, *S] {
	return func(yield func(string, *S) bool) {
		for k, s := range t.keys {
			if !yield(k, s) {
				return
			}
		}
	}
}
