package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

// TestRpcbFormats checks the writers of plain rpcinfo's table and of
// rpcinfo -s against the real rpcinfo: the in-process portmapd is given
// the table rpcbind had (its own entries on tcp6, udp6, tcp, udp and
// local, then record.sh's v2 registrations), its v3 DUMP is fetched, and
// the writer's output must equal rpcinfo's. The commands for these views
// come with portmapctl's v3/v4 support; the formats are ready for them.
func TestRpcbFormats(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "rpcinfo", "rpcb-*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	g := &globals{rpcFile: rpcFile}
	for _, file := range files {
		want := readTranscript(t, file)
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			s := startServer(t, serverOptions{})
			p := &rpcbind.Portmapper{Registry: s.Registry}
			for _, e := range p.SelfEntries([]rpcbind.Endpoint{
				{Netid: "tcp", Addr: "0.0.0.0.0.111"},
				{Netid: "udp", Addr: "0.0.0.0.0.111"},
				{Netid: "tcp6", Addr: "::.0.111"},
				{Netid: "udp6", Addr: "::.0.111"},
				{Netid: "local", Addr: "/run/rpcbind.sock"},
			}) {
				if ok, err := s.Registry.Set(internal, e); !ok || err != nil {
					t.Fatalf("registering %+v: %v %v", e, ok, err)
				}
			}
			if want.State == "registered" {
				// The v2 part of the "registered" state, without the
				// portmapper's entries that addSelf would add again.
				reg := startServer(t, serverOptions{})
				setState(t, reg, "registered", false)
				list, err := dumpV2(t, reg)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range list[6:] {
					s.addMapping(t, m)
				}
			}
			c, err := rpcbind.Dial(context.Background(), "tcp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var rows []xdr.RPCB
			err = c.Call(context.Background(), xdr.PmapProg, xdr.RpcbVers, xdr.RpcbProcDump, nil, func(d *xdr.Decoder) {
				rows = xdr.DecodeList(d, (*xdr.RPCB).Decode)
			})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if strings.Contains(want.Command, " -s ") {
				err = writeRpcbSummary(&out, rows, g.programName)
			} else {
				err = writeRpcbDump(&out, rows, g.programName)
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != want.Stdout {
				t.Errorf("got:\n%s\nwant (%s):\n%s", out.String(), want.Command, want.Stdout)
			}
		})
	}
}

func dumpV2(t *testing.T, s *testServer) ([]xdr.Mapping, error) {
	t.Helper()
	c, err := rpcbind.Dial(context.Background(), "tcp", s.Addr())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Dump(context.Background())
}

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
