package netlimit

// Limits and actions an Observer is told of, beside the Reason constants
// that name a Limiter's limits.
const (
	// LimitRecordSize is a stream record announced over the message size
	// limit; its connection is reset.
	LimitRecordSize = "record_size"
	// LimitMessageSize is a datagram over the message size limit; it is
	// dropped.
	LimitMessageSize = "message_size"
	// LimitReplyRate is a UDP reply its source's reply-byte bucket cannot
	// pay; it is withheld.
	LimitReplyRate = "udp_reply_rate"

	ActionRefused      = "refused"       // a new connection turned away
	ActionEvicted      = "evicted"       // an idle connection closed to make room
	ActionAcceptFailed = "accept_failed" // accept failed for want of a descriptor
	ActionReset        = "reset"
	ActionDropped      = "dropped"
	ActionWithheld     = "withheld"
)

// An Observer is told of every limit a peer runs into, for counting (the
// daemon's metrics): where names the listener (its Config.Name, or the
// netid of a socket), limit the bound (a Reason constant or one of the
// Limit constants above) and action what was done (an Action constant).
// It is called on the path of the event, sometimes with a lock held, so
// it must only count and return.
type Observer interface {
	LimitHit(where, limit, action string)
}

// observe tells o of an event when there is an o.
func observe(o Observer, where, limit, action string) {
	if o != nil {
		o.LimitHit(where, limit, action)
	}
}
