package httpmap

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portmapd/portmapd/registry"
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
func csvField(b textWriter, s string, neutralise bool) {
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

// A textWriter is what CSV is written to: a listing's bufio.Writer, or
// the bytes.Buffer of an answer written whole.
type textWriter interface {
	io.ByteWriter
	io.StringWriter
}

// A listFormat writes a listing in one format, a row at a time: start,
// then each row, then finish. Errors are the connection's, and end the
// listing.
type listFormat interface {
	start(listCounts) error
	row(listRow) error
	finish(listTail) error
}

// listCounts are what a listing shows before its rows (the page does):
// its named instances and RPC entries.
type listCounts struct {
	named, entries int
}

// listTail is what a listing shows after its rows (JSON does).
type listTail struct {
	removals         []Removal
	removed, refused KindCounts
}

// csvFormat writes httportmap's CSV: a header, then one line per named
// instance and one per RPC program. After httportmap's five columns come
// the instance's health and, for a program, its versions, each with its
// netids ("2:tcp/udp 3:tcp/udp/local"), where a reader of those five by
// position does not look. neutralise is for CSV that a spreadsheet will
// open (see csvField).
type csvFormat struct {
	w          *bufio.Writer
	neutralise bool
}

func (c *csvFormat) start(listCounts) error {
	_, err := c.w.WriteString("service,user,pid,prog,port,health,versions\n")
	return err
}

func (c *csvFormat) row(row listRow) error {
	if row.named != nil {
		c.line(*row.named, "")
	} else {
		// A program shows as its first entry's first instance, the
		// worst health of its entries, and the versions of all.
		in := row.rpc[0].ins[0]
		for _, r := range row.rpc[1:] {
			if healthRank(r.ins[0].Health) > healthRank(in.Health) {
				in.Health = r.ins[0].Health
			}
		}
		c.line(in, programVersions(row.rpc))
	}
	// The writer's error, if a flush to the connection failed.
	_, err := c.w.Write(nil)
	return err
}

func (c *csvFormat) line(in Instance, versions string) {
	for i, f := range [...]string{in.Service, in.User(), in.PIDString(), in.Prog, in.Port, in.Health, versions} {
		if i > 0 {
			c.w.WriteByte(',')
		}
		csvField(c.w, f, c.neutralise)
	}
	c.w.WriteByte('\n')
}

func (c *csvFormat) finish(listTail) error { return c.w.Flush() }

// healthRank orders health from passing to critical.
func healthRank(h string) int {
	for i := registry.Critical; i >= registry.Passing; i-- {
		if i.String() == h {
			return int(i)
		}
	}
	return 0
}

// programVersions describes a program's entries in one field: its
// versions in ascending order, each with its netids in registration
// order, "2:tcp/udp 3:tcp/udp/local".
func programVersions(rows []rpcRow) string {
	vers := make([]uint32, 0, len(rows))
	for _, r := range rows {
		vers = append(vers, r.ins[0].RPC.Version)
	}
	slices.Sort(vers)
	vers = slices.Compact(vers)
	var b strings.Builder
	for i, v := range vers {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatUint(uint64(v), 10))
		sep := byte(':')
		for _, r := range rows {
			if info := r.ins[0].RPC; info.Version == v {
				b.WriteByte(sep)
				b.WriteString(string(info.Netid))
				sep = '/'
			}
		}
	}
	return b.String()
}

// xslPath is where the stylesheet the XML names is served.
const xslPath = "/portmap/portmap.xsl"

// xmlFormat writes httportmap's XML: no attributes, no whitespace
// between elements, children in its fixed order, and the instance's
// health after them. It has an element per instance: a program's every
// entry, under its number and its name.
type xmlFormat struct {
	w *bufio.Writer
}

func (x *xmlFormat) start(listCounts) error {
	_, err := x.w.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n" +
		`<?xml-stylesheet type="text/xml" href="` + xslPath + `"?>` + "\n" +
		"<portmap>")
	return err
}

