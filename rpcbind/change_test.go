package rpcbind

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/portmapd/portmapd/audit"
	"github.com/portmapd/portmapd/xdr"
)

// TestChangesAudited: every SET and UNSET, of every version and whatever
// its outcome, writes one audit line saying who asked, what and the
// result.
func TestChangesAudited(t *testing.T) {
	h := newHarness(t)
	var buf bytes.Buffer
	h.pm.Audit = audit.New(slog.New(slog.NewTextHandler(&buf, nil)), audit.Options{})
	h.call(root, 3, xdr.RpcbProcSet, rpcbArgs(progT, 1, "udp", "0.0.0.0.8.1")).boolean(t)
	h.call(user1000, 4, xdr.RpcbProcUnset, rpcbArgs(progT, 1, "udp", "")).boolean(t)
	h.call(remoteUDP, 2, xdr.PmapProcSet, func(e *xdr.Encoder) {
		m := xdr.Mapping{Prog: progT, Vers: 2, Prot: 17, Port: 2049}
		m.Encode(e)
	})
	h.call(root, 3, xdr.RpcbProcSet, rpcbArgs(progT, 1, "udp", "not an address")).boolean(t)
	h.call(root, 2, xdr.PmapProcUnset, func(e *xdr.Encoder) { e.Uint32(1) })
	want := []string{
		`op=set vers=3 prog=805240833 prog_vers=1 netid=udp addr=0.0.0.0.8.1 result=done uid=0`,
		`op=unset vers=4 prog=805240833 prog_vers=1 netid=udp addr="" result=unchanged uid=1000`,
		`op=set vers=2 prog=805240833 prog_vers=2 prot=17 port=2049 result=refused err="changes are only accepted from local callers" from=192.0.2.77:40000`,
		`op=set vers=3 prog=805240833 prog_vers=1 netid=udp addr="not an address" result=refused err=`,
		`op=unset vers=2 result=failed err="arguments do not decode"`,
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d audit lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], "msg=audit "+w) {
			t.Errorf("line %d:\n%s\nwant it to contain\n%s", i, lines[i], w)
		}
	}
}
