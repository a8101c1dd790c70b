package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

// The keys under the prefix (DefaultPrefix, /portmap):
//
//	PREFIX/HOST/_host           the host: its addresses (hostRecord)
//	PREFIX/HOST/NAME/ID         one registration of the host, as another
//	                            host may see it (httpmap.Instance, JSON)
//	PREFIX/_name/NAME/HOST/ID   the same value again, for lookups by name
//
// NAME is a service name in lower case, an RPC program's being
// PROG.oncrpc.alt by number; ID tells the name's instances on one host
// apart: PROTOCOL.PORT.DIGEST for a named registration (the digest of
// what identifies it, which does not change when the daemon restarts),
// VERS.NETID for an RPC one. Every key of a host is attached to its
// lease, so that they all go when the host stops keeping it alive. Host
// names never begin with "_", nor service names with "_host", so no key
// is read for another kind.
const (
	hostRecordName = "_host"
	byNameDir      = "_name"
)

// keys spells the keys of one host under one prefix.
type keys struct {
	prefix, host string
}

// hostDir is the prefix of every key of the host but its by-name copies.
func (k keys) hostDir() string { return k.prefix + "/" + k.host + "/" }

func (k keys) hostRecord() string { return k.hostDir() + hostRecordName }

func (k keys) instance(name, id string) string { return k.hostDir() + name + "/" + id }

func (k keys) byName(name, id string) string {
	return k.prefix + "/" + byNameDir + "/" + name + "/" + k.host + "/" + id
}

// names is the prefix of every by-name key, of every host.
func namesDir(prefix string) string { return prefix + "/" + byNameDir + "/" }

// splitInstance reads a key of the host's own: the name and ID of an
// instance; ok is false for the host record and anything else.
func (k keys) splitInstance(key string) (name, id string, ok bool) {
	rest, found := strings.CutPrefix(key, k.hostDir())
	if !found {
		return "", "", false
	}
	name, id, ok = strings.Cut(rest, "/")
	return name, id, ok && name != "" && id != "" && !strings.Contains(id, "/")
}

// splitByName reads a by-name key under prefix: the name, the host and
// the ID.
func splitByName(prefix, key string) (name, host, id string, ok bool) {
	rest, found := strings.CutPrefix(key, namesDir(prefix))
	if !found {
		return "", "", "", false
	}
	f := strings.Split(rest, "/")
	if len(f) != 3 || f[0] == "" || f[1] == "" || f[2] == "" {
		return "", "", "", false
	}
	return f[0], f[1], f[2], true
}

// A hostRecord is what a host publishes of itself at PREFIX/HOST/_host.
type hostRecord struct {
	// Addresses are the host's addresses other hosts may reach it at:
	// those of its interfaces that are up, but loopback and link-local.
	Addresses []string `json:"addresses"`
	// Version is the portmapd that publishes.
	Version string `json:"version,omitempty"`
}

// An item is one registration as published: its name and ID, which make
// its keys, and its value. A removal has no value.
type item struct {
	name, id string
	value    string
}

// serviceItem publishes a named registration; ok is false for one other
// hosts may not see.
func serviceItem(s registry.Service) (item, bool) {
	in, ok := httpmap.ExternalService(s)
	if !ok {
		return item{}, false
	}
	// What tells the registration apart, as saved with the state, so
	// that its ID survives a restart of the daemon; never its pid, of
	// which other hosts see nothing.
	h := sha256.New()
	for _, f := range []string{strings.ToLower(s.Name), string(s.Network), s.Endpoint(), strconv.FormatUint(uint64(s.UID), 10), strconv.FormatInt(s.Registered.UnixNano(), 10)} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	id := string(in.Protocol) + "." + in.Port + "." + hex.EncodeToString(h.Sum(nil)[:6])
	return item{name: strings.ToLower(in.Service), id: id, value: encodeInstance(in)}, true
}

// entryItem publishes an RPC registration; ok is false for one other
// hosts may not see, and for the portmapper's own, which every host has
// (its host record says that it runs a portmapper).
func entryItem(e registry.Entry) (item, bool) {
	if e.Prog == xdr.PmapProg {
		return item{}, false
	}
	in, ok := httpmap.ExternalEntry(e)
	if !ok {
		return item{}, false
	}
	id := strconv.FormatUint(uint64(e.Vers), 10) + "." + string(e.Netid.Lower())
	return item{name: strings.ToLower(in.Service), id: id, value: encodeInstance(in)}, true
}

// encodeInstance is an instance's published value: its JSON, with its
// time in UTC, so that the same registration is the same bytes after a
// restart of the daemon.
func encodeInstance(in httpmap.Instance) string {
	in.Since = in.Since.UTC()
	b, err := json.Marshal(in)
	if err != nil {
		return "" // nothing in an Instance fails to marshal
	}
	return string(b)
}

// changeItem is what a change of the registry publishes or removes; ok
// is false for a change of something other hosts do not see.
func changeItem(c registry.Change) (it item, remove, ok bool) {
	switch c.Op {
	case registry.OpSet, registry.OpEntryHealth:
		it, ok = entryItem(c.Entry)
	case registry.OpUnset:
		it, ok = entryItem(c.Entry)
		remove = true
	case registry.OpRegister, registry.OpServiceHealth:
		it, ok = serviceItem(c.Service)
	case registry.OpDeregister:
		it, ok = serviceItem(c.Service)
		remove = true
	}
	return it, remove, ok
}

// ValidHost reports what is wrong with a host name for the keys, or nil:
// letters, digits, '-' and '.', at most 253 of them, beginning with a
// letter or digit.
func ValidHost(h string) error {
	switch {
	case h == "":
		return errBadHost(h, "empty")
	case len(h) > 253:
		return errBadHost(h, "longer than 253 characters")
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		letDig := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !letDig && (i == 0 || c != '-' && c != '.') {
			return errBadHost(h, "a host name has letters, digits, '-' and '.', and begins with a letter or digit")
		}
	}
	return nil
}
