package main

import (
	"bytes"
	"testing"

	"github.com/portmapd/portmapd/xdr"
)

func TestFormatEdges(t *testing.T) {
	noNames := func(uint32) string { return "" }
	tests := []struct {
		name  string
		write func(*bytes.Buffer) error
		want  string
	}{
		{"pmap empty", func(b *bytes.Buffer) error { return writePmapDump(b, nil, noNames) }, noRegistrations},
		{"rpcb empty", func(b *bytes.Buffer) error { return writeRpcbDump(b, nil, noNames) }, noRegistrations},
		{"summary empty", func(b *bytes.Buffer) error { return writeRpcbSummary(b, nil, noNames) }, noRegistrations},
		{"pmap other protocol", func(b *bytes.Buffer) error {
			return writePmapDump(b, []xdr.Mapping{{Prog: 1, Vers: 2, Prot: 132, Port: 3}}, noNames)
		}, "   program vers proto   port  service\n         1    2   132      3\n"},
		{"rpcb no name", func(b *bytes.Buffer) error {
			return writeRpcbDump(b, []xdr.RPCB{{Prog: 7, Vers: 1, Netid: "udp", Addr: "0.0.0.0.1.2", Owner: "unknown"}}, noNames)
		}, "   program version netid     address                service    owner\n         7    1    udp       0.0.0.0.1.2            -          unknown\n"},
		{"pmap rows as rpcinfo converts them", func(b *bytes.Buffer) error {
			return writeRpcbDump(b, pmapRows([]xdr.Mapping{{Prog: 100000, Vers: 2, Prot: 6, Port: 111}, {Prog: 9, Vers: 1, Prot: 99, Port: 258}}), noNames)
		}, "   program version netid     address                service    owner\n" +
			"    100000    2    tcp       0.0.0.0.0.111          -          unknown\n" +
			"         9    1        99    0.0.0.0.1.2            -          unknown\n"},
		{"summary long versions", func(b *bytes.Buffer) error {
			var rows []xdr.RPCB
			for v := uint32(1); v <= 6; v++ {
				rows = append(rows, xdr.RPCB{Prog: 5, Vers: v, Netid: "tcp", Owner: "1000"})
			}
			return writeRpcbSummary(b, rows, noNames)
		}, "   program version(s) netid(s)                         service     owner\n" +
			"         5  6,5,4,3,2,1 tcp                              -           1000\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.write(&b); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got:\n%q\nwant:\n%q", b.String(), tt.want)
			}
		})
	}
}
