package natsched

import (
	"context"
	"strconv"
	"time"
)

// Fired describes the fired message a handler is running for, as
// consumers put it in the handler's context (see FiredFrom).
type Fired struct {
	ScheduleID   string    // Natsched-Id
	OccurrenceID string    // Nats-Msg-Id: the schedule ID, generation and planned time
	Planned      time.Time // Natsched-Planned: the occurrence's nominal time
	Run          int64     // Natsched-Run: 1-based, triggers included
	Delivery     uint64    // 1 on the first delivery to a handler, 2 on the first retry, ...
}

type firedKey struct{}

// WithFired returns ctx carrying f.
func WithFired(ctx context.Context, f Fired) context.Context {
	return context.WithValue(ctx, firedKey{}, f)
}

// FiredFrom returns the fired message a handler's ctx was made for, and
// whether there is one.
func FiredFrom(ctx context.Context) (Fired, bool) {
	f, ok := ctx.Value(firedKey{}).(Fired)
	return f, ok
}

// FiredOf reads m's headers into a Fired for its delivery-th delivery.
func FiredOf(m *Message, delivery uint64) Fired {
	run, _ := strconv.ParseInt(m.Header.Get(HeaderRun), 10, 64)
	return Fired{ScheduleID: m.ScheduleID(), OccurrenceID: m.Header.Get(HeaderMsgID), Planned: m.Planned(),
		Run: run, Delivery: delivery}
}
