//go:build !linux

package peer

import (
	"fmt"
	"net"
	"runtime"
)

// Credentials reports ErrNoCred: only Linux's peer credentials are read.
func Credentials(net.Conn) (Cred, error) {
	return Cred{}, fmt.Errorf("%w on %s", ErrNoCred, runtime.GOOS)
}

// PidFD reports ErrNoCred: pidfds are Linux's.
func PidFD(net.Conn) (int, error) {
	return -1, fmt.Errorf("%w on %s", ErrNoCred, runtime.GOOS)
}

// OwnNetNS reports ErrNoCred: network namespace cookies are Linux's.
func OwnNetNS() (uint64, error) {
	return 0, fmt.Errorf("%w on %s", ErrNoCred, runtime.GOOS)
}
