package httpmap

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"strings"
	"time"
)

// csvField appends s as one CSV field, quoted as RFC 4180 requires: in
// double quotes, each inner quote doubled, when it holds a quote, a comma,
// CR or LF, and, as httportmap does, any other control character. Other
// fields go as they are, so httportmap's readers see its bytes.
//
// For a spreadsheet (neutralise), as OWASP's CSV injection advice has it,
// every field is quoted, so that a spreadsheet splitting on another
// separator (';' in some locales) cannot start a cell inside one, and a
// field that begins with a character a spreadsheet takes as the start of
// a formula (= + - @, tab or CR) is prefixed with a single quote: the cell
// shows the text instead of evaluating it.
func csvField(b *bytes.Buffer, s string, neutralise bool) {
	formula := neutralise && s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0
	if !neutralise && !strings.ContainsFunc(s, func(r rune) bool { return r == '"' || r == ',' || r < 0x20 || r == 0x7f }) {
		b.WriteString(s)
		return
	}
	b.WriteByte('"')
	if formula {
		b.WriteByte('\'')
	}
	b.WriteString(strings.ReplaceAll(s, `"`, `""`))
	b.WriteByte('"')
}

// writeCSV writes httportmap's CSV: a header, then one line per instance;
// after httportmap's five columns comes the instance's health, where a
// reader of those five by position does not look. neutralise is for CSV
// that a spreadsheet will open (see csvField).
func writeCSV(b *bytes.Buffer, ins []Instance, neutralise bool) {
	b.WriteString("service,user,pid,prog,port,health\n")
	for _, in := range ins {
		for i, f := range [...]string{in.Service, in.User(), in.PIDString(), in.Prog, in.Port, in.Health} {
			if i > 0 {
				b.WriteByte(',')
			}
			csvField(b, f, neutralise)
		}
		b.WriteByte('\n')
	}
}

// xslPath is where the stylesheet the XML names is served.
const xslPath = "/portmap/portmap.xsl"

// writeXML writes httportmap's XML: no attributes, no whitespace between
// elements, children in its fixed order, and the instance's health after
// them.
func writeXML(b *bytes.Buffer, ins []Instance) {
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n")
	b.WriteString(`<?xml-stylesheet type="text/xml" href="` + xslPath + `"?>` + "\n")
	b.WriteString("<portmap>")
	for _, in := range ins {
		b.WriteString("<instance>")
		for _, f := range [...]struct{ tag, v string }{
			{"service", in.Service}, {"user", in.User()}, {"pid", in.PIDString()}, {"prog", in.Prog}, {"port", in.Port}, {"health", in.Health},
		} {
			b.WriteString("<" + f.tag + ">")
			xml.EscapeText(b, []byte(f.v))
			b.WriteString("</" + f.tag + ">")
		}
		b.WriteString("</instance>")
	}
	b.WriteString("</portmap>\n")
}

// A Listing is the JSON document: every instance with all that is known of
// it.
type Listing struct {
	Host      string     `json:"host,omitempty"`
	Generated time.Time  `json:"generated"`
	Instances []Instance `json:"instances"`
	// RecentRemovals are the latest registrations the daemon removed on
	// its own (process exited, service gone), oldest first, and Removed
	// counts all of them, by kind, since it started.
	RecentRemovals []Removal  `json:"recent_removals,omitempty"`
	Removed        KindCounts `json:"removed"`
	// Refused counts the registrations refused at a per-uid or
	// per-process cap since the daemon started, by kind.
	Refused KindCounts `json:"refused"`
}

// A Removal is a registration that the daemon removed on its own, because
// its service was found gone: a registry.Event as the listing shows it.
// It has Event's fields, so that Removal(ev) converts one; the JSON names
// are this face's, and the registry's type knows nothing of them.
type Removal struct {
	Time time.Time `json:"time"`
	// Kind is "rpc" for an RPC entry or "named" for a named service.
	Kind string `json:"kind"`
	// What describes the registration: "prog 100003 vers 3 tcp
	// 0.0.0.0.8.1 pid 42" or "name tcp 8080 pid 42".
	What   string `json:"what"`
	Reason string `json:"reason"`
}

// KindCounts count registrations of each kind: RPC entries and named
// services. The listing shows registry.Removals and registry.Refusals,
// converted, so.
type KindCounts struct {
	RPC   uint64 `json:"rpc"`
	Named uint64 `json:"named"`
}

func writeJSON(b *bytes.Buffer, l Listing) error {
	if l.Instances == nil {
		l.Instances = []Instance{}
	}
	enc := json.NewEncoder(b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(l)
}
