package ifaddrs

import "testing"

// TestSetLinkFlags checks that each bit of a link's flags word sets its
// own field of an Addr, and only that one.
func TestSetLinkFlags(t *testing.T) {
	tests := []struct {
		name  string
		flags linkFlags
		want  Addr
	}{
		{"none", 0, Addr{}},
		{"up loopback", flagUp | flagLoopback, Addr{Up: true, Loopback: true}},
		{"up point-to-point", flagUp | flagPointToPoint, Addr{Up: true, PointToPoint: true}},
		{"broadcast multicast, down", flagBroadcast | flagMulticast, Addr{Broadcast: true, Multicast: true}},
		{"all", flagUp | flagLoopback | flagPointToPoint | flagBroadcast | flagMulticast,
			Addr{Up: true, Loopback: true, PointToPoint: true, Broadcast: true, Multicast: true}},
		{"other bits ignored", ^(flagUp | flagLoopback | flagPointToPoint | flagBroadcast | flagMulticast), Addr{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a Addr
			a.setLinkFlags(tt.flags)
			if a != tt.want {
				t.Errorf("setLinkFlags(%#x) = %+v, want %+v", tt.flags, a, tt.want)
			}
		})
	}
}
