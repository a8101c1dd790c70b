package main

// rpcinfo's output formats, reproduced from its observable behaviour
// (recorded in testdata/rpcinfo). The writers here know nothing of
// transports or of the client: they take decoded rows and a function that
// names a program, so each of rpcinfo's views is one writer, whichever way
// its data was fetched. The list views write through a buffer straight to
// w, so that a large DUMP is not held a second time as text.

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/xdr"
)

// A nameFunc returns the /etc/rpc name of a program, or "".
type nameFunc func(prog uint32) string

// orDash is the name of prog, or "-" when it has none, as rpcinfo's
// tables print it.
func (name nameFunc) orDash(prog uint32) string {
	if n := name(prog); n != "" {
		return n
	}
	return "-"
}

// noRegistrations is what rpcinfo prints for an empty list.
const noRegistrations = "No remote programs registered.\n"

// writeList prints one of rpcinfo's lists: header and a line per row,
// written by line, or noRegistrations when there are no rows.
func writeList[T any](w io.Writer, header string, rows []T, line func(*bufio.Writer, T)) error {
	b := bufio.NewWriter(w)
	if len(rows) == 0 {
		b.WriteString(noRegistrations)
	} else {
		b.WriteString(header)
		for _, r := range rows {
			line(b, r)
		}
	}
	return b.Flush()
}

// writePmapDump prints a v2 DUMP as `rpcinfo -p` does.
func writePmapDump(w io.Writer, list []xdr.Mapping, name nameFunc) error {
	return writeList(w, "   program vers proto   port  service\n", list, func(b *bufio.Writer, m xdr.Mapping) {
		// Fields run together when a number is wider than its
		// column, exactly as rpcinfo's printf does.
		fmt.Fprintf(b, "%10d%5d", m.Prog, m.Vers)
		fmt.Fprintf(b, "%6s", protoName(m.Prot))
		fmt.Fprintf(b, "%7d", m.Port)
		if n := name(m.Prog); n != "" {
			fmt.Fprintf(b, "  %s", n)
		}
		b.WriteByte('\n')
	})
}

// pmapRows converts a v2 DUMP as rpcinfo does when the server speaks only
// version 2: netid from the protocol, the wildcard address and owner
// "unknown".
func pmapRows(list []xdr.Mapping) []xdr.RPCB {
	rows := make([]xdr.RPCB, 0, len(list))
	for _, m := range list {
		id, ok := netid.FromProto(m.Prot)
		if !ok {
			id = netid.ID(fmt.Sprintf("%6d", m.Prot))
		}
		rows = append(rows, xdr.RPCB{
			Prog:  m.Prog,
			Vers:  m.Vers,
			Netid: string(id),
			Addr:  netid.WildcardUaddr(netid.UDP, uint16(m.Port)),
			Owner: "unknown",
		})
	}
	return rows
}

