package httpmap

import (
	"strconv"
	"unicode/utf8"
)

// appendInstanceJSON appends in as encoding/json writes it, compact and
// without escaping HTML: a listing writes an instance per entry, and
// reflection was half of a JSON listing's time (BenchmarkListing). Its
// registration time is the one thing that can fail, as it does in
// encoding/json: a year outside 0 to 9999.
func appendInstanceJSON(b []byte, in *Instance) ([]byte, error) {
	b = append(b, `{"service":`...)
	b = appendJSONString(b, in.Service)
	b = append(b, `,"uid":`...)
	if in.UID == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendUint(b, uint64(*in.UID), 10)
	}
	if in.UserName != "" {
		b = append(b, `,"user_name":`...)
		b = appendJSONString(b, in.UserName)
	}
	if in.GID != nil {
		b = append(b, `,"gid":`...)
		b = strconv.AppendUint(b, uint64(*in.GID), 10)
	}
	if in.PID != 0 {
		b = append(b, `,"pid":`...)
		b = strconv.AppendInt(b, int64(in.PID), 10)
	}
	if in.StartTime != 0 {
		b = append(b, `,"start_time":`...)
		b = strconv.AppendUint(b, in.StartTime, 10)
	}
	b = append(b, `,"prog":`...)
	b = appendJSONString(b, in.Prog)
	b = append(b, `,"port":`...)
	b = appendJSONString(b, in.Port)
	b = append(b, `,"protocol":`...)
	b = appendJSONString(b, string(in.Protocol))
	if in.Exclusive {
		b = append(b, `,"exclusive":true`...)
	}
	if in.Public {
		b = append(b, `,"public":true`...)
	}
	b = append(b, `,"registered":"`...)
	b, err := in.Since.AppendText(b)
	if err != nil {
		return b, err
	}
	b = append(b, '"')
	if r := in.RPC; r != nil {
		b = append(b, `,"rpc":{"program":`...)
		b = strconv.AppendUint(b, uint64(r.Program), 10)
		if r.Name != "" {
			b = append(b, `,"name":`...)
			b = appendJSONString(b, r.Name)
		}
		b = append(b, `,"version":`...)
		b = strconv.AppendUint(b, uint64(r.Version), 10)
		b = append(b, `,"netid":`...)
		b = appendJSONString(b, string(r.Netid))
		b = append(b, `,"address":`...)
		b = appendJSONString(b, r.Address)
		b = append(b, `,"owner":`...)
		b = appendJSONString(b, r.Owner)
		b = append(b, '}')
	}
	b = append(b, `,"health":`...)
	b = appendJSONString(b, in.Health)
	if in.HealthOutput != "" {
		b = append(b, `,"health_output":`...)
		b = appendJSONString(b, in.HealthOutput)
	}
	if in.Checks != "" {
		b = append(b, `,"checks":`...)
		b = appendJSONString(b, in.Checks)
	}
	if in.TCPMux {
		b = append(b, `,"tcpmux":true`...)
	}
	if in.MuxHelp {
		b = append(b, `,"muxhelp":true`...)
	}
	return append(b, '}'), nil
}

// appendJSONString appends s quoted as encoding/json quotes it with
// SetEscapeHTML(false): quote, backslash and control characters escaped,
// invalid UTF-8 as U+FFFD, and U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
