package registry

import (
	"strconv"
	"strings"
)

// Netids of the transports a portmapper serves (/etc/netconfig).
const (
	NetidUDP   = "udp"
	NetidTCP   = "tcp"
	NetidUDP6  = "udp6"
	NetidTCP6  = "tcp6"
	NetidLocal = "local"
)

// IP protocol numbers of the v2 view.
const (
	ProtoTCP = 6
	ProtoUDP = 17
)

// UaddrPort returns the port of an IP universal address, the number formed
// by its last two dot-separated fields (p1*256 + p2), as rpcbind parses it.
func UaddrPort(uaddr string) (uint16, bool) {
	i := strings.LastIndexByte(uaddr, '.')
	if i <= 0 {
		return 0, false
	}
	j := strings.LastIndexByte(uaddr[:i], '.')
	if j < 0 {
		return 0, false
	}
	hi, err1 := strconv.ParseUint(uaddr[j+1:i], 10, 8)
	lo, err2 := strconv.ParseUint(uaddr[i+1:], 10, 8)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return uint16(hi<<8 | lo), true
}

// wildcardUaddr4 is how a v2 registration appears in the v3 list.
func wildcardUaddr4(port uint32) string {
	return "0.0.0.0." + strconv.Itoa(int(port>>8&0xff)) + "." + strconv.Itoa(int(port&0xff))
}

// lowerASCII returns s in lower case without allocating when it already is.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}
