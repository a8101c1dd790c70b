// Package netid is the one vocabulary of transports and addresses that
// every part of portmapd speaks: how a netid, an IP protocol number and a
// universal address are spelled, parsed and printed, and what
// /etc/netconfig says of each transport. No other package defines a netid,
// maps a protocol number to one, or splits or writes "0.0.0.0.0.111", so
// that a rule fixed here is fixed for both faces, the registry, its
// persistence and the command-line tools.
//
// A universal address (uaddr) is read in two ways:
//
//   - strictly, as the registry checks what it is asked to hold
//     (CheckUaddr, ParseUaddr, UaddrPort): an IP address of the netid's
//     family followed by two decimal port fields of 0 to 255;
//   - leniently, the way libtirpc's uaddr2taddr reads one
//     (ParseUaddrLenient, Uaddr2Taddr), so that RPCBPROC_UADDR2TADDR and
//     address merging answer what rpcbind answers, however odd the input.
//
// It imports nothing of portmapd. Subpackage ifaddrs lists the host's
// interface addresses, the other thing both faces need to say which
// addresses are this host's.
package netid

// An ID is a netid, the name /etc/netconfig gives a transport: "udp",
// "tcp", "udp6", "tcp6", "local", ... It holds whatever a peer sent; the
// registry matches netids case-insensitively, as rpcbind does (Lower),
// while netconfig lookups are exact, as getnetconfigent's are (Lookup).
type ID string

// Netids of Debian's /etc/netconfig.
const (
	UDP  ID = "udp"
	TCP  ID = "tcp"
	UDP6 ID = "udp6"
	TCP6 ID = "tcp6"
	// Local is the AF_LOCAL stream transport the portmapper serves on
	// /run/rpcbind.sock; Unix is netconfig's other name for it, which
	// libtirpc treats alike.
	Local ID = "local"
	Unix  ID = "unix"
	// RawIP is listed by netconfig but reaches no RPC service.
	RawIP ID = "rawip"
)

// Loopback netids of other systems' /etc/netconfig (Solaris, the BSDs),
// which a registration copied from such a host may carry.
const (
	TicotsOrd ID = "ticotsord"
	Ticots    ID = "ticots"
	Ticlts    ID = "ticlts"
)

// Lower returns id in lower case. It does not allocate when id already is,
// so that the registry's lookups can normalise every netid they are asked
// about.
func (id ID) Lower() ID {
	for i := 0; i < len(id); i++ {
		if c := id[i]; 'A' <= c && c <= 'Z' {
			return ID(lowerFrom(string(id), i))
		}
	}
	return id
}

// lowerFrom lowers s, whose first upper-case byte is at i.
func lowerFrom(s string, i int) string {
	b := []byte(s)
	for ; i < len(b); i++ {
		if c := b[i]; 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// IsIP reports whether id is one of the IP netids udp, tcp, udp6 and tcp6,
// whose addresses are IP universal addresses. It is exact: lower id first
// to match in any case.
func (id ID) IsIP() bool {
	switch id {
	case UDP, TCP, UDP6, TCP6:
		return true
	}
	return false
}

// IsLocal reports whether id is local or unix, the netids whose address is
// a socket path. It is exact, like IsIP.
func (id ID) IsLocal() bool { return id == Local || id == Unix }

// IsLoopback reports whether id names a loopback transport under any
// system's netconfig: local, unix, ticotsord, ticots or ticlts. It is
// exact, like IsIP.
func (id ID) IsLoopback() bool {
	switch id {
	case Local, Unix, TicotsOrd, Ticots, Ticlts:
		return true
	}
	return false
}

// Is6 reports whether id is an IPv6 netid, udp6 or tcp6. It is exact,
// like IsIP.
func (id ID) Is6() bool { return id == UDP6 || id == TCP6 }

// IP protocol numbers (IPPROTO_TCP, IPPROTO_UDP), as a portmap v2 mapping
// carries them in its prot field. They live here rather than in xdr
// because choosing the netid of a mapping is a question of vocabulary, not
// of byte layout: xdr.Mapping carries the number as it came, and Proto and
// FromProto are its only readers.
const (
	ProtoTCP = 6
	ProtoUDP = 17
)

// FromProto returns the netid of a portmap v2 protocol: tcp for
// ProtoTCP, udp for ProtoUDP. Version 2 describes only IPv4, so no other
// number has one.
func FromProto(prot uint32) (ID, bool) {
	switch prot {
	case ProtoTCP:
		return TCP, true
	case ProtoUDP:
		return UDP, true
	}
	return "", false
}

// Proto returns the portmap v2 protocol of a netid in any case: ProtoTCP
// for tcp, ProtoUDP for udp. Other netids have no v2 view.
func (id ID) Proto() (uint32, bool) {
	switch id.Lower() {
	case TCP:
		return ProtoTCP, true
	case UDP:
		return ProtoUDP, true
	}
	return 0, false
}
