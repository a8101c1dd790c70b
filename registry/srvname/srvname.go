// Package srvname is how the registry's names are asked for in the DNS:
// the one scheme that portmapd's DNS face answers and that its Go client
// resolves by, so that both give the same instances for a name.
//
// A named service with a TCP or UDP port, NAME (backup.example.com,
// me@example.com: the name as registered, any case), answers:
//
//	NAME            A, AAAA   the host's addresses
//	NAME            SRV       0 0 PORT HOST. for each instance, either protocol
//	_tcp.NAME       SRV       the same, TCP instances only
//	_udp.NAME       SRV       the same, UDP instances only
//
// RPC programs are named under oncrpc.alt, by their /etc/rpc name or their
// number, as in the HTTP face, and add a version:
//
//	_vVERS._PROTO.NAME.oncrpc.alt   SRV   0 0 PORT HOST. of version VERS on PROTO (tcp or udp)
//
// so that _v2._udp.portmapper.oncrpc.alt is SRV 0 0 111 HOST. Only
// instances whose checks pass are answered.
package srvname

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
)

// ErrNotOurs reports a DNS name outside the scheme.
var ErrNotOurs = errors.New("not a name of portmapd's scheme")

// A Query is what a DNS name asks for.
type Query struct {
	// Name is the registry's name: backup.example.com, nfs.oncrpc.alt.
	Name string
	// Proto is tcp or udp, or empty for either.
	Proto netid.ID
	// Vers is the RPC version asked for, when HasVers.
	Vers    uint32
	HasVers bool
}

// Parse reads a DNS name (with or without its final dot, in any case)
// under the scheme.
func Parse(qname string) (Query, error) {
	name := strings.TrimSuffix(qname, ".")
	bad := func(why string) (Query, error) {
		return Query{}, fmt.Errorf("%w: %q: %s", ErrNotOurs, qname, why)
	}
	var q Query
	label, rest, _ := strings.Cut(name, ".")
	if v, ok := strings.CutPrefix(strings.ToLower(label), "_v"); ok {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return bad("a version label is _v and a number")
		}
		q.Vers, q.HasVers = uint32(n), true
		name = rest
		label, rest, _ = strings.Cut(name, ".")
	}
	switch strings.ToLower(label) {
	case "_tcp":
		q.Proto, name = netid.TCP, rest
	case "_udp":
		q.Proto, name = netid.UDP, rest
	default:
		if q.HasVers {
			return bad("a version label is followed by _tcp or _udp")
		}
	}
	if err := registry.ValidateName(name); err != nil {
		return bad(err.Error())
	}
	if q.HasVers && !registry.IsReservedName(name) {
		return bad("versions are for RPC programs, under " + registry.ReservedZone)
	}
	q.Name = name
	return q, nil
}

// Accepts reports whether an instance on protocol proto (tcp or udp),
// and for an RPC program of version vers, answers q. Its name is the
// caller's to match.
func (q Query) Accepts(proto netid.ID, rpc bool, vers uint32) bool {
	if q.Proto != "" && proto != q.Proto {
		return false
	}
	return !q.HasVers || rpc && vers == q.Vers
}

// String returns q's DNS name, with its final dot.
func (q Query) String() string {
	var b strings.Builder
	if q.HasVers {
		b.WriteString("_v" + strconv.FormatUint(uint64(q.Vers), 10) + ".")
	}
	if q.Proto != "" {
		b.WriteString("_" + string(q.Proto) + ".")
	}
	b.WriteString(q.Name)
	b.WriteString(".")
	return b.String()
}
