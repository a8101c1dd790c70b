package httpmap

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
)

// marshalInstance is what encoding/json writes for in, as the listing
// once did.
func marshalInstance(in Instance) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(in)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), err
}

func TestAppendInstanceJSON(t *testing.T) {
	uid, gid := uint32(1000), uint32(0)
	tests := []struct {
		name string
		in   Instance
	}{
		{"zero", Instance{}},
		{"named, every field", Instance{Service: "App.Example.com", UID: &uid, UserName: "alice", GID: &gid, PID: 42, StartTime: 7, Prog: "/usr/bin/web,server", Port: "/run/app/<sock>&\"x\".sock", Protocol: netid.Unix, Exclusive: true, Public: true, Since: time.Date(2026, 5, 4, 12, 0, 0, 123456789, time.UTC), Health: "warning", HealthOutput: "HTTP 429", Checks: "tcp http=/healthz interval=5s", TCPMux: true, MuxHelp: true}},
		{"rpc", Instance{Service: "100003.oncrpc.alt", UID: &gid, Port: "2049", Protocol: netid.UDP, Since: time.Date(2026, 5, 4, 12, 0, 0, 0, time.FixedZone("x", 3600)), RPC: &RPCInfo{Program: 100003, Name: "nfs", Version: 3, Netid: "udp6", Address: "::.8.1", Owner: "superuser"}, Health: "passing"}},
		{"rpc without a name", Instance{RPC: &RPCInfo{Program: 1, Netid: "x", Address: "a\x00b\x1f\x7f", Owner: "unknown"}}},
		{"escapes", Instance{Service: "\"\\\b\f\n\r\t\x01<>&\u2028\u2029é\xff\xc3", Port: "\xed\xa0\x80"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, werr := marshalInstance(tt.in)
			got, err := appendInstanceJSON(nil, &tt.in)
			if (err != nil) != (werr != nil) || werr == nil && !bytes.Equal(got, want) {
				t.Errorf("got  %s (%v)\nwant %s (%v)", got, err, want, werr)
			}
		})
	}
	t.Run("year out of range", func(t *testing.T) {
		in := Instance{Since: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
		if _, err := appendInstanceJSON(nil, &in); err == nil {
			t.Error("no error")
		}
	})
}

// FuzzAppendInstanceJSON: for any strings, the instance's JSON is
// encoding/json's.
func FuzzAppendInstanceJSON(f *testing.F) {
	f.Add("app.example.com", "/run/a\"b\\c.sock", "\u2028\xff", int64(0))
	f.Add("", "", "", int64(1e18))
	f.Fuzz(func(t *testing.T, service, port, addr string, nanos int64) {
		in := Instance{Service: service, Port: port, Since: time.Unix(0, nanos).UTC(), RPC: &RPCInfo{Address: addr, Name: service}}
		want, werr := marshalInstance(in)
		got, err := appendInstanceJSON(nil, &in)
		if (err != nil) != (werr != nil) || werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("got  %s (%v)\nwant %s (%v)", got, err, want, werr)
		}
	})
}
