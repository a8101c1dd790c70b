package lifetime

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

// Proto is a socket's protocol as the table keys it.
type Proto uint8

// Protocols.
const (
	TCP Proto = iota + 1
	UDP
)

type portKey struct {
	proto Proto
	port  uint16
}

// A Table is the set of bound sockets: TCP and UDP ports of either family,
// and AF_UNIX paths.
type Table struct {
	ports map[portKey]bool
	paths map[string]bool
}

func newTable() *Table {
	return &Table{ports: map[portKey]bool{}, paths: map[string]bool{}}
}

// Bound reports whether a socket of proto is bound to port.
func (t *Table) Bound(proto Proto, port uint16) bool { return t.ports[portKey{proto, port}] }

// BoundPath reports whether an AF_UNIX socket is bound to path.
func (t *Table) BoundPath(path string) bool { return t.paths[path] }

// ReadTable reads the socket table of the calling process's network
// namespace from procRoot/net/{tcp,tcp6,udp,udp6,unix}: one read of each
// file per check, whatever the number of registrations.
func ReadTable(procRoot string) (*Table, error) {
	t := newTable()
	for _, f := range []struct {
		name  string
		proto Proto
	}{{"tcp", TCP}, {"tcp6", TCP}, {"udp", UDP}, {"udp6", UDP}} {
		b, err := os.ReadFile(procRoot + "/net/" + f.name)
		if err != nil {
			if os.IsNotExist(err) && strings.HasSuffix(f.name, "6") {
				continue // no IPv6
			}
			return nil, err
		}
		parseInet(b, f.proto, t)
	}
	if b, err := os.ReadFile(procRoot + "/net/unix"); err == nil {
		parseUnix(b, t)
	}
	return t, nil
}

// TCP states that do not hold a port for a service: TIME_WAIT and CLOSE.
const (
	tcpTimeWait = 0x06
	tcpClose    = 0x07
)

// parseInet reads /proc/net/{tcp,udp}[6]: after a header line, each line
// has "sl local_address rem_address st ...", local_address being
// HEXADDR:HEXPORT.
func parseInet(b []byte, proto Proto, t *Table) {
	procNetRows(b, func(f []string) {
		if len(f) < 4 {
			return
		}
		i := strings.LastIndexByte(f[1], ':')
		if i < 0 {
			return
		}
		port, err := strconv.ParseUint(f[1][i+1:], 16, 16)
		if err != nil || port == 0 {
			return
		}
		if proto == TCP {
			st, err := strconv.ParseUint(f[3], 16, 8)
			if err != nil || st == tcpTimeWait || st == tcpClose {
				return
			}
		}
		t.ports[portKey{proto, uint16(port)}] = true
	})
}

// procNetRows calls fn with the fields of each row of a /proc/net table,
// skipping its header line.
func procNetRows(b []byte, fn func(fields []string)) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 4096), 1<<20)
	for first := true; sc.Scan(); first = false {
		if !first {
			fn(strings.Fields(sc.Text()))
		}
	}
}

// parseUnix reads /proc/net/unix, whose eighth column, when present, is
// the bound path ("@name" for the abstract namespace).
func parseUnix(b []byte, t *Table) {
	procNetRows(b, func(f []string) {
		if len(f) >= 8 {
			t.paths[f[7]] = true
		}
	})
}
