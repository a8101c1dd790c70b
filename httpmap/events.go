package httpmap

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/portmapd/portmapd/registry"
)

// eventsPath is the event stream's. It shadows the name "events", which
// the listing still finds with ?service=events.
const eventsPath = listPath + "/events"

// TypeEventStream is the media type of the event stream.
const TypeEventStream = "text/event-stream"

// Types of Event.
const (
	EventAdded   = "added"
	EventRemoved = "removed"
	EventChanged = "changed"
	// EventReset says that the changes after the index the client gave
	// are not at hand (too old, or of another history): it must list
	// again. The stream goes on from the event's index.
	EventReset = "reset"
)

// An Event is one change of the registry as the event stream sends it: a
// registration added or removed (with the reason), or its health changed,
// with the instances it appears as (an RPC program appears under its
// number and its name).
type Event struct {
	// Index is the change's index, and the event's SSE id.
	Index     uint64     `json:"index"`
	Type      string     `json:"type"`
	Time      time.Time  `json:"time,omitzero"`
	Reason    string     `json:"reason,omitempty"`
	Instances []Instance `json:"instances,omitempty"`
}

// eventType names a change's kind of event.
func eventType(op registry.ChangeOp) string {
	switch op {
	case registry.OpSet, registry.OpRegister:
		return EventAdded
	case registry.OpUnset, registry.OpDeregister:
		return EventRemoved
	}
	return EventChanged
}

// Event stream timing.
const (
	// keepAliveEvery sends a comment on an idle stream, so that proxies
	// and the client see it is alive, and a gone client is found.
	keepAliveEvery = 25 * time.Second
	// eventWriteTimeout cuts a client that does not take what it is
	// sent.
	eventWriteTimeout = 30 * time.Second
	// retryMillis is how soon a browser reconnects.
	retryMillis = 2000
)

// serveEvents serves the event stream (GET /portmap/events): every change
// after the Last-Event-ID header, or index=, or, without either, from
// now. The listing's filters (service=, user=, uid=, pid=, prog=) select
// the changes; a change whose instances none of them select, or that a
// remote viewer may not see (remoteView), is sent as its id alone, so
// that a reconnecting client resumes after it. passing= selects nothing
// here: every change of health is an event.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	q := &request{w: w, r: r, sender: senderFrom(r), users: &userNames{path: s.cfg.Passwd}}
	f, err := parseFilter(r.URL.Query())
	if err != nil {
		s.writeError(w, "", err)
		return
	}
	after, resumed := uint64(0), false
	for _, p := range [...]struct{ key, v string }{{"Last-Event-ID", r.Header.Get("Last-Event-ID")}, {"index=", r.URL.Query().Get("index")}} {
		if p.v == "" {
			continue
		}
		if after, err = strconv.ParseUint(p.v, 10, 64); err != nil {
			s.writeError(w, "", &ParamError{p.key, p.v, "an index"})
			return
		}
		resumed = true
		break
	}
	if !resumed {
		after = s.reg.Index()
	}
	release, err := s.watchers.acquire(q.sender)
	if err != nil {
		s.writeError(w, "", err)
		return
	}
	defer release()
	external := s.external(q.sender, r)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", TypeEventStream+"; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	var b bytes.Buffer
	fmt.Fprintf(&b, "retry: %d\n", retryMillis)
	if !resumed {
		// The client's place, for its reconnection.
		fmt.Fprintf(&b, "id: %d\n\n", after)
	}
	send := func() bool {
		if b.Len() == 0 {
			return true
		}
		_ = rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
		_, err := w.Write(b.Bytes())
		b.Reset()
		return err == nil && rc.Flush() == nil
	}
	keepAlive := time.NewTicker(keepAliveEvery)
	defer keepAlive.Stop()
	for {
		index, changed := s.reg.Watch()
		if index != after {
			cs, ok := s.reg.ChangesSince(after)
			if !ok {
				writeEvent(&b, Event{Index: index, Type: EventReset, Time: s.cfg.Now().UTC(),
					Reason: fmt.Sprintf("the changes after index %d are not kept; list again", after)})
				after = index
			}
			for _, c := range cs {
				ins := s.visible(q, f, external, c)
				if len(ins) == 0 {
					fmt.Fprintf(&b, "id: %d\n\n", c.Index)
				} else {
					writeEvent(&b, Event{Index: c.Index, Type: eventType(c.Op), Time: c.Time.UTC(), Reason: c.Reason, Instances: ins})
				}
				after = c.Index
			}
		}
		if !send() {
			return
		}
		select {
		case <-changed:
		case <-keepAlive.C:
			b.WriteString(": keep-alive\n\n")
		case <-r.Context().Done():
			return
		case <-s.stopping:
			return
		}
	}
}

// writeEvent appends ev in the event stream's form: its type, its id and
// its JSON on one data line.
func writeEvent(b *bytes.Buffer, ev Event) {
	data, err := json.Marshal(ev)
	if err != nil {
		return // nothing in an Event fails to marshal
	}
	fmt.Fprintf(b, "event: %s\nid: %d\ndata: %s\n\n", ev.Type, ev.Index, data)
}
