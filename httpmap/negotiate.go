package httpmap

import (
	"strconv"
	"strings"
)

// Media types of the listing, in the order that breaks ties: CSV first, so
// that a client sending no Accept header (or */*), like httportmap's, gets
// CSV.
const (
	TypeCSV     = "text/csv"
	TypeXML     = "application/xml"
	TypeTextXML = "text/xml"
	TypeJSON    = "application/json"
	TypeHTML    = "text/html"
)

var offered = [...]string{TypeCSV, TypeXML, TypeTextXML, TypeJSON, TypeHTML}

// formats maps the format= query parameter, which links on the page use, to
// a type.
var formats = map[string]string{"csv": TypeCSV, "xml": TypeXML, "json": TypeJSON, "html": TypeHTML}

// negotiate picks the offered type the Accept header prefers (RFC 9110
// §12.5.1): each type gets the q of the most specific range that matches
// it, and the highest q wins, earlier offers breaking ties. It returns ""
// when nothing acceptable is offered. An empty header accepts anything.
func negotiate(accept string) string {
	if strings.TrimSpace(accept) == "" {
		return TypeCSV
	}
	best, bestQ := "", 0.0
	for _, t := range offered {
		q := quality(accept, t)
		if q > bestQ {
			best, bestQ = t, q
		}
	}
	return best
}

// quality returns the q that accept gives typ, 0 if none.
func quality(accept, typ string) float64 {
	major, _, _ := strings.Cut(typ, "/")
	q, spec := 0.0, -1
	// Walk without splitting into a slice: the header is the peer's and
	// may be long.
	for accept != "" {
		var item string
		item, accept, _ = strings.Cut(accept, ",")
		rng, params, _ := strings.Cut(item, ";")
		rng = strings.ToLower(strings.TrimSpace(rng))
		s := -1
		switch {
		case rng == typ:
			s = 2
		case rng == major+"/*":
			s = 1
		case rng == "*/*":
			s = 0
		}
		if s < spec || s < 0 {
			continue
		}
		rq := 1.0
		for params != "" {
			var p string
			p, params, _ = strings.Cut(params, ";")
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f >= 0 && f <= 1 {
					rq = f
				}
			}
		}
		if s > spec || rq > q {
			q, spec = rq, s
		}
	}
	return q
}
