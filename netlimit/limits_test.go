package netlimit

import (
	"testing"
	"time"
)

func TestLimitsOr(t *testing.T) {
	def := Limits{MaxConns: 100, MaxConnsPerSource: 10, IdleTimeout: time.Minute}
	for _, tc := range []struct {
		name string
		in   Limits
		want Limits
	}{
		{"zero takes every default", Limits{}, def},
		{"negative takes the default", Limits{MaxConns: -1, MaxConnsPerSource: -5, IdleTimeout: -time.Second}, def},
		{"set limits stay", Limits{MaxConns: 3, MaxConnsPerSource: 2, IdleTimeout: time.Second}, Limits{MaxConns: 3, MaxConnsPerSource: 2, IdleTimeout: time.Second}},
		{"each field on its own", Limits{MaxConnsPerSource: 7}, Limits{MaxConns: 100, MaxConnsPerSource: 7, IdleTimeout: time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.in.Or(def); got != tc.want {
				t.Errorf("%+v.Or(%+v) = %+v, want %+v", tc.in, def, got, tc.want)
			}
		})
	}
}
