package registry

import (
	"net/netip"
	"testing"
)

func TestCallerOwnerAndLoopback(t *testing.T) {
	tests := []struct {
		name     string
		c        Caller
		owner    string
		loopback bool
		pid      int32
	}{
		{"internal", Caller{Transport: Internal}, OwnerSuperuser, true, 0},
		{"local uid 0", Caller{Transport: Local, Cred: &Cred{UID: 0, PID: 17}}, OwnerSuperuser, true, 17},
		{"local uid 1000", Caller{Transport: Local, Cred: &Cred{UID: 1000, GID: 100, PID: 4242}}, "1000", true, 4242},
		{"local uid 4294967294", Caller{Transport: Local, Cred: &Cred{UID: 4294967294}}, "4294967294", true, 0},
		{"local, credentials unknown", Caller{Transport: Local}, OwnerUnknown, true, 0},
		{"127.0.0.1 port 777", netCaller("127.0.0.1:777"), OwnerSuperuser, true, 0},
		{"127.0.0.1 port 0", netCaller("127.0.0.1:0"), OwnerSuperuser, true, 0},
		{"127.0.0.1 port 1023", netCaller("127.0.0.1:1023"), OwnerSuperuser, true, 0},
		{"127.0.0.1 port 1024", netCaller("127.0.0.1:1024"), OwnerUnknown, true, 0},
		{"127.0.0.1 port 40000", netCaller("127.0.0.1:40000"), OwnerUnknown, true, 0},
		{"::1 port 111", netCaller("[::1]:111"), OwnerSuperuser, true, 0},
		{"::1 port 50000", netCaller("[::1]:50000"), OwnerUnknown, true, 0},
		{"::ffff:127.0.0.1 port 600", netCaller("[::ffff:127.0.0.1]:600"), OwnerSuperuser, true, 0},
		// Not loopback as rpcbind counts it: a low port proves nothing.
		{"127.0.0.2 port 111", netCaller("127.0.0.2:111"), OwnerUnknown, false, 0},
		{"10.0.0.1 port 111", netCaller("10.0.0.1:111"), OwnerUnknown, false, 0},
		{"::2 port 111", netCaller("[::2]:111"), OwnerUnknown, false, 0},
		{"::ffff:10.0.0.1 port 111", netCaller("[::ffff:10.0.0.1]:111"), OwnerUnknown, false, 0},
		{"zero caller", Caller{}, OwnerUnknown, false, 0},
		// A network caller never has kernel credentials, but if a front
		// end set some they do not make it an owner.
		{"network with Cred", Caller{Transport: Network, Addr: netip.MustParseAddrPort("10.0.0.1:5"), Cred: &Cred{UID: 0, PID: 9}}, OwnerUnknown, false, 9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.Owner(); got != tc.owner {
				t.Errorf("Owner = %q, want %q", got, tc.owner)
			}
			if got := tc.c.IsLoopback(); got != tc.loopback {
				t.Errorf("IsLoopback = %v, want %v", got, tc.loopback)
			}
			if got := tc.c.PID(); got != tc.pid {
				t.Errorf("PID = %d, want %d", got, tc.pid)
			}
		})
	}
}

// TestOwnerDecidesUnset ties the owner strings to what they allow: a
// registration is removable by its owner string or by the superuser.
func TestOwnerDecidesUnset(t *testing.T) {
	tests := []struct {
		name      string
		owner, by Caller
		mayRemove bool
	}{
		{"uid by same uid", uid1000, Caller{Transport: Local, Cred: &Cred{UID: 1000, PID: 1}}, true},
		{"uid by other uid", uid1000, uid2000, false},
		{"uid by local root", uid1000, Caller{Transport: Local, Cred: &Cred{UID: 0}}, true},
		{"uid by loopback reserved port", uid1000, netCaller("[::1]:1023"), true},
		{"uid by loopback unreserved port", uid1000, netCaller("127.0.0.1:2000"), false},
		{"unknown by unknown", netCaller("127.0.0.1:2000"), netCaller("[::1]:3000"), true},
		{"unknown by local without credentials", netCaller("127.0.0.1:2000"), Caller{Transport: Local}, true},
		{"superuser by uid", Caller{Transport: Internal}, uid1000, false},
		{"superuser by unknown", Caller{Transport: Internal}, netCaller("127.0.0.1:2000"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRegistry(Options{})
			mustSet(t, r, tc.owner, Entry{Prog: 1, Vers: 1, Netid: "udp", Addr: "0.0.0.0.0.1"})
			ok, err := r.Unset(tc.by, 1, 1, "udp")
			if err != nil || ok != tc.mayRemove || (r.Len() == 0) != tc.mayRemove {
				t.Errorf("Unset = %v, %v with %d left; want %v", ok, err, r.Len(), tc.mayRemove)
			}
		})
	}
}
