// Package memory is an in-process natsched.Scheduler: one min-heap, one
// timer, an injectable clock, no persistence. It is meant for tests and
// single-process use, and it is exact: driven by a clock.Fake, every
// occurrence is dispatched once, with the clock reading its planned instant
// (plus its jitter).
//
// Fired messages go to a natsched.Dispatcher, normally a *natsched.Router,
// in the goroutine of the timer, one at a time. A handler error is reported
// to the error handler and not retried.
package memory

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/clock"
	"github.com/natsched/natsched/internal/dueheap"
	"github.com/natsched/natsched/internal/engine"
)

// DefaultMaxPayload matches nats-server's default max_payload.
const DefaultMaxPayload = 1 << 20

// Option configures a Scheduler.
type Option func(*Scheduler) error

// WithClock sets the time source (default clock.Real()).
func WithClock(c clock.Clock) Option {
	return func(s *Scheduler) error {
		if c == nil {
			return fmt.Errorf("%w: nil clock", natsched.ErrInvalid)
		}
		s.clock = c
		return nil
	}
}

// WithDispatcher sets where fired messages go, typically a *natsched.Router.
// Without one, fired messages are only counted.
func WithDispatcher(d natsched.Dispatcher) Option {
	return func(s *Scheduler) error { s.dispatcher = d; return nil }
}

// WithErrorHandler is called with each message whose dispatch failed
// (default: log through slog).
func WithErrorHandler(f func(*natsched.Message, error)) Option {
	return func(s *Scheduler) error { s.onError = f; return nil }
}

// WithMisfireThreshold sets how late an occurrence may fire before it
// counts as missed and its schedule's misfire policy applies (default 1s).
func WithMisfireThreshold(d time.Duration) Option {
	return func(s *Scheduler) error {
		if d <= 0 {
			return fmt.Errorf("%w: misfire threshold must be positive", natsched.ErrInvalid)
		}
		s.opts.MisfireThreshold = d
		return nil
	}
}

// WithRetention sets how long done schedules stay readable (default 24h).
func WithRetention(d time.Duration) Option {
	return func(s *Scheduler) error {
		if d <= 0 {
			return fmt.Errorf("%w: retention must be positive", natsched.ErrInvalid)
		}
		s.opts.Retention = d
		return nil
	}
}

// WithMaxPayload sets the largest stored schedule, in bytes of JSON
// (default 1 MiB, as nats-server); larger ones are ErrTooLarge.
func WithMaxPayload(n int) Option {
	return func(s *Scheduler) error {
		if n <= 0 {
			return fmt.Errorf("%w: max payload must be positive", natsched.ErrInvalid)
		}
		s.maxPayload = n
		return nil
	}
}

// Scheduler is the in-memory scheduler. Create it with New; it starts
// firing at once and stops at Close.
type Scheduler struct {
	clock      clock.Clock
	opts       engine.Options
	dispatcher natsched.Dispatcher
	onError    func(*natsched.Message, error)
	maxPayload int

	mu      sync.Mutex
	items   map[string]*item
	index   dueheap.Heap[*item]
	timer   clock.Timer
	timerAt time.Time
	rev     uint64
	gen     uint64
	leading bool
	closed  bool
	fired   uint64

	fireMu sync.Mutex // one tick at a time, dispatch included
	ctx    context.Context
	cancel context.CancelFunc
}

var _ natsched.Scheduler = (*Scheduler)(nil)

// New returns a running Scheduler.
func New(opts ...Option) (*Scheduler, error) {
	s := &Scheduler{
		clock:      clock.Real(),
		maxPayload: DefaultMaxPayload,
		items:      make(map[string]*item),
		gen:        rand.Uint64() >> 1, // distinct generations across processes
		leading:    true,
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	s.opts = s.opts.WithDefaults()
	if s.onError == nil {
		s.onError = func(m *natsched.Message, err error) {
			slog.Error("natsched: dispatch failed", "id", m.ScheduleID(), "subject", m.Subject, "err", err)
		}
	}
	// The scheduler owns this context and cancels it at Close; it only
	// reaches handlers.
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.timer = s.clock.AfterFunc(time.Hour, s.tick)
	s.timer.Stop()
	return s, nil
}

// Close stops firing and waits for a dispatch in progress, or for ctx. It
// is safe to call more than once.
func (s *Scheduler) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.timer.Stop()
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() {
		s.fireMu.Lock()
		s.fireMu.Unlock() //nolint:staticcheck // waiting for the tick in progress
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// StepDown stops firing as if this scheduler had lost its lease; nothing
// fires until TakeOver. Tests use it to simulate downtime for misfire
// policies.
func (s *Scheduler) StepDown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leading = false
	s.timer.Stop()
	s.timerAt = time.Time{}
}

// TakeOver resumes firing as a new leader would: occurrences planned more
// than the misfire threshold before now count as missed.
func (s *Scheduler) TakeOver() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leading = true
	s.rearm(s.clock.Now())
}