func (x *xmlFormat) row(row listRow) error {
	return row.each(func(in Instance) error {
		x.w.WriteString("<instance>")
		for _, f := range [...]struct{ tag, v string }{
			{"service", in.Service}, {"user", in.User()}, {"pid", in.PIDString()}, {"prog", in.Prog}, {"port", in.Port}, {"health", in.Health},
		} {
			x.w.WriteString("<" + f.tag + ">")
			xml.EscapeText(x.w, []byte(f.v))
			x.w.WriteString("</" + f.tag + ">")
		}
		_, err := x.w.WriteString("</instance>")
		return err
	})
}

func (x *xmlFormat) finish(listTail) error {
	x.w.WriteString("</portmap>\n")
	return x.w.Flush()
}

// each calls fn with each of the row's instances.
func (row listRow) each(fn func(Instance) error) error {
	if row.named != nil {
		return fn(*row.named)
	}
	for _, r := range row.rpc {
		for _, in := range r.ins {
			if err := fn(in); err != nil {
				return err
			}
		}
	}
	return nil
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

// jsonFormat writes the Listing document, an instance at a time, as
// encoding/json would write it whole: compact, or, with ?pretty,
// indented by two spaces.
type jsonFormat struct {
	w       *bufio.Writer
	pretty  bool
	users   *userNames
	host    string
	now     time.Time
	scratch bytes.Buffer
	enc     *json.Encoder
	inst    []byte // an instance's compact JSON
	n       int    // instances written
}

func newJSONFormat(w *bufio.Writer, pretty bool, users *userNames, host string, now time.Time) *jsonFormat {
	j := &jsonFormat{w: w, pretty: pretty, users: users, host: host, now: now}
	j.enc = json.NewEncoder(&j.scratch)
	j.enc.SetEscapeHTML(false)
	return j
}

// value writes v as the value of a field at depth (1 for the document's
// fields, 2 for the instances).
func (j *jsonFormat) value(v any, depth int) error {
	j.scratch.Reset()
	if j.pretty {
		j.enc.SetIndent(strings.Repeat("  ", depth), "  ")
	}
	if err := j.enc.Encode(v); err != nil {
		return err
	}
	_, err := j.w.Write(bytes.TrimSuffix(j.scratch.Bytes(), []byte("\n")))
	return err
}

// field writes the document's field name: first says it is the first.
func (j *jsonFormat) field(name string, first bool) {
	switch {
	case j.pretty && first:
		j.w.WriteString("{\n  \"" + name + "\": ")
	case j.pretty:
		j.w.WriteString(",\n  \"" + name + "\": ")
	case first:
		j.w.WriteString("{\"" + name + "\":")
	default:
		j.w.WriteString(",\"" + name + "\":")
	}
}

func (j *jsonFormat) start(listCounts) error {
	first := true
	if j.host != "" {
		j.field("host", true)
		j.value(j.host, 1)
		first = false
	}
	j.field("generated", first)
	j.value(j.now, 1)
	j.field("instances", false)
	_, err := j.w.WriteString("[")
	return err
}

func (j *jsonFormat) row(row listRow) error {
	return row.each(func(in Instance) error {
		if in.UID != nil {
			in.UserName = j.users.name(*in.UID)
		}
		if j.n > 0 {
			j.w.WriteByte(',')
		}
		j.n++
		var err error
		j.inst, err = appendInstanceJSON(j.inst[:0], &in)
		if err != nil {
			return err
		}
		if !j.pretty {
			_, err = j.w.Write(j.inst)
			return err
		}
		j.w.WriteString("\n    ")
		j.scratch.Reset()
		json.Indent(&j.scratch, j.inst, "    ", "  ")
		_, err = j.w.Write(j.scratch.Bytes())
		return err
	})
}

func (j *jsonFormat) finish(t listTail) error {
	if j.pretty && j.n > 0 {
		j.w.WriteString("\n  ")
	}
	j.w.WriteString("]")
	if len(t.removals) > 0 {
		j.field("recent_removals", false)
		j.value(t.removals, 1)
	}
	j.field("removed", false)
	j.value(t.removed, 1)
	j.field("refused", false)
	j.value(t.refused, 1)
	if j.pretty {
		j.w.WriteString("\n")
	}
	j.w.WriteString("}\n")
	return j.w.Flush()
}
