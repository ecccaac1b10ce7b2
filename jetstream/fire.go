package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/internal/engine"
)

// fireTimeout bounds one fire (read, publishes, state write). It is not
// tied to the term: a fire in progress when the lease ends is cut short
// by the fence, and a second leader repeating it is deduplicated by its
// message IDs.
const fireTimeout = 30 * time.Second

// maxBackoff caps the retry delay of an occurrence whose publish fails.
const maxBackoff = time.Minute

// ackWait bounds the wait for one PubAck. A publish caught by a stream
// leader change gets no PubAck at all; it is retried after this (and
// deduplicated if it did land), rather than after the whole fire timeout.
const ackWait = 3 * time.Second

// firing fires due schedules. A batch (the firer hands it due entries)
// is read in one request, stepped, published with its round trips
// overlapped and recorded with compare-and-set writes; a schedule the
// batch cannot record (someone wrote meanwhile, or it expired) takes the
// careful path, one request at a time. Both share step (re-check, step,
// tell whether anything is due) and the rules: a state is recorded only
// after the PubAcks of its occurrences, nothing is published once the
// fence is closed, and every occurrence keeps its message ID so that a
// repeat is deduplicated.
type firing struct {
	js     js.JetStream
	nc     *nats.Conn
	st     *store
	rules  *rules
	opts   engine.Options
	now    func() time.Time
	stats  *stats
	faults *faults
	m      *metrics
	log    *slog.Logger
	// fresh asks the firer whether the index's copies of entries are
	// current as of bucket sequence last.
	fresh func(ctx context.Context, last uint64, entries []*entry) bool
	// batched: the schedules bucket's stream takes fast batches, so a
	// batch's states are written with one PubAck (see writeStates).
	batched   atomic.Bool
	schedules js.Stream
	sending   sync.Mutex // one fast batch at a time is being sent
	own       *ownSeqs   // the firer's: writes made, for freshness
	writes    writesInFlight
}

// job is one schedule of a batch.
type job struct {
	e *entry
	// fence is the fence of the term of e's partition it fires under.
	fence *fence
	rev   uint64             // the revision the index knew
	sch   *natsched.Schedule // its state: the index's copy when due soon, else read
	// failures: fires of it that failed in a row (for the backoff)
	failures int32

	before natsched.Schedule // state before the step, for recording errors
	read   uint64            // revision the step started from
	nfired int
	acks   []js.PubAckFuture
	fireAt []time.Time  // of each ack's occurrence (planned + jitter)
	spans  []trace.Span // of each ack's occurrence (nil: not recorded)
	state  *nats.Msg    // the new state's write
	err    error
	res    result
	done   bool
}

// stepped is what stepping one schedule decided.
type stepped struct {
	before  natsched.Schedule // the state it was stepped from
	occs    []natsched.Occurrence
	expired bool
	// done: the fire ends here with res (refused, or nothing is due in
	// the stored state because the index was stale).
	done bool
	res  result
}

// step re-checks sch, stored under key at sch.Revision, and steps it at
// now: the shared core of both paths.
func (f *firing) step(ctx context.Context, key string, sch *natsched.Schedule, now time.Time) stepped {
	if mayFire(sch) {
		if err := f.rules.admit(key, sch); err != nil {
			return stepped{done: true, res: f.refuse(ctx, key, sch, err)}
		}
	}
	s := stepped{before: *sch.Clone()}
	var stepErr error
	s.occs, s.expired, stepErr = engine.Step(sch, now, f.opts)
	sch.LastError = "" // the fire goes through; a publish error is recorded apart
	if stepErr != nil {
		f.log.Error("natsched: schedule cannot fire", "id", key, "err", stepErr)
		sch.LastError = stepErr.Error()
	}
	if !s.expired && len(s.occs) == 0 && stepErr == nil && sch.Status == s.before.Status &&
		sch.NextRun.Equal(s.before.NextRun) && len(sch.Triggers) == len(s.before.Triggers) {
		s.done, s.res = true, f.resultFor(sch.Revision, sch)
	}
	return s
}

// held is the result of a fire that stopped before recording its step:
// the schedule stays due as it was stored, and whoever fires it next
// repeats the step (a republished occurrence is deduplicated).
func (f *firing) held(before *natsched.Schedule) result {
	return result{rev: before.Revision, due: unixNano(engine.Due(before, f.opts)), status: before.Status}
}