// Fired returns how many occurrences have been fired.
func (s *Scheduler) Fired() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fired
}

// Pending returns how many schedules are waiting in the index.
func (s *Scheduler) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index.Len()
}

// Put implements natsched.Scheduler.
func (s *Scheduler) Put(ctx context.Context, in *natsched.Schedule) (*natsched.Schedule, error) {
	if in == nil {
		return nil, natsched.Invalid("body", "nil schedule")
	}
	c := in.Clone()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, natsched.ErrClosed
	}
	now := s.clock.Now()
	it := s.items[c.ID]
	var prev *natsched.Schedule
	if it != nil {
		prev = it.s
	}
	if c.Revision != 0 && (prev == nil || prev.Revision != c.Revision) {
		return nil, fmt.Errorf("%w: %s: revision %d is not the current one", natsched.ErrConflict, c.ID, c.Revision)
	}
	s.gen++
	if err := engine.Accept(c, prev, now, now, s.gen); err != nil {
		return nil, err
	}
	s.rev++
	c.Revision = s.rev
	if b, err := json.Marshal(c); err != nil {
		return nil, err
	} else if len(b) > s.maxPayload {
		return nil, fmt.Errorf("%w: data: schedule of %d bytes exceeds max payload %d", natsched.ErrTooLarge, len(b), s.maxPayload)
	}
	if it == nil {
		it = &item{s: c, pos: -1}
		s.items[c.ID] = it
	}
	it.s = c
	s.reindex(it, now)
	return c.Clone(), nil
}

// Get implements natsched.Scheduler.
func (s *Scheduler) Get(ctx context.Context, id string) (*natsched.Schedule, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.lookup(id)
	if err != nil {
		return nil, err
	}
	return it.s.Clone(), nil
}

// Cancel implements natsched.Scheduler.
func (s *Scheduler) Cancel(ctx context.Context, id string) (*natsched.Schedule, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.lookup(id)
	if err != nil {
		return nil, err
	}
	s.remove(it)
	s.rearm(s.clock.Now())
	return it.s.Clone(), nil
}

// Pause implements natsched.Scheduler.
func (s *Scheduler) Pause(ctx context.Context, id string) (*natsched.Schedule, error) {
	return s.update(id, func(c *natsched.Schedule, now time.Time) error {
		engine.Pause(c, now)
		return nil
	})
}

// Resume implements natsched.Scheduler.
func (s *Scheduler) Resume(ctx context.Context, id string) (*natsched.Schedule, error) {
	return s.update(id, engine.Resume)
}

// Trigger implements natsched.Scheduler.
func (s *Scheduler) Trigger(ctx context.Context, id string) (*natsched.Schedule, error) {
	return s.update(id, engine.Trigger)
}

func (s *Scheduler) update(id string, f func(*natsched.Schedule, time.Time) error) (*natsched.Schedule, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, natsched.ErrClosed
	}
	it, err := s.lookup(id)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	c := it.s.Clone()
	if err := f(c, now); err != nil {
		return nil, err
	}
	s.rev++
	c.Revision = s.rev
	it.s = c
	s.reindex(it, now)
	return c.Clone(), nil
}

func (s *Scheduler) lookup(id string) (*item, error) {
	if !natsched.ValidID(id) {
		return nil, natsched.Invalid("id", "%q is not a valid schedule ID", id)
	}
	it := s.items[id]
	if it == nil {
		return nil, fmt.Errorf("%w: %s", natsched.ErrNotFound, id)
	}
	return it, nil
}

