package natsched

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// ScheduleOption shapes a schedule made by the typed helpers.
type ScheduleOption func(*helperConfig)

type helperConfig struct {
	s   Schedule
	reg *Registry
}

// WithID sets the schedule ID (default: the type name and a random token,
// such as "email.send.Xy8...").
func WithID(id string) ScheduleOption { return func(c *helperConfig) { c.s.ID = id } }

// WithSubject sets the target subject (default "natsched.fire.<type name>").
func WithSubject(subject string) ScheduleOption {
	return func(c *helperConfig) { c.s.Subject = subject }
}

// InZone reads a cron expression in an IANA time zone (default UTC).
func InZone(tz string) ScheduleOption { return func(c *helperConfig) { c.s.TZ = tz } }

// WithHeader adds a header to every fired message.
func WithHeader(key, value string) ScheduleOption {
	return func(c *helperConfig) {
		if c.s.Header == nil {
			c.s.Header = nats.Header{}
		}
		c.s.Header.Add(key, value)
	}
}

// WithJitter delays each occurrence by a deterministic random amount in
// [0, d].
func WithJitter(d time.Duration) ScheduleOption { return func(c *helperConfig) { c.s.Jitter = d } }

// WithMisfire sets the misfire policy of a recurring schedule.
func WithMisfire(m Misfire) ScheduleOption { return func(c *helperConfig) { c.s.Misfire = m } }

// WithCatchup sets how far back MisfireAll goes.
func WithCatchup(d time.Duration) ScheduleOption { return func(c *helperConfig) { c.s.Catchup = d } }

// WithMaxRuns stops a recurring schedule after n fires.
func WithMaxRuns(n int64) ScheduleOption { return func(c *helperConfig) { c.s.MaxRuns = n } }

// WithWindow bounds a recurring schedule: no occurrence before start or
// after end (zero: unbounded).
func WithWindow(start, end time.Time) ScheduleOption {
	return func(c *helperConfig) { c.s.Start, c.s.End = start, end }
}

// StartPaused creates the schedule paused.
func StartPaused() ScheduleOption { return func(c *helperConfig) { c.s.Paused = true } }

// WithRegistry names the registry that knows the message type, for
// schedulers that do not carry one.
func WithRegistry(r *Registry) ScheduleOption { return func(c *helperConfig) { c.reg = r } }

// registryCarrier is implemented by schedulers built with a Router or
// Registry.
type registryCarrier interface{ Registry() *Registry }

// ScheduleIn delivers msg once, delay from now. It returns the schedule ID.
func ScheduleIn[T any](ctx context.Context, s Scheduler, msg T, delay time.Duration, opts ...ScheduleOption) (string, error) {
	if delay <= 0 {
		return "", Invalid("in", "delay must be positive, got %s", delay)
	}
	return schedule(ctx, s, msg, Schedule{In: delay}, opts)
}

// ScheduleAt delivers msg once at t.
func ScheduleAt[T any](ctx context.Context, s Scheduler, msg T, t time.Time, opts ...ScheduleOption) (string, error) {
	if t.IsZero() {
		return "", Invalid("at", "required")
	}
	return schedule(ctx, s, msg, Schedule{At: t}, opts)
}

// ScheduleEvery delivers msg every interval.
func ScheduleEvery[T any](ctx context.Context, s Scheduler, msg T, interval time.Duration, opts ...ScheduleOption) (string, error) {
	return schedule(ctx, s, msg, Schedule{Every: interval}, opts)
}

// ScheduleCron delivers msg at each occurrence of a cron expression.
func ScheduleCron[T any](ctx context.Context, s Scheduler, msg T, expr string, opts ...ScheduleOption) (string, error) {
	return schedule(ctx, s, msg, Schedule{Cron: expr}, opts)
}

// Cancel deletes schedule id; ErrNotFound if there is none.
func Cancel(ctx context.Context, s Scheduler, id string) error {
	_, err := s.Cancel(ctx, id)
	return err
}

func schedule[T any](ctx context.Context, s Scheduler, msg T, when Schedule, opts []ScheduleOption) (string, error) {
	c := helperConfig{s: when}
	for _, o := range opts {
		o(&c)
	}
	c.s.At, c.s.In, c.s.Every, c.s.Cron = when.At, when.In, when.Every, when.Cron
	if c.reg == nil {
		if rc, ok := s.(registryCarrier); ok {
			c.reg = rc.Registry()
		}
	}
	if c.reg == nil {
		return "", fmt.Errorf("%w: the scheduler has no registry; pass natsched.WithRegistry", ErrUnknownType)
	}
	name, data, err := Encode(c.reg, msg)
	if err != nil {
		return "", err
	}
	c.s.Type, c.s.Data = name, data
	if c.s.ID == "" {
		c.s.ID = name + "." + nuid.Next()
	}
	if c.s.Subject == "" {
		c.s.Subject = fmt.Sprintf(DefaultSubjectFmt, name)
	}
	stored, err := s.Put(ctx, &c.s)
	if err != nil {
		return "", err
	}
	return stored.ID, nil
}
