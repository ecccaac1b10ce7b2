package jetstream

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/natsched/natsched"
)

// admit checks sch against the rules every schedule must meet to be stored
// and, again, before each fire: its definition (natsched.Schedule.Validate),
// its target (reserved subjects, then the allow rules as configured now)
// and the sizes of what it fires. key is the bucket key the schedule is
// stored under; it must be the schedule's ID.
//
// The fire path re-checks because the bucket is not only written through
// Put: anyone with access to the KV subjects can store any value there,
// and allow rules may have become stricter since a schedule was stored.
func (s *Scheduler) admit(key string, sch *natsched.Schedule) error {
	if key != sch.ID {
		return natsched.Invalid("id", "stored under key %q but the value says %q", natsched.Truncate(key), natsched.Truncate(sch.ID))
	}
	if err := sch.Validate(); err != nil {
		return err
	}
	if why := s.names.ReservedTarget(sch.Subject); why != "" {
		return natsched.Invalid("subject", "reserved: %q: %s", natsched.Truncate(sch.Subject), why)
	}
	if !allowed(s.o.allow, sch.ID, sch.Subject) {
		return fmt.Errorf("%w: subject: schedule %s may not target %s", natsched.ErrForbidden, sch.ID, sch.Subject)
	}
	return s.checkFired(sch)
}

// refusedPrefix starts the last_error of a stored schedule that admit
// refused to fire.
const refusedPrefix = "not fired: "

// refuse keeps a stored schedule that failed admit from firing. It stays in
// the bucket, readable and cancellable, with last_error saying why, and
// out of the due queue until it is written again. The reason is logged and
// recorded once; a later leader that finds it recorded only skips it.
func (l *leader) refuse(ctx context.Context, key string, sch *natsched.Schedule, why error) result {
	l.s.stats.refused.Add(1)
	_, text := errorReply(why)
	res := result{rev: sch.Revision, status: sch.Status} // due 0: out of the queue
	msg := refusedPrefix + text
	if sch.LastError == msg {
		return res
	}
	l.s.log.Warn("natsched: stored schedule refused; not firing it", "id", key, "err", text)
	c := sch.Clone()
	c.LastError, c.Revision = msg, 0
	// Not s.encode: its size checks may be what failed.
	b, err := json.Marshal(c)
	if err != nil {
		return res
	}
	if rev, err := l.s.kv.Update(opCtx(ctx), key, b, sch.Revision); err == nil {
		res.rev, res.wrote = rev, true
	}
	return res
}

// mayFire reports whether a step of sch can publish anything, so that
// admit has something to guard: done schedules without triggers only
// expire.
func mayFire(sch *natsched.Schedule) bool {
	return sch.Status != natsched.StatusDone || len(sch.Triggers) > 0
}