// fenced reports, counting it, that the fence is closed: the lease may
// have lapsed since the work was taken, and the rest is the next
// leader's.
func (f *firing) fenced(fc *fence) bool {
	if fc.ok() {
		return false
	}
	f.stats.fenced.Add(1)
	return true
}

// batch fires a batch of due schedules with the network round trips
// overlapped: every occurrence of the batch is published asynchronously,
// the PubAcks are awaited together, then every new state is written as an
// asynchronous compare-and-set on the bucket's subject and those acks are
// awaited together.
func (f *firing) batch(ctx context.Context, jobs []job) []result {
	f.read(ctx, jobs)
	now := f.now()
	if hook := f.faults.beforePublish; hook != nil {
		hook()
	}
	for i := range jobs {
		j := &jobs[i]
		if j.done {
			continue
		}
		j.read = j.sch.Revision
		s := f.step(ctx, j.e.id, j.sch, now)
		switch {
		case s.done:
			j.res, j.done = s.res, true
			continue
		case s.expired:
			j.res, j.done = f.careful(ctx, j.fence, j.e, j.rev, j.failures), true
			continue
		}
		j.before, j.nfired = s.before, len(s.occs)
		for _, o := range s.occs {
			if f.fenced(j.fence) {
				j.res, j.done = f.held(&j.before), true
				break
			}
			span := fireSpan(ctx, j.sch, &o)
			m := natsched.FiredMessage(j.sch, o)
			fut, err := f.js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
			if err != nil {
				endSpan(span, err)
				j.err = err
				break
			}
			j.acks, j.fireAt, j.spans = append(j.acks, fut), append(j.fireAt, o.FireAt()), append(j.spans, span)
			f.countLate(now, o)
		}
	}
	for i := range jobs {
		j := &jobs[i]
		if j.done {
			continue
		}
		for k, fut := range j.acks {
			ack, err := f.await(ctx, fut)
			endSpan(j.spans[k], err)
			if err != nil {
				j.err = err
				for _, span := range j.spans[k+1:] {
					endSpan(span, err)
				}
				break
			}
			f.acked(ack, j.fireAt[k])
		}
		if j.err != nil {
			f.stats.failures.Add(1)
			f.m.fires.WithLabelValues("error").Inc()
			f.recordError(ctx, &j.before, j.err)
			j.res, j.done = f.retryLater(j.e.id, j.failures, j.read, j.err), true
			continue
		}
		if hook := f.faults.afterPublish; hook != nil && hook(j.e.id) || f.fenced(j.fence) {
			j.res, j.done = f.held(&j.before), true
			continue
		}
		j.sch.Revision = 0
		b, err := f.rules.encodeState(j.sch)
		if err != nil {
			j.res, j.done = f.retryLater(j.e.id, j.failures, j.read, err), true
			continue
		}
		j.state = &nats.Msg{Subject: f.st.names.kvSubject(j.e.id), Data: b,
			Header: nats.Header{js.ExpectedLastSubjSeqHeader: []string{strconv.FormatUint(j.read, 10)}}}
	}
	f.writeStates(ctx, jobs)
	out := make([]result, 0, len(jobs))
	for i := range jobs {
		j := &jobs[i]
		j.res.e = j.e
		out = append(out, j.res)
	}
	return out
}

// careful fires what is due of schedule e one request at a time: read,
// step, publish, record, through the store's compare-and-set loop (a
// write that lost to another writer steps the new state; republishing is
// deduplicated). rev is the revision the index knew.
func (f *firing) careful(ctx context.Context, fc *fence, e *entry, rev uint64, failures int32) result {
	id := e.id
	var (
		s     stepped
		read  uint64
		ended bool   // the fire ended without a write, with res
		res   result // set when ended
	)
	end := func(r result) (write, error) {
		ended, res = true, r
		return write{}, nil
	}
	stored, err := f.st.apply(ctx, id, false, opCtx, func(sch *natsched.Schedule, unreadable error) (write, error) {
		ended = false
		switch {
		case sch == nil:
			return end(result{rev: rev, gone: true})
		case unreadable != nil:
			f.log.Error("natsched: stored schedule is unreadable; not firing it", "id", id, "err", unreadable)
			return end(result{rev: rev, unreadable: true})
		}
		now := f.now()
		read, s = sch.Revision, f.step(ctx, id, sch, now)
		switch {
		case s.done:
			return end(s.res)
		case f.fenced(fc):
			return end(f.held(&s.before))
		case s.expired:
			return write{del: true}, nil
		}
		for _, o := range s.occs {
			if f.fenced(fc) {
				return end(f.held(&s.before))
			}
			if err := f.publish(ctx, sch, o, now); err != nil {
				f.recordError(ctx, &s.before, err)
				return end(f.retryLater(id, failures, read, err))
			}
			if hook := f.faults.afterPublish; hook != nil && hook(id) {
				return end(f.held(&s.before))
			}
		}
		if f.fenced(fc) {
			return end(f.held(&s.before))
		}
		return write{next: sch}, nil
	})
	switch {
	case err != nil:
		return f.retryLater(id, failures, max(read, rev), err)
	case ended:
		return res
	case s.expired:
		return result{rev: read, gone: true}
	}
	f.fired(e, len(s.occs))
	return f.wroteResult(stored.Revision, stored)
}

