// Package engine is the schedule state machine shared by every Scheduler:
// what Put stores, when a schedule is due, and what firing it does to its
// state. It is pure: callers pass the time in and persist the result, so
// the memory and JetStream schedulers behave the same by construction.
package engine

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsched/natsched"
)

// Options tune the state machine.
type Options struct {
	// MisfireThreshold: an occurrence not fired within this of its planned
	// time is missed, whether no leader ran (downtime, failover) or the
	// leader fell behind (overload, a frozen process); its schedule's
	// misfire policy applies (default 1s).
	MisfireThreshold time.Duration
	// Retention: how long done schedules stay readable (default 24h).
	Retention time.Duration
	// MaxFiresPerStep bounds the scheduled occurrences one Step returns
	// (default 1; pending triggers come on top). The rest stay due: the caller steps the schedule
	// again after whatever else is due, so that one schedule's backlog
	// never holds others back.
	MaxFiresPerStep int
	// OnMissed, if set, is told how many occurrences a misfire policy
	// skipped or collapsed (not fired), and which policy. Counts of long
	// outages of cron schedules stop at maxCount.
	OnMissed func(policy natsched.Misfire, n int)
}

// catchupPerStep is how many missed occurrences policy all fires per Step:
// more than one, so that replaying a long outage does not walk the missed
// window once per occurrence, and few enough that a replay still shares
// the scheduler with everything else due.
const catchupPerStep = 100

// maxCount bounds the occurrences a count of missed ones walks.
const maxCount = 10000

// count returns how many occurrences of w lie in [from, to), walking at
// most maxCount of them (an Every is counted exactly).
func (w window) count(from, to time.Time) int {
	if !from.Before(to) {
		return 0
	}
	if e, ok := w.spec.(natsched.Every); ok && e.Interval > 0 {
		first := w.atOrAfter(from)
		if first.IsZero() || !first.Before(to) {
			return 0
		}
		end := to
		if !w.end.IsZero() && w.end.Before(end) {
			end = w.end.Add(time.Nanosecond)
		}
		return int((end.Sub(first)-1)/e.Interval) + 1
	}
	n := 0
	for p := w.atOrAfter(from); !p.IsZero() && p.Before(to) && n < maxCount; p = w.after(p) {
		n++
	}
	return n
}

func (o Options) missed(policy natsched.Misfire, n int) {
	if o.OnMissed != nil && n > 0 {
		o.OnMissed(policy, n)
	}
}

// Defaults.
const (
	DefaultMisfireThreshold = time.Second
	DefaultRetention        = 24 * time.Hour
	DefaultMaxFiresPerStep  = 1
	// maxScan bounds how many cron occurrences a misfire computation walks.
	maxScan = 1_000_000
)

// WithDefaults fills zero fields.
func (o Options) WithDefaults() Options {
	if o.MisfireThreshold <= 0 {
		o.MisfireThreshold = DefaultMisfireThreshold
	}
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.MaxFiresPerStep <= 0 {
		o.MaxFiresPerStep = DefaultMaxFiresPerStep
	}
	return o
}

// SpecOf returns the timing of s.
func SpecOf(s *natsched.Schedule) (natsched.Spec, error) {
	switch {
	case s.Cron != "":
		return natsched.ParseCron(s.Cron, s.TZ)
	case s.Every > 0:
		anchor := s.Anchor
		if anchor.IsZero() {
			anchor = s.Start
		}
		return natsched.Every{Anchor: anchor, Interval: s.Every}, nil
	default:
		return natsched.At(s.At), nil
	}
}

// window wraps a Spec with the schedule's start and end.
type window struct {
	spec       natsched.Spec
	start, end time.Time
}

func windowOf(s *natsched.Schedule) (window, error) {
	spec, err := SpecOf(s)
	if err != nil {
		return window{}, err
	}
	return window{spec: spec, start: s.Start, end: s.End}, nil
}

