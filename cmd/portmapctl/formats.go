package main

// rpcinfo's output formats, reproduced from its observable behaviour
// (recorded in testdata/rpcinfo). The writers here know nothing of
// transports or of the client: they take decoded rows and a function that
// names a program, so each of rpcinfo's views is one writer, whichever way
// its data was fetched.

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/portmapd/portmapd/xdr"
)

// A nameFunc returns the /etc/rpc name of a program, or "".
type nameFunc func(prog uint32) string

// noRegistrations is what rpcinfo prints for an empty list.
const noRegistrations = "No remote programs registered.\n"

// writePmapDump prints a v2 DUMP as `rpcinfo -p` does.
func writePmapDump(w io.Writer, list []xdr.Mapping, name nameFunc) error {
	var b strings.Builder
	if len(list) == 0 {
		b.WriteString(noRegistrations)
	} else {
		b.WriteString("   program vers proto   port  service\n")
		for _, m := range list {
			// Fields run together when a number is wider than its
			// column, exactly as rpcinfo's printf does.
			fmt.Fprintf(&b, "%10d%5d", m.Prog, m.Vers)
			fmt.Fprintf(&b, "%6s", protoName(m.Prot))
			fmt.Fprintf(&b, "%7d", m.Port)
			if n := name(m.Prog); n != "" {
				fmt.Fprintf(&b, "  %s", n)
			}
			b.WriteByte('\n')
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// pmapRows converts a v2 DUMP as rpcinfo does when the server speaks only
// version 2: netid from the protocol, the wildcard address and owner
// "unknown".
func pmapRows(list []xdr.Mapping) []xdr.RPCB {
	rows := make([]xdr.RPCB, 0, len(list))
	for _, m := range list {
		netid := protoName(m.Prot)
		if m.Prot != xdr.ProtoTCP && m.Prot != xdr.ProtoUDP {
			netid = fmt.Sprintf("%6d", m.Prot)
		}
		rows = append(rows, xdr.RPCB{
			Prog:  m.Prog,
			Vers:  m.Vers,
			Netid: netid,
			Addr:  fmt.Sprintf("0.0.0.0.%d.%d", (m.Port>>8)&0xff, m.Port&0xff),
			Owner: "unknown",
		})
	}
	return rows
}

// writeRpcbDump prints a v3/v4 DUMP as plain `rpcinfo [host]` does.
func writeRpcbDump(w io.Writer, rows []xdr.RPCB, name nameFunc) error {
	var b strings.Builder
	if len(rows) == 0 {
		b.WriteString(noRegistrations)
	} else {
		b.WriteString("   program version netid     address                service    owner\n")
		for _, r := range rows {
			n := name(r.Prog)
			if n == "" {
				n = "-"
			}
			fmt.Fprintf(&b, "%10d%5d    %-9s %-22s %-10s %s\n", r.Prog, r.Vers, r.Netid, r.Addr, n, r.Owner)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeRpcbSummary prints a v3/v4 DUMP grouped by program, as
// `rpcinfo -s` does: programs in order of first appearance, each with its
// versions and netids most recent first, and the owner of its first entry.
func writeRpcbSummary(w io.Writer, rows []xdr.RPCB, name nameFunc) error {
	type summary struct {
		prog   uint32
		owner  string
		vers   []uint32 // newest first
		netids []string // newest first
	}
	var order []*summary
	byProg := make(map[uint32]*summary)
	for _, r := range rows {
		s := byProg[r.Prog]
		if s == nil {
			s = &summary{prog: r.Prog, owner: r.Owner}
			byProg[r.Prog] = s
			order = append(order, s)
		}
		if !slices.Contains(s.vers, r.Vers) {
			s.vers = append([]uint32{r.Vers}, s.vers...)
		}
		if !slices.Contains(s.netids, r.Netid) {
			s.netids = append([]string{r.Netid}, s.netids...)
		}
	}
	var b strings.Builder
	if len(rows) == 0 {
		b.WriteString(noRegistrations)
	} else {
		b.WriteString("   program version(s) netid(s)                         service     owner\n")
		for _, s := range order {
			fmt.Fprintf(&b, "%10d  ", s.prog)
			vs := make([]string, len(s.vers))
			for i, v := range s.vers {
				// rpcinfo keeps versions in an int.
				vs[i] = fmt.Sprint(int32(v))
			}
			v := strings.Join(vs, ",")
			b.WriteString(v)
			if len(v) < 10 {
				b.WriteString(strings.Repeat(" ", 10-len(v)))
			} else {
				b.WriteByte(' ')
			}
			n := name(s.prog)
			if n == "" {
				n = "-"
			}
			fmt.Fprintf(&b, "%-32s %-11s %s\n", joinNetids(s.netids), n, s.owner)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// joinNetids joins netids with commas into rpcinfo's 255-byte buffer.
func joinNetids(netids []string) string {
	const room = 255
	var b strings.Builder
	left := room
	for i, n := range netids {
		if len(n) > left {
			b.WriteString(n[:left])
			break
		}
		b.WriteString(n)
		if len(n) < left {
			left -= len(n)
		} else {
			break
		}
		if i+1 < len(netids) && left > 1 {
			b.WriteByte(',')
			left--
		}
	}
	return b.String()
}

// pingLine is what rpcinfo prints on standard output for one NULL call.
func pingLine(prog, vers uint32, ok bool) string {
	if ok {
		return fmt.Sprintf("program %d version %d ready and waiting\n", prog, vers)
	}
	return fmt.Sprintf("program %d version %d is not available\n", prog, vers)
}
