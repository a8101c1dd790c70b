package registry

import "time"

// An Event is a registration that the daemon removed on its own, because
// its service was found gone.
type Event struct {
	Time time.Time
	// Kind is "rpc" for an RPC entry or "named" for a named service.
	Kind string
	// What describes the registration: "prog 100003 vers 3 tcp
	// 0.0.0.0.8.1 pid 42" or "name tcp 8080 pid 42".
	What   string
	Reason string
}

// Removals count the registrations the daemon removed on its own since
// it started.
type Removals struct {
	RPC   uint64
	Named uint64
}

// maxEvents is how many recent events the registry keeps.
const maxEvents = 64

// addEvent appends ev to the ring of recent events and counts it; r.mu
// must be held.
func (r *Registry) addEvent(ev Event) {
	if ev.Kind == "rpc" {
		r.removed.RPC++
	} else {
		r.removed.Named++
	}
	if len(r.events) < maxEvents {
		r.events = append(r.events, ev)
		return
	}
	r.events[r.eventNext] = ev
	r.eventNext = (r.eventNext + 1) % maxEvents
}

// RecentEvents returns the latest removals the daemon made on its own,
// oldest first, and how many of each kind there have been since it
// started.
func (r *Registry) RecentEvents() ([]Event, Removals) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Event, 0, len(r.events))
	out = append(out, r.events[r.eventNext:]...)
	out = append(out, r.events[:r.eventNext]...)
	return out, r.removed
}

// Prune removes e, found gone for reason, when it is still registered as
// it was (same key, address, pid and registration time): a service that
// re-registered meanwhile is left alone. It records the removal in the
// journal and as a recent event, and reports whether it removed anything.
func (r *Registry) Prune(e Entry, reason string) bool {
	return r.commitToRegistration(e, func(cs *changeSet, n nodeID) bool {
		removed := r.rpc.entry(n)
		r.remove(n)
		cs.add(OpUnset, removed, reason)
		r.addEvent(Event{Time: r.opts.Now(), Kind: "rpc", What: describeEntry(removed), Reason: reason})
		return true
	})
}

func describeEntry(e Entry) string {
	s := "prog " + itoa(uint64(e.Prog)) + " vers " + itoa(uint64(e.Vers)) + " " + string(e.Netid) + " " + e.Addr
	if e.PID != 0 {
		s += " pid " + itoa(uint64(e.PID))
	}
	return s
}

func describeService(s Service) string {
	return s.Name + " " + string(s.Network) + " " + s.Endpoint() + " pid " + itoa(uint64(s.PID))
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}