// after returns the first occurrence strictly after t inside the window.
func (w window) after(t time.Time) time.Time {
	if !w.start.IsZero() && t.Before(w.start) {
		t = w.start.Add(-time.Nanosecond)
	}
	n := w.spec.Next(t)
	if n.IsZero() || (!w.end.IsZero() && n.After(w.end)) {
		return time.Time{}
	}
	return n
}

// atOrAfter returns the first occurrence at or after t inside the window.
func (w window) atOrAfter(t time.Time) time.Time { return w.after(t.Add(-time.Nanosecond)) }

// Accept turns a definition given to Put into the state to store. prev is
// the stored schedule it replaces (nil if none), accepted the acceptance
// instant ("in" and "every" count from it), gen the new generation.
func Accept(s, prev *natsched.Schedule, accepted, now time.Time, gen uint64) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if s.In > 0 {
		s.At = accepted.Add(s.In)
		s.In = 0
	}
	s.At, s.Start, s.End = utc(s.At), utc(s.Start), utc(s.End)
	s.Created, s.Updated = now.UTC(), now.UTC()
	if prev != nil && !prev.Created.IsZero() {
		s.Created = prev.Created
	}
	s.Generation = gen
	s.Runs, s.LastRun, s.LastError, s.Triggers = 0, time.Time{}, "", nil
	adoptTrace(s)
	if s.Every > 0 {
		if s.Anchor.IsZero() {
			s.Anchor = s.Start
			if s.Anchor.IsZero() {
				s.Anchor = accepted.Add(s.Every)
			}
		}
		s.Anchor = s.Anchor.UTC()
	} else {
		s.Anchor = time.Time{}
	}
	if s.Recurring() && s.Misfire == "" {
		s.Misfire = natsched.DefaultMisfire
	}
	w, err := windowOf(s)
	if err != nil {
		return err
	}
	if s.Recurring() {
		s.NextRun = w.after(accepted)
	} else {
		s.NextRun = s.At
	}
	s.NextRun = utc(s.NextRun)
	s.Status = status(s)
	return nil
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

func status(s *natsched.Schedule) natsched.Status {
	switch {
	case s.NextRun.IsZero() && len(s.Triggers) == 0:
		return natsched.StatusDone
	case s.Paused:
		return natsched.StatusPaused
	}
	return natsched.StatusActive
}

func (o Options) jittered(s *natsched.Schedule, planned time.Time) time.Time {
	return planned.Add(natsched.JitterFor(s.ID, s.Generation, planned, s.Jitter))
}

// Due returns when s next needs the scheduler: the fire time of its next
// occurrence, its earliest pending trigger, or, once done, the end of its
// retention (when Step reports it expired). The zero time means never.
func Due(s *natsched.Schedule, o Options) time.Time {
	o = o.WithDefaults()
	var due time.Time
	earlier := func(t time.Time) {
		if !t.IsZero() && (due.IsZero() || t.Before(due)) {
			due = t
		}
	}
	if len(s.Triggers) > 0 {
		// Accepted triggers are due at once, whatever their planned time
		// (which may lie a nanosecond ahead to keep their IDs distinct).
		earlier(time.Unix(0, 1))
	}
	if s.Status == natsched.StatusDone {
		earlier(s.Updated.Add(o.Retention))
		return due
	}
	if !s.Paused && !s.NextRun.IsZero() {
		earlier(o.jittered(s, s.NextRun))
	}
	return due
}

