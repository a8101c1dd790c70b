package tcpmux

import (
	"net"
	"strings"

	"github.com/portmapd/portmapd/registry"
)

// route returns the instances a connection asking for name may reach, in
// the order they are tried: the TCPMUX registrations of name of one user,
// root's if root has one, else those of the user whose TCPMUX
// registration of it is oldest, each in registration order, and of those
// only the ones passing their health checks.
func (s *Server) route(name string) []registry.Service {
	return passing(ownersInstances(s.reg.LookupNamed(name)))
}

// passing keeps the instances whose checks find them passing, as the DNS
// face and ?passing lookups keep them: a warning or critical instance is
// not tried, and a name with none passing is unavailable. The user a
// name's connections go to is chosen before, among every instance, so
// that another user's instance never stands in for a failing one.
func passing(svcs []registry.Service) []registry.Service {
	var out []registry.Service
	for _, sv := range svcs {
		if sv.Health.Status == registry.Passing {
			out = append(out, sv)
		}
	}
	return out
}

// ownersInstances keeps of one name's instances, in registration order,
// the TCPMUX ones of the user the name's connections go to.
func ownersInstances(svcs []registry.Service) []registry.Service {
	owner, ok := uint32(0), false
	for _, sv := range svcs {
		if sv.Flags&registry.TCPMux == 0 {
			continue
		}
		if !ok || sv.UID == 0 {
			owner, ok = sv.UID, true
		}
	}
	var out []registry.Service
	for _, sv := range svcs {
		if ok && sv.Flags&registry.TCPMux != 0 && sv.UID == owner {
			out = append(out, sv)
		}
	}
	return out
}

// helpList returns the names HELP lists, in the order they were first
// registered: those whose instances that route would try (passing ones)
// include one registered with muxhelp.
func helpList(all []registry.Service) []string {
	byName := map[string][]registry.Service{}
	var order []string
	for _, sv := range all {
		if sv.Flags&registry.TCPMux == 0 {
			continue
		}
		k := strings.ToLower(sv.Name)
		if _, seen := byName[k]; !seen {
			order = append(order, k)
		}
		byName[k] = append(byName[k], sv)
	}
	var out []string
	for _, k := range order {
		for _, sv := range passing(ownersInstances(byName[k])) {
			if sv.Flags&registry.MuxHelp != 0 {
				out = append(out, k)
				break
			}
		}
	}
	return out
}

// help answers HELP: the listed names, one a line, then the end of the
// connection, as RFC 1078 has it.
func (s *Server) help(c net.Conn) {
	var b strings.Builder
	for _, name := range helpList(s.reg.NamedServices()) {
		b.WriteString(name)
		b.WriteString("\r\n")
	}
	c.Write([]byte(b.String()))
}
