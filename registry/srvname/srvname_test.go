package srvname

import (
	"errors"
	"github.com/portmapd/portmapd/netid"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		qname string
		want  Query
		ok    bool
	}{
		{"backup.example.com.", Query{Name: "backup.example.com"}, true},
		{"_tcp.backup.example.com", Query{Name: "backup.example.com", Proto: "tcp"}, true},
		{"_UDP.Backup.Example.com.", Query{Name: "Backup.Example.com", Proto: "udp"}, true},
		{"_tcp.me@example.com.", Query{Name: "me@example.com", Proto: "tcp"}, true},
		{"_v2._udp.portmapper.oncrpc.alt.", Query{Name: "portmapper.oncrpc.alt", Proto: "udp", Vers: 2, HasVers: true}, true},
		{"_v3._tcp.100003.oncrpc.alt", Query{Name: "100003.oncrpc.alt", Proto: "tcp", Vers: 3, HasVers: true}, true},
		{"_tcp.nfs.oncrpc.alt.", Query{Name: "nfs.oncrpc.alt", Proto: "tcp"}, true},
		{"_v3.nfs.oncrpc.alt.", Query{}, false},          // no protocol
		{"_v3._tcp.backup.example.com.", Query{}, false}, // a version of a named service
		{"_vx._tcp.nfs.oncrpc.alt.", Query{}, false},
		{"_sctp.backup.example.com.", Query{}, false},
		{"_tcp.", Query{}, false},
		{".", Query{}, false},
	}
	for _, tc := range tests {
		got, err := Parse(tc.qname)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, ok %v", tc.qname, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrNotOurs) {
			t.Errorf("Parse(%q): %v is not ErrNotOurs", tc.qname, err)
		}
		if err == nil {
			if again, err := Parse(got.String()); err != nil || again != got {
				t.Errorf("Parse(%q) = %+v, %v", got.String(), again, err)
			}
		}
	}
}

func TestAccepts(t *testing.T) {
	v2udp := Query{Name: "portmapper.oncrpc.alt", Proto: "udp", Vers: 2, HasVers: true}
	any := Query{Name: "backup.example.com"}
	tests := []struct {
		q     Query
		proto string
		rpc   bool
		vers  uint32
		want  bool
	}{
		{v2udp, "udp", true, 2, true},
		{v2udp, "udp", true, 3, false},
		{v2udp, "tcp", true, 2, false},
		{v2udp, "udp", false, 2, false},
		{any, "udp", false, 0, true},
		{any, "tcp", true, 4, true},
		{Query{Name: "x", Proto: "tcp"}, "udp", false, 0, false},
	}
	for _, tc := range tests {
		if got := tc.q.Accepts(netid.ID(tc.proto), tc.rpc, tc.vers); got != tc.want {
			t.Errorf("%v.Accepts(%s, %v, %d) = %v", tc.q, tc.proto, tc.rpc, tc.vers, got)
		}
	}
}