// Step fires what is due at now and advances s. An occurrence planned
// more than the misfire threshold before now was missed (nobody was
// running, or the scheduler fell behind), and its schedule's misfire
// policy applies. It returns the occurrences to publish, in order, and
// whether s has outlived its retention and should be deleted. At most
// MaxFiresPerStep scheduled occurrences come from one Step; if more are
// due, Due still says so (see Requeue).
func Step(s *natsched.Schedule, now time.Time, o Options) (fired []natsched.Occurrence, expired bool, err error) {
	o = o.WithDefaults()
	if s.Status == natsched.StatusDone && len(s.Triggers) == 0 {
		return nil, !now.Before(s.Updated.Add(o.Retention)), nil
	}
	occ := func(planned time.Time, trigger bool) {
		s.Runs++
		var j time.Duration
		if !trigger {
			j = natsched.JitterFor(s.ID, s.Generation, planned, s.Jitter)
		}
		fired = append(fired, natsched.Occurrence{ID: s.ID, Generation: s.Generation,
			Planned: planned, Run: s.Runs, Jitter: j, Trigger: trigger})
		if planned.After(s.LastRun) {
			s.LastRun = planned
		}
	}
	full := func() bool { return s.MaxRuns > 0 && s.Runs >= s.MaxRuns }

	if len(s.Triggers) > 0 {
		slices.SortFunc(s.Triggers, time.Time.Compare)
		for _, t := range s.Triggers {
			if !full() {
				occ(t, true)
			}
		}
		s.Triggers = nil
	}

	if !s.Paused && !s.NextRun.IsZero() && !full() {
		w, werr := windowOf(s)
		if werr != nil {
			// A stored schedule that no longer parses (say, a zone removed
			// from tzdata) must not wedge the scheduler.
			s.LastError = werr.Error()
			s.NextRun = time.Time{}
			err = fmt.Errorf("schedule %s: %w", s.ID, werr)
		} else if !s.Recurring() {
			if !o.jittered(s, s.NextRun).After(now) {
				occ(s.NextRun, false)
				s.NextRun = time.Time{}
			}
		} else {
			budget := o.MaxFiresPerStep
			// Missed for sure: planned so long ago that even the largest
			// jitter would have it fire more than the threshold ago.
			if cutoff := now.Add(-o.MisfireThreshold - s.Jitter); s.NextRun.Before(cutoff) {
				budget -= misfire(s, w, now, cutoff, budget, o, occ, full)
			}
			for n := 0; n < budget && !s.NextRun.IsZero() && !full(); n++ {
				if o.jittered(s, s.NextRun).After(now) {
					break
				}
				occ(s.NextRun, false)
				s.NextRun = w.after(s.NextRun)
			}
		}
	}
	if full() {
		s.NextRun = time.Time{}
		s.Triggers = nil
	}
	if len(fired) > 0 || err != nil {
		s.Updated = now.UTC()
	}
	if st := status(s); st != s.Status {
		s.Status = st
		s.Updated = now.UTC()
	}
	return fired, false, err
}

// Requeue is where a schedule goes in a due queue after a Step at now:
// at its Due time, or at now if it is still due (a backlog the step's
// budget left), so that it queues behind everything already due instead
// of ahead of it.
func Requeue(due, now time.Time) time.Time {
	if !due.IsZero() && due.Before(now) {
		return now
	}
	return due
}

// misfire applies the schedule's policy to the occurrences planned before
// cutoff, leaving NextRun at the first occurrence at or after it. It fires
// at most budget of them (catchupPerStep for policy all, which leaves
// NextRun at the next missed one), returns how many, and reports what it
// skipped or collapsed to o.OnMissed.
func misfire(s *natsched.Schedule, w window, now, cutoff time.Time, budget int, o Options, occ func(time.Time, bool), full func() bool) int {
	resume := w.atOrAfter(cutoff)
	switch s.Misfire {
	case natsched.MisfireSkip:
		o.missed(natsched.MisfireSkip, w.count(s.NextRun, cutoff))
	case natsched.MisfireAll:
		catchup := s.Catchup
		if catchup <= 0 {
			catchup = natsched.DefaultCatchup
		}
		p := s.NextRun
		if from := now.Add(-catchup); p.Before(from) {
			p = w.atOrAfter(from)
			o.missed(natsched.MisfireAll, w.count(s.NextRun, from))
		}
		// Keep the latest MaxCatchupRuns occurrences of the window: walk at
		// most that many (and one) unless there are more.
		var ring []time.Time
		dropped := 0
		for n := 0; !p.IsZero() && p.Before(cutoff) && n < maxScan; n++ {
			if len(ring) == natsched.MaxCatchupRuns {
				ring = ring[1:]
				dropped++
			}
			ring = append(ring, p)
			p = w.after(p)
		}
		o.missed(natsched.MisfireAll, dropped)
		n := 0
		for _, t := range ring {
			if full() {
				break
			}
			if n == max(budget, catchupPerStep) {
				s.NextRun = t // the rest come with the next steps
				return n
			}
			occ(t, false)
			n++
		}
		s.NextRun = resume
		return n
	default: // once
		latest := lastBefore(s, w, cutoff)
		if !latest.IsZero() {
			o.missed(natsched.MisfireOnce, w.count(s.NextRun, latest))
			occ(latest, false)
			s.NextRun = resume
			return 1
		}
	}
	s.NextRun = resume
	return 0
}

