package httpmap

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/portmapd/portmapd/registry"
)

// Internationalised names. The registry holds every name in its ASCII form,
// so that exclusivity and lookups agree whichever form a request uses:
// requests are converted on the way in (asciiName), and people are shown
// both forms on the way out (UnicodeName).
//
// Both directions use idna.Lookup, UTS #46 processing as browsers and
// resolvers do it: it maps what it can (case, width, NFC) before it
// validates. A name is matched without regard to case anyway, so refusing
// "Café" where "café" is accepted, as idna.Registration does (it refuses
// upper case and unnormalised input rather than mapping them), would only
// make one name impossible to type two ways; and registering with a
// stricter profile than lookups use would leave names that can be looked up
// but never registered. Registration's other refusals (unassigned code
// points, the CONTEXT rules) Lookup applies too.

// asciiName returns name with each domain label that is not ASCII replaced
// by its ASCII-compatible ("xn--") form. An ASCII label is left as it is
// for the registry to judge, with its own rules and messages: UTS #46's
// rules for ASCII labels (no "--" in the third and fourth places) are
// stricter than the names portmapd has always accepted. The local part of
// an e-mail style name has no ASCII form and is left alone, for the
// registry to refuse with the character that is wrong.
func asciiName(name string) (string, error) {
	if isASCII(name) {
		return name, nil
	}
	local, domain, hasAt := strings.Cut(name, "@")
	if !hasAt {
		local, domain = "", name
	}
	labels := strings.Split(domain, ".")
	for i, label := range labels {
		if isASCII(label) {
			continue
		}
		a, err := idna.Lookup.ToASCII(label)
		if err != nil {
			return "", &registry.NamedError{Name: name, Err: registry.ErrBadName,
				Detail: fmt.Sprintf("label %q has no ASCII form: %s", label, strings.TrimPrefix(err.Error(), "idna: "))}
		}
		labels[i] = a
	}
	domain = strings.Join(labels, ".")
	if hasAt {
		return local + "@" + domain, nil
	}
	return domain, nil
}

// UnicodeName returns the form of a registered (ASCII) name to show people:
// its "xn--" labels decoded. It returns "" when the name has no other form,
// or a label that does not decode to a valid one, which is then best shown
// only as it is. Show it beside the ASCII form, never instead of it: two
// names that look alike in Unicode differ in ASCII.
func UnicodeName(name string) string {
	local, domain, hasAt := strings.Cut(name, "@")
	if !hasAt {
		local, domain = "", name
	}
	labels := strings.Split(domain, ".")
	changed := false
	for i, label := range labels {
		if len(label) < 4 || !strings.EqualFold(label[:4], "xn--") {
			continue
		}
		u, err := idna.Lookup.ToUnicode(label)
		if err != nil || u == label {
			return ""
		}
		labels[i], changed = u, true
	}
	if !changed {
		return ""
	}
	domain = strings.Join(labels, ".")
	if hasAt {
		return local + "@" + domain
	}
	return domain
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
