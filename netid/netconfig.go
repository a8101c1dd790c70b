package netid

// Semantics is a netconfig entry's nc_semantics, the NC_TPI_ value that
// GETADDRLIST's rpcb_entry carries.
type Semantics = uint32

// Transport semantics of <netconfig.h>.
const (
	TpiClts    Semantics = 1 // NC_TPI_CLTS: datagrams
	TpiCots    Semantics = 2 // NC_TPI_COTS: a stream
	TpiCotsOrd Semantics = 3 // NC_TPI_COTS_ORD: a stream with orderly release
	TpiRaw     Semantics = 4 // NC_TPI_RAW
)

// A Family is an address family as a Linux struct sockaddr carries it in
// sa_family. These are the numbers of Linux, whichever system portmapd is
// built for: RPCBPROC_UADDR2TADDR answers with a Linux sockaddr, as
// rpcbind on Linux does.
type Family uint16

// Address families of netconfig's protocol families.
const (
	FamilyLocal Family = 1  // AF_LOCAL: protocol family "loopback"
	FamilyInet  Family = 2  // AF_INET: "inet"
	FamilyInet6 Family = 10 // AF_INET6: "inet6"
)

// Sizes of the Linux socket addresses of each family.
const (
	sizeofSockaddrIn  = 16
	sizeofSockaddrIn6 = 28
	sizeofSockaddrUn  = 110
	sunPathOffset     = 2
)

// SockaddrLen returns the size of the family's struct sockaddr, the maxlen
// of a netbuf that holds one; 0 for an unknown family.
func (f Family) SockaddrLen() uint32 {
	switch f {
	case FamilyLocal:
		return sizeofSockaddrUn
	case FamilyInet:
		return sizeofSockaddrIn
	case FamilyInet6:
		return sizeofSockaddrIn6
	}
	return 0
}

// A Netconfig is what /etc/netconfig says of a transport.
type Netconfig struct {
	ID        ID
	Semantics Semantics
	// Visible is the "v" flag: a transport that getnetpath and
	// rpcbind's start-up walk use.
	Visible bool
	// ProtoFmly and Proto are the protocol family and protocol as
	// netconfig spells them ("inet", "tcp"; "-" for none).
	ProtoFmly, Proto string
	// Family is the address family of ProtoFmly; 0 for rawip, whose
	// addresses no portmapper converts.
	Family Family
}

// Lookup returns Debian's /etc/netconfig entry for id, matched exactly, as
// getnetconfigent matches: "TCP" has none.
//
//	udp        tpi_clts      v     inet     udp     -       -
//	tcp        tpi_cots_ord  v     inet     tcp     -       -
//	udp6       tpi_clts      v     inet6    udp     -       -
//	tcp6       tpi_cots_ord  v     inet6    tcp     -       -
//	rawip      tpi_raw       -     inet      -      -       -
//	local      tpi_cots_ord  -     loopback  -      -       -
//	unix       tpi_cots_ord  -     loopback  -      -       -
func Lookup(id ID) (Netconfig, bool) {
	switch id {
	case UDP:
		return Netconfig{id, TpiClts, true, "inet", "udp", FamilyInet}, true
	case TCP:
		return Netconfig{id, TpiCotsOrd, true, "inet", "tcp", FamilyInet}, true
	case UDP6:
		return Netconfig{id, TpiClts, true, "inet6", "udp", FamilyInet6}, true
	case TCP6:
		return Netconfig{id, TpiCotsOrd, true, "inet6", "tcp", FamilyInet6}, true
	case RawIP:
		return Netconfig{id, TpiRaw, false, "inet", "-", 0}, true
	case Local, Unix:
		return Netconfig{id, TpiCotsOrd, false, "loopback", "-", FamilyLocal}, true
	}
	return Netconfig{}, false
}

// IP returns the visible netid of an IP protocol, as netconfig spells it
// ("tcp" or "udp"), over IPv4 or, when v6, IPv6: tcp, udp, tcp6 or udp6.
func IP(proto string, v6 bool) (ID, bool) {
	for _, id := range [...]ID{UDP, TCP, UDP6, TCP6} {
		if nc, _ := Lookup(id); nc.Proto == proto && (nc.Family == FamilyInet6) == v6 {
			return id, true
		}
	}
	return "", false
}
