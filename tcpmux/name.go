package tcpmux

import (
	"errors"
	"io"
	"strings"

	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/tcpmux/handoff"
)

// maxLine is the longest request line read: the longest registered name
// and CRLF. A client that sends more without a line end is cut off.
const maxLine = handoff.MaxName + 2

// helpName is the name RFC 1078 reserves for the list of services.
const helpName = "help"

// Errors of reading a request line.
var (
	errTooLong = errors.New("tcpmux: service name longer than any registered name")
	errBadName = errors.New("tcpmux: not a service name")
)

// readName reads a request line from r one byte at a time, so that
// nothing past its end is consumed: a name and CRLF (a bare LF is taken
// too, as inetd takes it). It returns the name in lower case, or
// errTooLong once maxLine bytes have come without a line end, or
// errBadName for a line that cannot be a registered name (nor HELP), or
// r's error.
func readName(r io.Reader) (string, error) {
	var line [maxLine]byte
	n := 0
	for {
		if n == maxLine {
			return "", errTooLong
		}
		if _, err := io.ReadFull(r, line[n:n+1]); err != nil {
			return "", err
		}
		if line[n] == '\n' {
			break
		}
		n++
	}
	name := strings.ToLower(strings.TrimSuffix(string(line[:n]), "\r"))
	if registry.ValidateName(name) != nil {
		return "", errBadName
	}
	return name, nil
}
