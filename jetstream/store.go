package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	js "github.com/nats-io/nats.go/jetstream"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/internal/engine"
)

// maxCASAttempts bounds read-modify-write retries against concurrent
// writers (the leader recording fires, other API calls).
const maxCASAttempts = 32

// targetCheckTTL is how long a positive "some stream captures this
// subject" answer is trusted.
const targetCheckTTL = 30 * time.Second

func (s *Scheduler) ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return natsched.ErrClosed
	case s.kv == nil:
		return fmt.Errorf("%w: not started", natsched.ErrUnavailable)
	}
	return nil
}

// unavailable maps transport failures to ErrUnavailable (503).
func unavailable(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", natsched.ErrUnavailable, err)
}

// load reads schedule id with its revision; ErrNotFound if absent,
// ErrUnreadable if the stored value is not a schedule.
func (s *Scheduler) load(ctx context.Context, id string) (*natsched.Schedule, error) {
	_, sch, err := s.loadEntry(ctx, id)
	return sch, err
}

// loadEntry is load that also returns the entry, so that an unreadable
// value can still be deleted at its revision.
func (s *Scheduler) loadEntry(ctx context.Context, id string) (js.KeyValueEntry, *natsched.Schedule, error) {
	if !natsched.ValidID(id) {
		return nil, nil, natsched.Invalid("id", "%q is not a valid schedule ID", id)
	}
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, js.ErrKeyNotFound) {
		return nil, nil, fmt.Errorf("%w: %s", natsched.ErrNotFound, id)
	}
	if err != nil {
		return nil, nil, unavailable(err)
	}
	sch, err := decodeEntry(e)
	return e, sch, err
}

func decodeEntry(e js.KeyValueEntry) (*natsched.Schedule, error) {
	return decodeValue(e.Key(), e.Revision(), e.Value())
}

// decodeValue decodes the value of key at revision rev; an error wraps
// natsched.ErrUnreadable (whatever the decoder said is detail, not a
// request's invalid field).
func decodeValue(key string, rev uint64, value []byte) (*natsched.Schedule, error) {
	var sch natsched.Schedule
	if err := json.Unmarshal(value, &sch); err != nil {
		return nil, fmt.Errorf("%w: stored: %s: %v", natsched.ErrUnreadable, key, err)
	}
	// The key is the ID, whatever the value says.
	sch.ID, sch.Revision = key, rev
	return &sch, nil
}

// encode renders a schedule for the bucket and checks it fits.
func (s *Scheduler) encode(sch *natsched.Schedule) ([]byte, error) {
	b, err := json.Marshal(sch)
	if err != nil {
		return nil, err
	}
	if limit := int(s.nc.MaxPayload()); len(b) > limit {
		return nil, fmt.Errorf("%w: data: the schedule takes %d bytes stored, over the server's max payload of %d", natsched.ErrTooLarge, len(b), limit)
	}
	if err := s.checkFired(sch); err != nil {
		return nil, err
	}
	return b, nil
}

// checkFired makes sure every fired message of sch can be stored: its
// headers within JetStream's header limit, and headers and payload within
// the server's max payload.
func (s *Scheduler) checkFired(sch *natsched.Schedule) error {
	h := natsched.FiredHeaderBytes(sch)
	if h > natsched.MaxHeaderBytes {
		return fmt.Errorf("%w: header: the fired message's headers would take %d bytes, over JetStream's limit of %d", natsched.ErrTooLarge, h, natsched.MaxHeaderBytes)
	}
	// The subject and a reply subject count against max payload too.
	n := len(sch.Data) + h + len(sch.Subject) + 128
	if limit := int(s.nc.MaxPayload()); n > limit {
		return fmt.Errorf("%w: data: the fired message would take %d bytes, over the server's max payload of %d", natsched.ErrTooLarge, n, limit)
	}
	return nil
}

// checkTarget makes sure some stream captures subject, so that fired
// messages are stored rather than lost.
func (s *Scheduler) checkTarget(ctx context.Context, subject string) error {
	now := s.now()
	if until, ok := s.targets.Load(subject); ok && now.Before(until.(time.Time)) {
		return nil
	}
	_, err := s.js.StreamNameBySubject(ctx, subject)
	switch {
	case errors.Is(err, js.ErrStreamNotFound):
		return natsched.Invalid("subject", "no JetStream stream captures %q, so fired messages would be lost; publish to %s or create a stream for it", subject, s.names.FireSubjects)
	case err != nil:
		return unavailable(err)
	}
	s.targets.Store(subject, now.Add(targetCheckTTL))
	return nil
}

func newGeneration() uint64 {
	for {
		if g := rand.Uint64(); g != 0 {
			return g
		}
	}
}

// Put implements natsched.Scheduler.
func (s *Scheduler) Put(ctx context.Context, in *natsched.Schedule) (*natsched.Schedule, error) {
	return s.put(ctx, in, putOptions{})
}

type putOptions struct {
	accepted time.Time // when the request was accepted (zero: now)
	// generation, when set, is the new definition's generation; a stored
	// schedule already at it is returned unchanged, so that a redelivered
	// intake message does not replace (and refire) its own schedule.
	generation uint64
}