// List implements natsched.Scheduler.
func (s *Scheduler) List(ctx context.Context, o natsched.ListOptions) (*natsched.ListPage, error) {
	limit, err := natsched.CheckList(&o)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	ids := make([]string, 0, len(s.items))
	for id, it := range s.items {
		if id > o.After && natsched.MatchPrefix(id, o.Prefix) && (o.Status == "" || it.s.Status == o.Status) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	page := &natsched.ListPage{Schedules: []*natsched.Schedule{}}
	for _, id := range ids {
		if len(page.Schedules) == limit {
			page.Next = page.Schedules[limit-1].ID
			break
		}
		page.Schedules = append(page.Schedules, s.items[id].s.Clone())
	}
	s.mu.Unlock()
	return page, nil
}

// reindex puts it where its due time says, or takes it out of the index.
func (s *Scheduler) reindex(it *item, now time.Time) {
	due := engine.Due(it.s, s.opts)
	switch {
	case due.IsZero() && it.pos >= 0:
		s.index.Remove(it)
	case due.IsZero():
	case it.pos >= 0:
		it.due = due.UnixNano()
		s.index.Fix(it)
	default:
		it.due = due.UnixNano()
		s.index.Push(it)
	}
	s.rearm(now)
}

func (s *Scheduler) remove(it *item) {
	if it.pos >= 0 {
		s.index.Remove(it)
	}
	delete(s.items, it.s.ID)
}

// rearm points the one timer at the earliest due time.
func (s *Scheduler) rearm(now time.Time) {
	if s.closed || !s.leading {
		return
	}
	first, ok := s.index.Peek()
	if !ok {
		s.timer.Stop()
		s.timerAt = time.Time{}
		return
	}
	due := time.Unix(0, first.due)
	if due.Equal(s.timerAt) {
		return
	}
	s.timerAt = due
	s.timer.Reset(due.Sub(now))
}

// tick fires everything due, then dispatches outside the state lock so
// that handlers may call the scheduler.
func (s *Scheduler) tick() {
	s.fireMu.Lock()
	defer s.fireMu.Unlock()
	s.mu.Lock()
	if s.closed || !s.leading {
		s.mu.Unlock()
		return
	}
	s.timerAt = time.Time{}
	now := s.clock.Now()
	var out []*natsched.Message
	for {
		it, ok := s.index.Peek()
		if !ok || it.due > now.UnixNano() {
			break
		}
		c := it.s.Clone()
		occs, expired, err := engine.Step(c, now, s.opts)
		if expired {
			s.remove(it)
			continue
		}
		if err != nil {
			slog.Error("natsched: schedule cannot fire", "id", c.ID, "err", err)
		}
		for _, o := range occs {
			out = append(out, natsched.FiredMessage(c, o))
		}
		s.fired += uint64(len(occs))
		s.rev++
		c.Revision = s.rev
		it.s = c
		due := engine.Requeue(engine.Due(c, s.opts), now)
		if due.IsZero() {
			s.index.Remove(it)
		} else {
			it.due = due.UnixNano()
			s.index.Fix(it)
		}
	}
	s.rearm(now)
	s.mu.Unlock()
	for _, m := range out {
		if s.dispatcher == nil {
			continue
		}
		if err := s.dispatch(m); err != nil {
			s.onError(m, err)
		}
	}
}

func (s *Scheduler) dispatch(m *natsched.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", natsched.ErrHandlerPanic, r)
		}
	}()
	return s.dispatcher.Dispatch(natsched.WithFired(s.ctx, natsched.FiredOf(m, 1)), m)
}

type item struct {
	s   *natsched.Schedule
	due int64 // unix ns
	pos int   // in index, -1 when out
}

// Items are in a dueheap: by due time, then ID, so that ties fire in a
// stable order.
func (it *item) Due() int64   { return it.due }
func (it *item) Key() string  { return it.s.ID }
func (it *item) SetPos(i int) { it.pos = i }
func (it *item) Pos() int     { return it.pos }

// Registry returns the registry of the dispatcher when it is a
// *natsched.Router, so that the typed helpers (natsched.ScheduleIn, ...)
// can encode messages without being told.
func (s *Scheduler) Registry() *natsched.Registry {
	if r, ok := s.dispatcher.(*natsched.Router); ok {
		return r.Registry()
	}
	return nil
}
