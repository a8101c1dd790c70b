package tcpmux

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// A RefusedError is a TCPMUX server's refusal of a name: the reason it
// gave after its "-".
type RefusedError struct {
	Name, Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("tcpmux: %s refused: %s", e.Name, e.Reason)
}

// maxReply bounds the reply line Dial reads.
const maxReply = 512

// Dial connects to the TCPMUX server at addr (host:port, or a host, for
// DefaultPort) and asks for the service name, as RFC 1078's client does.
// On "+" it returns the connection, on which the service's protocol
// starts; on "-" a *RefusedError. The reply is read one byte at a time,
// so that nothing the service sends after it is lost; ctx bounds dialling
// and the reply.
func Dial(ctx context.Context, addr, name string) (net.Conn, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), strconv.Itoa(DefaultPort))
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcpmux: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	reply, err := askFor(c, name)
	if !stop() || err != nil {
		c.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("tcpmux: %s at %s: %w", name, addr, err)
	}
	if reply[0] != '+' {
		c.Close()
		return nil, &RefusedError{Name: name, Reason: reply[1:]}
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// askFor sends name and returns the reply line without its line end.
func askFor(c io.ReadWriter, name string) (string, error) {
	if _, err := io.WriteString(c, name+"\r\n"); err != nil {
		return "", err
	}
	var line []byte
	var b [1]byte
	for len(line) < maxReply {
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return "", err
		}
		if b[0] == '\n' {
			reply := strings.TrimSuffix(string(line), "\r")
			if reply == "" || reply[0] != '+' && reply[0] != '-' {
				return "", fmt.Errorf("not a TCPMUX reply: %q", reply)
			}
			return reply, nil
		}
		line = append(line, b[0])
	}
	return "", fmt.Errorf("no reply line within %d bytes", maxReply)
}