// writeRpcbDump prints a v3/v4 DUMP as plain `rpcinfo [host]` does.
func writeRpcbDump(w io.Writer, rows []xdr.RPCB, name nameFunc) error {
	return writeList(w, "   program version netid     address                service    owner\n", rows, func(b *bufio.Writer, r xdr.RPCB) {
		fmt.Fprintf(b, "%10d%5d    %-9s %-22s %-10s %s\n", r.Prog, r.Vers, r.Netid, r.Addr, name.orDash(r.Prog), r.Owner)
	})
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
	return writeList(w, "   program version(s) netid(s)                         service     owner\n", order, func(b *bufio.Writer, s *summary) {
		fmt.Fprintf(b, "%10d  ", s.prog)
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
		fmt.Fprintf(b, "%-32s %-11s %s\n", joinNetids(s.netids), name.orDash(s.prog), s.owner)
	})
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

// writeAddrList prints a v4 GETADDRLIST answer as `rpcinfo -l` does.
func writeAddrList(w io.Writer, prog, vers uint32, list []xdr.RPCBEntry, name nameFunc) error {
	n := name.orDash(prog)
	return writeList(w, "   program vers  tp_family/name/class    address\t\t  service\n", list, func(b *bufio.Writer, e xdr.RPCBEntry) {
		class := "cots_ord"
		switch e.Semantics {
		case netid.TpiClts:
			class = "clts"
		case netid.TpiCots:
			class = "cots"
		}
		fmt.Fprintf(b, "%10d%3d    %-24s%-24s %-13s\n", prog, vers, e.ProtoFmly+"/"+e.Proto+"/"+class+" ", e.MAddr, n)
	})
}

// Column headers of rpcinfo -m, per version.
var (
	statHdr2 = []string{"NULL", "SET", "UNSET", "GETPORT", "DUMP", "CALLIT"}
	statHdr3 = []string{"NULL", "SET", "UNSET", "GETADDR", "DUMP", "CALLIT", "TIME", "U2T", "T2U"}
	statHdr4 = []string{"NULL", "SET", "UNSET", "GETADDR", "DUMP", "CALLIT", "TIME",
		"U2T", "T2U", "VERADDR", "INDRECT", "GETLIST", "GETSTAT"}
)

// statSpaces is rpcinfo's spaces(): n blanks, none when n is out of the
// range of its 64-blank buffer.
func statSpaces(n int) string {
	if n <= 0 || n > 64 {
		return ""
	}
	return strings.Repeat(" ", n)
}

// statRow appends rpcinfo -m's header line and counter line for the
// procedures first..last of one version: each column a tab stop wide
// enough for its counter, SET and UNSET as successes/calls, GETADDR (or
// GETPORT) as the successes of the address list/calls, CALLIT as the
// successes of the remote-call list/calls. Version 4's GETADDR calls
// include GETADDRLIST's, as rpcbind counts its successes among GETADDR's.
func statRow(hdr, vals *strings.Builder, names []string, s *xdr.VersionStat, v4 bool, first, last int) {
	const tab = 8
	for i := first; i <= last; i++ {
		var field string
		switch i {
		case xdr.RpcbProcSet:
			field = fmt.Sprintf("%d/", s.SetInfo)
		case xdr.RpcbProcUnset:
			field = fmt.Sprintf("%d/", s.UnsetInfo)
		case xdr.RpcbProcGetaddr:
			var n int32
			for _, a := range s.AddrInfo {
				n += a.Success
			}
			field = fmt.Sprintf("%d/", n)
		case xdr.RpcbProcCallit:
			var n int32
			for _, r := range s.RmtInfo {
				n += r.Success
			}
			field = fmt.Sprintf("%d/", n)
		}
		calls := s.Info[i]
		if v4 && i == xdr.RpcbProcGetaddr {
			calls += s.Info[xdr.RpcbProcGetaddrlist]
		}
		field += fmt.Sprint(calls)
		width := tab * (1 + len(field)/tab)
		hdr.WriteString(names[i] + statSpaces(width-len(names[i])))
		vals.WriteString(field + statSpaces(width-len(field)))
	}
}

// statColumn is the first column of rpcinfo -m's per-program lists: the
// name of prog, else its number as rpcinfo's int.
func (name nameFunc) statColumn(prog uint32) string {
	if n := name(prog); n != "" {
		return fmt.Sprintf("%-16s", n)
	}
	return fmt.Sprintf("%-16d", int32(prog))
}

// writeRmtCallStat is rpcinfo's print_rmtcallstat.
func writeRmtCallStat(b *strings.Builder, list []xdr.RmtCallStat, v4 bool, name nameFunc) {
	if v4 {
		b.WriteString("prog\t\tvers\tproc\tnetid\tindirect success failure\n")
	} else {
		b.WriteString("prog\t\tvers\tproc\tnetid\tsuccess\tfailure\n")
	}
	for _, r := range list {
		b.WriteString(name.statColumn(r.Prog))
		fmt.Fprintf(b, "%d\t%d\t%s\t", int32(r.Vers), int32(r.Proc), r.Netid)
		if v4 {
			fmt.Fprintf(b, "%d\t ", r.Indirect)
		}
		fmt.Fprintf(b, "%d\t%d\n", r.Success, r.Failure)
	}
}

// writeAddrStat is rpcinfo's print_getaddrstat.
func writeAddrStat(b *strings.Builder, list []xdr.AddrStat, name nameFunc) {
	b.WriteString("prog\t\tvers\tnetid\t  success\tfailure\n")
	for _, a := range list {
		b.WriteString(name.statColumn(a.Prog))
		fmt.Fprintf(b, "%d\t%s\t  %-12d\t%d\n", int32(a.Vers), a.Netid, a.Success, a.Failure)
	}
}

// writeStats prints a v4 GETSTAT answer (versions 2, 3 and 4) as
// `rpcinfo -m` does.
func writeStats(w io.Writer, st *[xdr.StatVersions]xdr.VersionStat, name nameFunc) error {
	var b strings.Builder
	section := func(title string, names []string, s *xdr.VersionStat, rmtTitle, addrTitle string) {
		var hdr, vals strings.Builder
		statRow(&hdr, &vals, names, s, false, 0, len(names)-1)
		fmt.Fprintf(&b, "%s\n%s\n%s\n\n", title, hdr.String(), vals.String())
		if s.Info[xdr.RpcbProcCallit] != 0 {
			b.WriteString(rmtTitle + "\n")
			writeRmtCallStat(&b, s.RmtInfo, false, name)
			b.WriteByte('\n')
		}
		if s.Info[xdr.RpcbProcGetaddr] != 0 {
			b.WriteString(addrTitle + "\n")
			writeAddrStat(&b, s.AddrInfo, name)
			b.WriteByte('\n')
		}
	}
	section("PORTMAP (version 2) statistics", statHdr2, &st[0],
		"PMAP_RMTCALL call statistics", "PMAP_GETPORT call statistics")
	section("RPCBIND (version 3) statistics", statHdr3, &st[1],
		"RPCB_RMTCALL (version 3) call statistics", "RPCB_GETADDR (version 3) call statistics")
	s := &st[2]
	b.WriteString("RPCBIND (version 4) statistics\n")
	for _, r := range [][2]int{{0, 8}, {9, 12}} {
		var hdr, vals strings.Builder
		statRow(&hdr, &vals, statHdr4, s, true, r[0], r[1])
		fmt.Fprintf(&b, "%s\n%s\n", hdr.String(), vals.String())
	}
	if s.Info[xdr.RpcbProcCallit] != 0 || s.Info[xdr.RpcbProcIndirect] != 0 {
		b.WriteString("\nRPCB_RMTCALL (version 4) call statistics\n")
		writeRmtCallStat(&b, s.RmtInfo, true, name)
	}
	if s.Info[xdr.RpcbProcGetaddr] != 0 {
		b.WriteString("\nRPCB_GETADDR (version 4) call statistics\n")
		writeAddrStat(&b, s.AddrInfo, name)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
