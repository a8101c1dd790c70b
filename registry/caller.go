package registry

import (
	"net/netip"
	"strconv"
)

// Owner strings rpcbind records for registrations whose caller is not a
// local user with known credentials.
const (
	OwnerSuperuser = "superuser"
	OwnerUnknown   = "unknown"
)

// Transport says how a caller reached the daemon.
type Transport uint8

// Transports.
const (
	// Network is UDP or TCP over IPv4 or IPv6.
	Network Transport = iota
	// Local is an AF_UNIX socket, whose peer credentials come from the
	// kernel.
	Local
	// Internal is the daemon itself: its own initial registrations and
	// state it restores.
	Internal
)

// Cred holds the kernel's account of a local peer (SO_PEERCRED).
type Cred struct {
	UID, GID uint32
	PID      int32
	// NetNS is the cookie of the peer's network namespace, 0 when
	// unknown.
	NetNS uint64
}

// A Caller is who asked for a change, as the front end that received the
// request saw it. The registry decides from it whether the change is
// allowed and who owns the result.
type Caller struct {
	Transport Transport
	// Addr is the peer's address and port, for Network callers.
	Addr netip.AddrPort
	// Cred is the peer's credentials, for Local callers; nil if unknown.
	Cred *Cred
}

// reservedPort is IPPORT_RESERVED: ports below it need privilege to bind.
const reservedPort = 1024

// IsLoopback reports whether c may change registrations without -i: any
// local-socket caller, or exactly 127.0.0.1, ::1 or ::ffff:127.0.0.1, as
// rpcbind allows (not the rest of 127/8).
func (c Caller) IsLoopback() bool {
	switch c.Transport {
	case Local, Internal:
		return true
	}
	a := c.Addr.Addr()
	return a == netip.AddrFrom4([4]byte{127, 0, 0, 1}) ||
		a == netip.IPv6Loopback() ||
		a == netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 127, 15: 1})
}

// Owner returns the owner string rpcbind records for a registration made by
// c: "superuser" for root or for a loopback caller on a reserved port, the
// decimal uid for another local user, "unknown" otherwise. What the request
// itself claims is never used.
func (c Caller) Owner() string {
	switch c.Transport {
	case Internal:
		return OwnerSuperuser
	case Local:
		if c.Cred == nil {
			return OwnerUnknown
		}
		if c.Cred.UID == 0 {
			return OwnerSuperuser
		}
		return strconv.FormatUint(uint64(c.Cred.UID), 10)
	}
	if c.IsLoopback() && c.Addr.Port() < reservedPort {
		return OwnerSuperuser
	}
	return OwnerUnknown
}

// PID returns the caller's process id when the kernel told it, else 0.
func (c Caller) PID() int32 {
	if c.Cred != nil {
		return c.Cred.PID
	}
	return 0
}

// NetNS returns the cookie of the caller's network namespace when the
// kernel told it, else 0.
func (c Caller) NetNS() uint64 {
	if c.Cred != nil {
		return c.Cred.NetNS
	}
	return 0
}
