package jetstream

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
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

// store is the schedules bucket: reads, and writes that are all
// compare-and-set on the KV revision through one loop (apply), whoever
// makes them (the API, intake, the firer's careful path).
type store struct {
	kv    js.KeyValue
	js    js.JetStream
	names Names
	rules *rules
	now   func() time.Time
	log   *slog.Logger
	// candidates asks the firer's index for the IDs of a status-filtered
	// list page (see firer.candidates).
	candidates func(ctx context.Context, r listReq) ([]string, error)

	targets sync.Map // subject -> time.Time: when the positive check expires
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
func (st *store) load(ctx context.Context, id string) (*natsched.Schedule, error) {
	_, sch, err := st.loadEntry(ctx, id)
	return sch, err
}

// loadEntry is load that also returns the entry, so that an unreadable
// value can still be replaced or deleted at its revision.
func (st *store) loadEntry(ctx context.Context, id string) (js.KeyValueEntry, *natsched.Schedule, error) {
	if !natsched.ValidID(id) {
		return nil, nil, natsched.Invalid("id", "%q is not a valid schedule ID", natsched.Truncate(id))
	}
	e, err := st.kv.Get(ctx, id)
	if errors.Is(err, js.ErrKeyNotFound) {
		return nil, nil, fmt.Errorf("%w: %s", natsched.ErrNotFound, id)
	}
	if err != nil {
		return nil, nil, unavailable(err)
	}
	sch, err := decodeValue(e.Key(), e.Revision(), e.Value())
	return e, sch, err
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

// write is what a mutation passed to apply decides.
type write struct {
	next  *natsched.Schedule // to store; nil with del false: nothing to write
	del   bool               // delete the key
	reply *natsched.Schedule // what apply returns when nothing is stored
}

// apply is the one compare-and-set loop on the bucket. It reads id (unless
// create: then it first tries to create the key, one round trip for the
// common case of a new ID), hands mutate the stored schedule (nil if
// absent; if unreadable, a stand-in with its ID, revision and the reason in
// LastError, and the error), and stores what mutate decides with the
// revision it read, reading again when another writer got in between.
// bound, if set, bounds each request.
func (st *store) apply(ctx context.Context, id string, create bool, bound func(context.Context) context.Context,
	mutate func(prev *natsched.Schedule, unreadable error) (write, error)) (*natsched.Schedule, error) {
	if bound == nil {
		bound = func(c context.Context) context.Context { return c }
	}
	for range maxCASAttempts {
		var prev *natsched.Schedule
		var rev uint64 // 0: absent
		var unreadable error
		if !create {
			e, sch, err := st.loadEntry(bound(ctx), id)
			switch {
			case errors.Is(err, natsched.ErrUnreadable):
				prev = &natsched.Schedule{ID: id, Revision: e.Revision(),
					LastError: strings.TrimPrefix(err.Error(), natsched.ErrUnreadable.Error()+": ")}
				rev, unreadable = e.Revision(), err
			case errors.Is(err, natsched.ErrNotFound):
			case err != nil:
				return nil, err
			default:
				prev, rev = sch, sch.Revision
			}
		}
		create = false
		w, err := mutate(prev, unreadable)
		if err != nil {
			return nil, err
		}
		switch {
		case w.del:
			err = st.kv.Delete(bound(ctx), id, js.LastRevision(rev))
		case w.next == nil:
			return w.reply, nil
		default:
			w.next.Revision = 0
			b, encErr := st.rules.encode(w.next)
			if encErr != nil {
				return nil, encErr
			}
			var nrev uint64
			if rev == 0 {
				nrev, err = st.kv.Create(bound(ctx), id, b)
			} else {
				nrev, err = st.kv.Update(bound(ctx), id, b, rev)
			}
			w.next.Revision = nrev
			w.reply = w.next
		}
		switch {
		case err == nil:
			return w.reply, nil
		case errors.Is(err, js.ErrKeyExists) || errors.Is(err, js.ErrKeyRevisionMismatch):
			continue // another writer got in between: read again
		default:
			return nil, unavailable(err)
		}
	}
	return nil, fmt.Errorf("%w: %s: too many concurrent writers", natsched.ErrConflict, id)
}

// checkTarget makes sure some stream captures subject, so that fired
// messages are stored rather than lost.
func (st *store) checkTarget(ctx context.Context, subject string) error {
	now := st.now()
	if until, ok := st.targets.Load(subject); ok && now.Before(until.(time.Time)) {
		return nil
	}
	_, err := st.js.StreamNameBySubject(ctx, subject)
	switch {
	case errors.Is(err, js.ErrStreamNotFound):
		return natsched.Invalid("subject", "no JetStream stream captures %q, so fired messages would be lost; publish to %s or create a stream for it", subject, st.names.FireSubjects)
	case err != nil:
		return unavailable(err)
	}
	st.targets.Store(subject, now.Add(targetCheckTTL))
	return nil
}

func newGeneration() uint64 {
	for {
		if g := rand.Uint64(); g != 0 {
			return g
		}
	}
}

type putOptions struct {
	accepted time.Time // when the request was accepted (zero: now)
	// generation, when set, is the new definition's generation; a stored
	// schedule already at it is returned unchanged, so that a redelivered
	// intake message does not replace (and refire) its own schedule.
	generation uint64
}

// put stores a definition (replacing an unreadable value, too).
func (st *store) put(ctx context.Context, in *natsched.Schedule, po putOptions) (*natsched.Schedule, error) {
	if in == nil {
		return nil, natsched.Invalid("body", "nil schedule")
	}
	if err := st.rules.admit(in.ID, in); err != nil {
		return nil, err
	}
	if err := st.checkTarget(ctx, in.Subject); err != nil {
		return nil, err
	}
	return st.apply(ctx, in.ID, in.Revision == 0, nil, func(prev *natsched.Schedule, unreadable error) (write, error) {
		if in.Revision != 0 && (prev == nil || prev.Revision != in.Revision) {
			return write{}, fmt.Errorf("%w: revision: %d is not the current revision of %s", natsched.ErrConflict, in.Revision, in.ID)
		}
		if unreadable != nil {
			prev = &natsched.Schedule{ID: in.ID, Revision: prev.Revision}
		}
		if prev != nil && po.generation != 0 && prev.Generation == po.generation {
			return write{reply: prev}, nil // already applied
		}
		now := st.now()
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
			return write{}, err
		}
		return write{next: next}, nil
	})
}

// cancel deletes schedule id and returns it as it was. A stored value
// that is not a schedule is deleted too; the reply then holds only its
// ID, revision and, in LastError, why it could not be read.
func (st *store) cancel(ctx context.Context, id string) (*natsched.Schedule, error) {
	return st.apply(ctx, id, false, nil, func(prev *natsched.Schedule, _ error) (write, error) {
		if prev == nil {
			return write{}, fmt.Errorf("%w: %s", natsched.ErrNotFound, id)
		}
		return write{del: true, reply: prev}, nil
	})
}

// update applies f to the stored schedule id.
func (st *store) update(ctx context.Context, id string, f func(*natsched.Schedule, time.Time) error) (*natsched.Schedule, error) {
	return st.apply(ctx, id, false, nil, func(prev *natsched.Schedule, unreadable error) (write, error) {
		switch {
		case unreadable != nil:
			return write{}, unreadable
		case prev == nil:
			return write{}, fmt.Errorf("%w: %s", natsched.ErrNotFound, id)
		}
		if err := f(prev, st.now()); err != nil {
			return write{}, err
		}
		return write{next: prev}, nil
	})
}

func (st *store) pause(ctx context.Context, id string) (*natsched.Schedule, error) {
	return st.update(ctx, id, func(c *natsched.Schedule, now time.Time) error {
		engine.Pause(c, now)
		return nil
	})
}

func (st *store) resume(ctx context.Context, id string) (*natsched.Schedule, error) {
	return st.update(ctx, id, engine.Resume)
}

func (st *store) trigger(ctx context.Context, id string) (*natsched.Schedule, error) {
	return st.update(ctx, id, engine.Trigger)
}

// readConcurrency bounds the key-by-key reads of one batch.
const readConcurrency = 32

// lastSeq is the last sequence of the schedules bucket's stream, as
// its leader knows it: every write acknowledged so far is at or below it.
func (st *store) lastSeq(ctx context.Context) (uint64, error) {
	info, err := st.js.Stream(ctx, st.names.SchedulesStream())
	if err != nil {
		return 0, unavailable(err)
	}
	return info.CachedInfo().State.LastSeq, nil
}

type lastMsg struct {
	seq     uint64
	data    []byte
	deleted bool
}

// readValues reads the current values of keys: batched direct gets of
// batchSize keys at a time, or, without batch direct get (servers before
// 2.11) or when a batch comes back incomplete, key by key, concurrently.
// A key that is absent from the result does not exist.
func (st *store) readValues(ctx context.Context, keys []string) (map[string]lastMsg, error) {
	out := make(map[string]lastMsg, len(keys))
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), batchSize)]
		keys = keys[len(chunk):]
		err := st.lastMsgs(ctx, chunk, out)
		if err != nil && ctx.Err() == nil {
			err = st.readEach(ctx, chunk, out)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// lastMsgs asks the bucket's stream for the last message of every key in
// one request ($JS.API.DIRECT.GET with multi_last) and collects the replies
// into out until the end-of-batch status.
func (st *store) lastMsgs(ctx context.Context, keys []string, out map[string]lastMsg) error {
	nc := st.js.Conn()
	subjects := make([]string, len(keys))
	for i, k := range keys {
		subjects[i] = st.names.kvSubject(k)
	}
	body, _ := json.Marshal(map[string]any{"multi_last": subjects, "batch": len(keys)})
	inbox := nc.NewRespInbox()
	ch := make(chan *nats.Msg, len(keys)+1)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+st.names.SchedulesStream(), inbox, body); err != nil {
		return err
	}
	prefix := st.names.kvSubject("")
	deadline := time.NewTimer(ackWait)
	defer deadline.Stop()
	check := time.NewTicker(50 * time.Millisecond)
	defer check.Stop()
	for {
		select {
		case <-deadline.C:
			return errors.New("natsched: batch read: no reply within " + ackWait.String())
		case <-check.C:
			if nc.IsClosed() {
				return nats.ErrConnectionClosed
			}
		case m := <-ch:
			switch status := m.Header.Get("Status"); status {
			case "":
			case "204": // end of batch
				if np := m.Header.Get("Nats-Num-Pending"); np != "" && np != "0" {
					// The server stops at its byte limit: read the rest otherwise.
					return errors.New("natsched: batch read: incomplete, " + np + " left")
				}
				return nil
			case "404":
				return nil // none of the keys exists
			default:
				return errors.New("natsched: batch read: " + status + " " + m.Header.Get("Description"))
			}
			seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
			if err != nil {
				return errors.New("natsched: batch read: bad sequence")
			}
			op := m.Header.Get("KV-Operation")
			out[strings.TrimPrefix(m.Header.Get("Nats-Subject"), prefix)] = lastMsg{
				seq: seq, data: m.Data, deleted: op == "DEL" || op == "PURGE"}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// readEach reads keys into out one by one, concurrently.
func (st *store) readEach(ctx context.Context, keys []string, out map[string]lastMsg) error {
	sem := make(chan struct{}, readConcurrency)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			e, err := st.kv.Get(opCtx(ctx), k)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, js.ErrKeyNotFound):
			case err != nil:
				first = cmp.Or(first, unavailable(err))
			default:
				out[k] = lastMsg{seq: e.Revision(), data: e.Value()}
			}
		}()
	}
	wg.Wait()
	return first
}