// put stores a definition.
func (s *Scheduler) put(ctx context.Context, in *natsched.Schedule, po putOptions) (*natsched.Schedule, error) {
	if in == nil {
		return nil, natsched.Invalid("body", "nil schedule")
	}
	if err := s.ready(); err != nil {
		return nil, err
	}
	if err := s.admit(in.ID, in); err != nil {
		return nil, err
	}
	if err := s.checkTarget(ctx, in.Subject); err != nil {
		return nil, err
	}
	// Most puts create a new ID: try that first (one round trip) and read
	// the stored schedule only if the key turns out to exist.
	optimistic := in.Revision == 0
	for range maxCASAttempts {
		var prev *natsched.Schedule
		var err error
		if !optimistic {
			var e js.KeyValueEntry
			e, prev, err = s.loadEntry(ctx, in.ID)
			switch {
			case errors.Is(err, natsched.ErrUnreadable):
				// Replace what is not a schedule, keeping compare-and-set.
				prev = &natsched.Schedule{ID: in.ID, Revision: e.Revision()}
			case err != nil && !errors.Is(err, natsched.ErrNotFound):
				return nil, err
			}
		}
		optimistic = false
		if in.Revision != 0 && (prev == nil || prev.Revision != in.Revision) {
			return nil, fmt.Errorf("%w: revision: %d is not the current revision of %s", natsched.ErrConflict, in.Revision, in.ID)
		}
		if prev != nil && po.generation != 0 && prev.Generation == po.generation {
			return prev, nil // already applied
		}
		now := s.now()
		acc := po.accepted
		if acc.IsZero() {
			acc = now
		}
		gen := po.generation
		if gen == 0 {
			gen = newGeneration()
		}
		next := in.Clone()
		if err := engine.Accept(next, prev, acc, now, gen); err != nil {
			return nil, err
		}
		next.Revision = 0
		b, err := s.encode(next)
		if err != nil {
			return nil, err
		}
		var rev uint64
		if prev == nil {
			rev, err = s.kv.Create(ctx, in.ID, b)
		} else {
			rev, err = s.kv.Update(ctx, in.ID, b, prev.Revision)
		}
		switch {
		case err == nil:
			next.Revision = rev
			return next, nil
		case errors.Is(err, js.ErrKeyExists) || errors.Is(err, js.ErrKeyRevisionMismatch):
			if in.Revision != 0 {
				return nil, fmt.Errorf("%w: revision: %d is not the current revision of %s", natsched.ErrConflict, in.Revision, in.ID)
			}
			continue // another writer got in between: read again
		default:
			return nil, unavailable(err)
		}
	}
	return nil, fmt.Errorf("%w: %s: too many concurrent writers", natsched.ErrConflict, in.ID)
}

// Get implements natsched.Scheduler.
func (s *Scheduler) Get(ctx context.Context, id string) (*natsched.Schedule, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	return s.load(ctx, id)
}

// Cancel implements natsched.Scheduler. A stored value that is not a
// schedule is deleted too; the reply then holds only its ID, revision and,
// in LastError, why it could not be read.
func (s *Scheduler) Cancel(ctx context.Context, id string) (*natsched.Schedule, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	for range maxCASAttempts {
		e, prev, err := s.loadEntry(ctx, id)
		if errors.Is(err, natsched.ErrUnreadable) {
			prev = &natsched.Schedule{ID: id, Revision: e.Revision(), LastError: strings.TrimPrefix(err.Error(), natsched.ErrUnreadable.Error()+": ")}
		} else if err != nil {
			return nil, err
		}
		err = s.kv.Delete(ctx, id, js.LastRevision(prev.Revision))
		switch {
		case err == nil:
			return prev, nil
		case errors.Is(err, js.ErrKeyRevisionMismatch) || errors.Is(err, js.ErrKeyExists):
			continue
		default:
			return nil, unavailable(err)
		}
	}
	return nil, fmt.Errorf("%w: %s: too many concurrent writers", natsched.ErrConflict, id)
}

// Pause implements natsched.Scheduler.
func (s *Scheduler) Pause(ctx context.Context, id string) (*natsched.Schedule, error) {
	return s.update(ctx, id, func(c *natsched.Schedule, now time.Time) error {
		engine.Pause(c, now)
		return nil
	})
}

// Resume implements natsched.Scheduler.
func (s *Scheduler) Resume(ctx context.Context, id string) (*natsched.Schedule, error) {
	return s.update(ctx, id, engine.Resume)
}

// Trigger implements natsched.Scheduler.
func (s *Scheduler) Trigger(ctx context.Context, id string) (*natsched.Schedule, error) {
	return s.update(ctx, id, engine.Trigger)
}

// update applies f to the stored schedule with compare-and-set, reading
// again when another writer got in between.
func (s *Scheduler) update(ctx context.Context, id string, f func(*natsched.Schedule, time.Time) error) (*natsched.Schedule, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	for range maxCASAttempts {
		c, err := s.load(ctx, id)
		if err != nil {
			return nil, err
		}
		rev := c.Revision
		if err := f(c, s.now()); err != nil {
			return nil, err
		}
		c.Revision = 0
		b, err := s.encode(c)
		if err != nil {
			return nil, err
		}
		nrev, err := s.kv.Update(ctx, id, b, rev)
		switch {
		case err == nil:
			c.Revision = nrev
			return c, nil
		case errors.Is(err, js.ErrKeyRevisionMismatch):
			continue
		default:
			return nil, unavailable(err)
		}
	}
	return nil, fmt.Errorf("%w: %s: too many concurrent writers", natsched.ErrConflict, id)
}