// fired counts n occurrences of e recorded as fired.
func (f *firing) fired(e *entry, n int) {
	f.stats.fired.Add(uint64(n))
	f.m.partitionFired[e.part].Add(float64(n))
}

func (f *firing) publish(ctx context.Context, sch *natsched.Schedule, o natsched.Occurrence, now time.Time) (err error) {
	span := fireSpan(ctx, sch, &o)
	defer func() { endSpan(span, err) }()
	m := natsched.FiredMessage(sch, o)
	pctx, cancel := context.WithTimeout(ctx, ackWait)
	defer cancel()
	ack, err := f.js.PublishMsg(pctx, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
	if err != nil {
		f.stats.failures.Add(1)
		f.m.fires.WithLabelValues("error").Inc()
		return err
	}
	f.acked(ack, o.FireAt())
	f.countLate(now, o)
	return nil
}

// acked records the PubAck of an occurrence due to fire at fireAt: its
// result and, for one newly stored, its lateness.
func (f *firing) acked(ack *js.PubAck, fireAt time.Time) {
	if ack.Duplicate {
		f.stats.duplicates.Add(1)
		f.m.fires.WithLabelValues("duplicate").Inc()
		return
	}
	f.m.fires.WithLabelValues("ok").Inc()
	f.m.lateness.Observe(f.now().Sub(fireAt).Seconds())
}

// countLate counts an occurrence fired more than the misfire threshold
// after its fire time.
func (f *firing) countLate(now time.Time, o natsched.Occurrence) {
	if now.Sub(o.FireAt()) > f.opts.MisfireThreshold {
		f.stats.late.Add(1)
	}
}

// retryLater reschedules a failed fire with exponential backoff (capped at
// a minute): the occurrence is never skipped. failures is how many fires
// of it failed in a row before this one.
func (f *firing) retryLater(id string, failures int32, rev uint64, err error) result {
	backoff := min(maxBackoff, 100*time.Millisecond<<min(failures, 10))
	at := f.now().Add(backoff).UnixNano()
	f.log.Warn("natsched: fire failed; retrying", "id", id, "in", backoff, "err", err)
	return result{rev: rev, due: at, retryAt: at, failures: failures + 1}
}

// recordError writes last_error to the unadvanced state so that users see
// why an occurrence is late. Best effort: a conflict means someone else
// wrote, and the next attempt records again.
func (f *firing) recordError(ctx context.Context, before *natsched.Schedule, err error) {
	c := before.Clone()
	rev := c.Revision
	c.LastError = err.Error()
	c.Revision = 0
	b, encErr := f.rules.encode(c)
	if encErr != nil {
		return
	}
	_, _ = f.st.kv.Update(opCtx(ctx), c.ID, b, rev)
}

// refusedPrefix starts the last_error of a stored schedule that admit
// refused to fire.
const refusedPrefix = "not fired: "

// refuse keeps a stored schedule that failed admit from firing. It stays in
// the bucket, readable and cancellable, with last_error saying why, and
// out of the due queue until it is written again. The reason is logged and
// recorded once; a later leader that finds it recorded only skips it.
func (f *firing) refuse(ctx context.Context, key string, sch *natsched.Schedule, why error) result {
	f.stats.refused.Add(1)
	_, text := errorReply(why)
	res := result{rev: sch.Revision, status: sch.Status} // due 0: out of the queue
	msg := refusedPrefix + text
	if sch.LastError == msg {
		return res
	}
	f.log.Warn("natsched: stored schedule refused; not firing it", "id", key, "err", text)
	c := sch.Clone()
	c.LastError, c.Revision = msg, 0
	// Not rules.encode: its size checks may be what failed.
	b, err := json.Marshal(c)
	if err != nil {
		return res
	}
	if rev, err := f.st.kv.Update(opCtx(ctx), key, b, sch.Revision); err == nil {
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

// resultFor is the result of a stepped schedule whose state is sch at
// rev: due again when its state says, or, if a backlog is left, in the
// index's backlog (see index).
func (f *firing) resultFor(rev uint64, sch *natsched.Schedule) result {
	due := engine.Due(sch, f.opts)
	now := f.now()
	at := engine.Requeue(due, now)
	return result{rev: rev, due: unixNano(at), behind: !at.Equal(due), sch: cacheable(sch, due, now), status: sch.Status}
}

// wroteResult is resultFor a state this leader just wrote at rev.
func (f *firing) wroteResult(rev uint64, sch *natsched.Schedule) result {
	r := f.resultFor(rev, sch)
	r.wrote = true
	return r
}

// read brings every job's schedule up to date with one batched read of
// the keys' last messages: reading at fire time is what makes a cancel or
// replace acknowledged before the due time win over the index. A job whose
// revision is the one the index decoded keeps that copy.
func (f *firing) read(ctx context.Context, jobs []job) {
	if f.cachedAndFresh(ctx, jobs) {
		return
	}
	keys := make([]string, len(jobs))
	for i := range jobs {
		keys[i] = jobs[i].e.id
	}
	latest, err := f.st.readValues(ctx, keys)
	for i := range jobs {
		j := &jobs[i]
		m, ok := latest[j.e.id]
		switch {
		case err != nil:
			j.res, j.done = f.retryLater(j.e.id, j.failures, j.rev, err), true
		case !ok || m.deleted:
			j.res, j.done = result{rev: j.rev, gone: true}, true
		case j.sch != nil && j.sch.Revision == m.seq:
		default:
			sch, err := decodeValue(j.e.id, m.seq, m.data)
			if err != nil {
				f.log.Error("natsched: stored schedule is unreadable; not firing it", "id", j.e.id, "err", err)
				j.res, j.done = result{rev: m.seq, unreadable: true, status: statusField(m.data)}, true
				continue
			}
			j.sch = sch
		}
	}
}

// cachedAndFresh reports whether every job has the index's copy and those
// copies are current: the bucket's last sequence, asked now (after the
// batch was taken), holds nothing the firer cannot account for. It costs
// one small request instead of reading every key, which is what lets a
// burst of schedules created ahead of time fire without reading them back.
func (f *firing) cachedAndFresh(ctx context.Context, jobs []job) bool {
	entries := make([]*entry, len(jobs))
	for i := range jobs {
		if jobs[i].sch == nil {
			return false
		}
		entries[i] = jobs[i].e
	}
	sent := f.writes.issued()
	last, err := f.st.lastSeq(opCtx(ctx))
	if err != nil {
		return false
	}
	if hook := f.faults.beforeFresh; hook != nil {
		hook()
	}
	if f.fresh(ctx, last, entries) {
		return true
	}
	// Other batches' state writes sent before last was asked may be
	// below it with their PubAcks still on the way: once they are in,
	// ask again rather than read every key.
	wctx := opCtx(ctx)
	return f.writes.wait(sent, wctx.Done()) && f.fresh(ctx, last, entries)
}

// opCtx bounds one request on the firing path by ackWait: a request to a
// stream whose leader just went away gets no answer, and waiting out the
// whole fire timeout would hold the occurrence back for 30s.
func opCtx(ctx context.Context) context.Context {
	c, cancel := context.WithTimeout(ctx, ackWait)
	context.AfterFunc(c, cancel) // release the timer once c is done
	return c
}

// await waits for a PubAck. The futures of a connection that closes are
// never resolved, so it also watches the connection.
func (f *firing) await(ctx context.Context, fut js.PubAckFuture) (*js.PubAck, error) {
	deadline := time.NewTimer(ackWait)
	defer deadline.Stop()
	check := time.NewTicker(50 * time.Millisecond)
	defer check.Stop()
	for {
		select {
		case ack := <-fut.Ok():
			return ack, nil
		case err := <-fut.Err():
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, errors.New("natsched: no PubAck within " + ackWait.String())
		case <-check.C:
			if f.nc.IsClosed() {
				return nil, nats.ErrConnectionClosed
			}
		}
	}
}

// isConflict reports a failed compare-and-set: the stream's last sequence
// for the key was not the one expected.
func isConflict(err error) bool {
	var apiErr *js.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == js.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == js.JSErrCodeStreamWrongLastSequenceConstant)
}