// lastBefore returns the latest occurrence from s.NextRun on that is
// planned before cutoff.
func lastBefore(s *natsched.Schedule, w window, cutoff time.Time) time.Time {
	if e, ok := w.spec.(natsched.Every); ok {
		first := w.atOrAfter(cutoff)
		if first.IsZero() { // past the end: walk back from the end
			first = w.atOrAfter(w.end.Add(time.Nanosecond))
		}
		if !first.IsZero() {
			if l := first.Add(-e.Interval); !l.Before(s.NextRun) {
				return l
			}
			return s.NextRun
		}
	}
	latest := s.NextRun
	for n := 0; n < maxScan; n++ {
		p := w.after(latest)
		if p.IsZero() || !p.Before(cutoff) {
			break
		}
		latest = p
	}
	return latest
}

// Pause marks s paused. Occurrences planned while paused are skipped (see
// Resume).
func Pause(s *natsched.Schedule, now time.Time) {
	s.Paused = true
	s.Status = status(s)
	s.Updated = now.UTC()
}

// Resume unpauses s: a recurring schedule's next fire is its first
// occurrence after now; a one-shot keeps its time and fires at once if it
// has passed.
func Resume(s *natsched.Schedule, now time.Time) error {
	s.Paused = false
	if s.Recurring() && s.Status != natsched.StatusDone {
		w, err := windowOf(s)
		if err != nil {
			return err
		}
		if !s.NextRun.IsZero() && !s.NextRun.After(now) {
			s.NextRun = utc(w.after(now))
		}
	}
	s.Status = status(s)
	s.Updated = now.UTC()
	return nil
}

// Trigger records an extra occurrence planned at now. It is ErrConflict on
// a done schedule, or when pending triggers would already reach max_runs.
func Trigger(s *natsched.Schedule, now time.Time) error {
	if s.Status == natsched.StatusDone {
		return fmt.Errorf("%w: schedule %s is done", natsched.ErrConflict, s.ID)
	}
	if s.MaxRuns > 0 && s.Runs+int64(len(s.Triggers)) >= s.MaxRuns {
		return fmt.Errorf("%w: schedule %s: pending triggers already reach max_runs", natsched.ErrConflict, s.ID)
	}
	// Two triggers accepted at the same instant (a coarse or simulated
	// clock) must still be two occurrences with two IDs.
	planned := now.UTC()
	for _, t := range append(s.Triggers, s.LastRun) {
		if !planned.After(t) {
			planned = t.Add(time.Nanosecond)
		}
	}
	s.Triggers = append(s.Triggers, planned)
	s.Updated = now.UTC()
	return nil
}

// adoptTrace takes a traceparent (and tracestate) given among the
// schedule's headers as its creator's trace context: fired messages carry a
// traceparent of their own per occurrence, and the header would otherwise
// repeat one span on every fire.
func adoptTrace(s *natsched.Schedule) {
	var tp, ts string
	var h nats.Header
	for k, vs := range s.Header {
		switch {
		case strings.EqualFold(k, natsched.HeaderTraceParent) && len(vs) > 0:
			tp = vs[0]
		case strings.EqualFold(k, natsched.HeaderTraceState) && len(vs) > 0:
			ts = vs[0]
		default:
			if h == nil {
				h = nats.Header{}
			}
			h[k] = vs
		}
	}
	if tp == "" && ts == "" {
		return
	}
	if _, _, _, ok := natsched.ParseTraceParent(tp); ok && s.TraceParent == "" {
		s.TraceParent, s.TraceState = tp, ts
	}
	s.Header = h
}
