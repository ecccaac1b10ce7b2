package jetstream

import (
	"fmt"

	"github.com/natsched/natsched"
)

// rules are what every schedule must meet to be stored and, again, before
// each of its fires.
type rules struct {
	names      Names
	allow      []AllowRule
	maxPayload func() int // the server's max_payload
}

// admit checks sch, stored (or to be stored) under key: its definition
// (natsched.Schedule.Validate), its target (reserved subjects, then the
// allow rules as configured now) and the sizes of what it fires. key must
// be the schedule's ID.
//
// The fire path re-checks because the bucket is not only written through
// Put: anyone with access to the KV subjects can store any value there,
// and allow rules may have become stricter since a schedule was stored.
func (r *rules) admit(key string, sch *natsched.Schedule) error {
	if key != sch.ID {
		return natsched.Invalid("id", "stored under key %q but the value says %q", natsched.Truncate(key), natsched.Truncate(sch.ID))
	}
	if err := sch.Validate(); err != nil {
		return err
	}
	if why := r.names.ReservedTarget(sch.Subject); why != "" {
		return natsched.Invalid("subject", "reserved: %q: %s", natsched.Truncate(sch.Subject), why)
	}
	if !allowed(r.allow, sch.ID, sch.Subject) {
		return fmt.Errorf("%w: subject: schedule %s may not target %s", natsched.ErrForbidden, sch.ID, sch.Subject)
	}
	return r.checkFired(sch)
}

// encode renders a schedule for the bucket and checks that it, and every
// message it fires, fits.
func (r *rules) encode(sch *natsched.Schedule) ([]byte, error) {
	b, err := r.encodeState(sch)
	if err != nil {
		return nil, err
	}
	if err := r.checkFired(sch); err != nil {
		return nil, err
	}
	return b, nil
}

// encodeState renders a schedule for the bucket and checks that it fits:
// for the state a fire records, whose fired messages admit checked just
// before (and checks again before the next fire).
func (r *rules) encodeState(sch *natsched.Schedule) ([]byte, error) {
	// MarshalJSON directly: json.Marshal would compact and re-validate
	// its output, a second pass over every state written on a fire.
	b, err := sch.MarshalJSON()
	if err != nil {
		return nil, err
	}
	if limit := r.maxPayload(); len(b) > limit {
		return nil, fmt.Errorf("%w: data: the schedule takes %d bytes stored, over the server's max payload of %d", natsched.ErrTooLarge, len(b), limit)
	}
	return b, nil
}

// firedHeaderSlack bounds the bytes natsched's own headers add to a fired
// message beyond twice its ID, its type and its tracestate: the header
// names, a message ID's generation and time, the planned time, the run, a
// jitter, a traceparent (about 300 bytes at most).
const firedHeaderSlack = 512

// checkFired makes sure every fired message of sch can be stored: its
// headers within JetStream's header limit, and headers and payload within
// the server's max payload.
func (r *rules) checkFired(sch *natsched.Schedule) error {
	// Most schedules are far within both limits: a bound that needs no
	// fired message built (admit runs on every fire) settles those.
	bound := natsched.HeaderBytes(sch.Header) + firedHeaderSlack + 2*len(sch.ID) + len(sch.Type) + len(sch.TraceState)
	if bound <= natsched.MaxHeaderBytes && len(sch.Data)+bound+len(sch.Subject)+128 <= r.maxPayload() {
		return nil
	}
	h := natsched.FiredHeaderBytes(sch)
	if h > natsched.MaxHeaderBytes {
		return fmt.Errorf("%w: header: the fired message's headers would take %d bytes, over JetStream's limit of %d", natsched.ErrTooLarge, h, natsched.MaxHeaderBytes)
	}
	// The subject and a reply subject count against max payload too.
	n := len(sch.Data) + h + len(sch.Subject) + 128
	if limit := r.maxPayload(); n > limit {
		return fmt.Errorf("%w: data: the fired message would take %d bytes, over the server's max payload of %d", natsched.ErrTooLarge, n, limit)
	}
	return nil
}
