package netlimit

import (
	"maps"
	"slices"
	"testing"
	"time"
)

// TestKeyTable: a key keeps its state; a new key finding the table full
// has the idle keys forgotten to make room, or shares OverflowKey's state
// when none is idle; Forget forgets only an idle key.
func TestKeyTable(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	// A counter's state is idle once its deadline has passed.
	type counter struct {
		made  time.Time
		until time.Time
		n     int
	}
	fresh := func(now time.Time) *counter { return &counter{made: now, until: now.Add(time.Minute)} }
	idle := func(c *counter, now time.Time) bool { return !now.Before(c.until) }

	type get struct {
		key     string
		at      time.Duration // after t0
		wantKey string
		wantN   int // the state's count after this Get adds one
	}
	tests := []struct {
		name     string
		gets     []get
		forget   string
		forgetAt time.Duration
		wantKeys []string
	}{
		{
			name:     "a key keeps its state",
			gets:     []get{{"a", 0, "a", 1}, {"b", 0, "b", 1}, {"a", time.Second, "a", 2}},
			wantKeys: []string{"a", "b"},
		},
		{
			name: "past the bound, new keys share the overflow state",
			gets: []get{
				{"a", 0, "a", 1}, {"b", 0, "b", 1},
				{"c", time.Second, OverflowKey, 1}, {"d", time.Second, OverflowKey, 2},
				{"a", time.Second, "a", 2},
			},
			wantKeys: []string{OverflowKey, "a", "b"}, // sorted
		},
		{
			name: "a full table forgets its idle keys for a new one",
			gets: []get{
				{"a", 0, "a", 1}, {"b", 30 * time.Second, "b", 1},
				{"c", time.Minute, "c", 1},
			},
			wantKeys: []string{"b", "c"},
		},
		{
			name:     "forget leaves a key that is not idle",
			gets:     []get{{"a", 0, "a", 1}},
			forget:   "a",
			forgetAt: time.Second,
			wantKeys: []string{"a"},
		},
		{
			name:     "forget forgets an idle key",
			gets:     []get{{"a", 0, "a", 1}, {"b", 0, "b", 1}},
			forget:   "a",
			forgetAt: time.Minute,
			wantKeys: []string{"b"},
		},
		{
			name:     "forget of an unknown key changes nothing",
			gets:     []get{{"a", 0, "a", 1}},
			forget:   "z",
			forgetAt: time.Hour,
			wantKeys: []string{"a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := NewKeyTable(2, fresh, idle)
			for _, g := range tt.gets {
				now := t0.Add(g.at)
				key, c := tab.Get(g.key, now)
				c.n++
				if key != g.wantKey || c.n != g.wantN {
					t.Fatalf("Get(%q) at %v = %q with count %d, want %q with count %d", g.key, g.at, key, c.n, g.wantKey, g.wantN)
				}
				if c.n == 1 && !c.made.Equal(now) {
					t.Errorf("Get(%q) at %v made its state at %v", g.key, g.at, c.made)
				}
			}
			if tt.forget != "" {
				tab.Forget(tt.forget, t0.Add(tt.forgetAt))
			}
			got := slices.Sorted(maps.Keys(maps.Collect(tab.All())))
			if !slices.Equal(got, tt.wantKeys) || tab.Len() != len(tt.wantKeys) {
				t.Errorf("keys %q (Len %d), want %q", got, tab.Len(), tt.wantKeys)
			}
		})
	}
}
