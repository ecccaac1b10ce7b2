package jetstream

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/internal/engine"
)

// job is one schedule of a batch.
type job struct {
	e   *entry
	rev uint64             // the revision the index knew
	sch *natsched.Schedule // its state: the index's copy when due soon, else read
	// failures: fires of it that failed in a row (for the backoff)
	failures int32

	before natsched.Schedule // state before the step, for recording errors
	read   uint64            // revision the step started from
	nfired int
	acks   []js.PubAckFuture
	state  js.PubAckFuture
	err    error
	res    result
	done   bool
}

// unadvanced is the result of a job that stopped before recording its
// step: the schedule stays due as it was stored, and whoever fires it next
// repeats the step (a republished occurrence is deduplicated).
func (l *leader) unadvanced(j *job) result {
	return result{rev: j.read, due: unixNano(engine.Due(&j.before, l.opts)), status: j.before.Status}
}

// readConcurrency bounds the reads of one batch for schedules the index
// did not keep.
const readConcurrency = 32

// fireBatch fires a batch of due schedules with the network round trips
// overlapped: every occurrence of the batch is published asynchronously,
// the PubAcks are awaited together, then every new state is written as an
// asynchronous compare-and-set on the bucket's subject and those acks are
// awaited together. A conflict (someone wrote meanwhile) takes the careful
// path for that schedule: read again, step, republish (JetStream drops the
// duplicate), write. Invariants are those of fire: a state is recorded
// only after the PubAcks of its occurrences.
func (l *leader) fireBatch(ctx context.Context, jobs []job) []result {
	s := l.s
	l.read(ctx, jobs)
	now := s.now()
	if hook := s.faults.beforePublish; hook != nil {
		hook()
	}
	for i := range jobs {
		j := &jobs[i]
		if j.done {
			continue
		}
		j.read = j.sch.Revision
		if mayFire(j.sch) {
			if err := s.admit(j.e.id, j.sch); err != nil {
				j.res, j.done = l.refuse(ctx, j.e.id, j.sch, err), true
				continue
			}
		}
		j.before = *j.sch.Clone()
		occs, expired, stepErr := engine.Step(j.sch, now, l.opts)
		if stepErr != nil {
			s.log.Error("natsched: schedule cannot fire", "id", j.e.id, "err", stepErr)
			j.sch.LastError = stepErr.Error()
		}
		switch {
		case expired:
			j.res, j.done = l.fire(ctx, j.e, j.rev, j.failures), true
			continue
		case len(occs) == 0 && stepErr == nil && j.sch.Status == j.before.Status &&
			j.sch.NextRun.Equal(j.before.NextRun) && len(j.sch.Triggers) == len(j.before.Triggers):
			// The index was stale: nothing is due in the stored state.
			j.res, j.done = l.resultFor(j.read, j.sch), true
			continue
		}
		j.nfired = len(occs)
		for _, o := range occs {
			if !l.fence.ok() {
				// The lease may have lapsed since the batch was taken:
				// leave this and the rest to the next leader.
				s.stats.fenced.Add(1)
				j.res, j.done = l.unadvanced(j), true
				break
			}
			m := natsched.FiredMessage(j.sch, o)
			f, err := s.js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
			if err != nil {
				j.err = err
				break
			}
			j.acks = append(j.acks, f)
			if now.Sub(o.FireAt()) > l.opts.MisfireThreshold {
				s.stats.late.Add(1)
			}
		}
	}
	for i := range jobs {
		j := &jobs[i]
		if j.done {
			continue
		}
		for _, f := range j.acks {
			ack, err := l.await(ctx, f)
			if err != nil {
				j.err = err
				break
			}
			if ack.Duplicate {
				s.stats.duplicates.Add(1)
			}
		}
		if j.err != nil {
			s.stats.failures.Add(1)
			l.recordError(ctx, &j.before, j.err)
			j.res, j.done = l.retryLater(j.e.id, j.failures, j.read, j.err), true
			continue
		}
		if hook := s.faults.afterPublish; hook != nil && hook(j.e.id) {
			j.res, j.done = l.unadvanced(j), true
			continue
		}
		if !l.fence.ok() {
			s.stats.fenced.Add(1)
			j.res, j.done = l.unadvanced(j), true
			continue
		}
		if j.before.LastError != "" && j.sch.LastError == j.before.LastError {
			j.sch.LastError = "" // published fine this time
		}
		j.sch.Revision = 0
		b, err := s.encode(j.sch)
		if err == nil {
			j.state, err = s.js.PublishMsgAsync(&nats.Msg{Subject: s.kvSubject(j.e.id), Data: b},
				js.WithExpectLastSequencePerSubject(j.read))
		}
		if err != nil {
			j.res, j.done = l.retryLater(j.e.id, j.failures, j.read, err), true
		}
	}
	out := make([]result, 0, len(jobs))
	for i := range jobs {
		j := &jobs[i]
		if !j.done {
			ack, err := l.await(ctx, j.state)
			switch {
			case err == nil:
				s.stats.fired.Add(uint64(j.nfired))
				j.sch.Revision = ack.Sequence
				j.res = l.wroteResult(ack.Sequence, j.sch)
			case isConflict(err):
				j.res = l.fire(ctx, j.e, j.rev, j.failures) // careful path
			default:
				j.res = l.retryLater(j.e.id, j.failures, j.read, err)
			}
		}
		j.res.e = j.e
		out = append(out, j.res)
	}
	return out
}

// ackWait bounds the wait for one PubAck. A publish caught by a stream
// leader change gets no PubAck at all; it is retried after this (and
// deduplicated if it did land), rather than after the whole fire timeout.
const ackWait = 3 * time.Second

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
func (l *leader) await(ctx context.Context, f js.PubAckFuture) (*js.PubAck, error) {
	deadline := time.NewTimer(ackWait)
	defer deadline.Stop()
	check := time.NewTicker(50 * time.Millisecond)
	defer check.Stop()
	for {
		select {
		case ack := <-f.Ok():
			return ack, nil
		case err := <-f.Err():
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, errors.New("natsched: no PubAck within " + ackWait.String())
		case <-check.C:
			if l.s.nc.IsClosed() {
				return nil, nats.ErrConnectionClosed
			}
		}
	}
}

// resultFor is the result of a stepped schedule whose state is sch at
// rev: due again when its state says, or, if a backlog is left, in the
// index's backlog (see index).
func (l *leader) resultFor(rev uint64, sch *natsched.Schedule) result {
	due := engine.Due(sch, l.opts)
	at := engine.Requeue(due, l.s.now())
	return result{rev: rev, due: unixNano(at), behind: !at.Equal(due), sch: l.cacheable(sch, due), status: sch.Status}
}

// wroteResult is resultFor a state this leader just wrote at rev.
func (l *leader) wroteResult(rev uint64, sch *natsched.Schedule) result {
	r := l.resultFor(rev, sch)
	r.wrote = true
	return r
}

// read brings every job's schedule up to date with one batched direct
// get of the keys' last messages: reading at fire time is what makes a
// cancel or replace acknowledged before the due time win over the index.
// A job whose revision is the one the index decoded keeps that copy.
func (l *leader) read(ctx context.Context, jobs []job) {
	if l.cachedAndFresh(ctx, jobs) {
		return
	}
	keys := make([]string, len(jobs))
	for i := range jobs {
		keys[i] = jobs[i].e.id
	}
	latest, err := l.s.readValues(ctx, keys)
	for i := range jobs {
		j := &jobs[i]
		m, ok := latest[j.e.id]
		switch {
		case err != nil:
			j.res, j.done = l.retryLater(j.e.id, j.failures, j.rev, err), true
		case !ok || m.deleted:
			j.res, j.done = result{rev: j.rev, gone: true}, true
		case j.sch != nil && j.sch.Revision == m.seq:
		default:
			sch, err := decodeValue(j.e.id, m.seq, m.data)
			if err != nil {
				l.s.log.Error("natsched: stored schedule is unreadable; not firing it", "id", j.e.id, "err", err)
				j.res, j.done = result{rev: m.seq, unreadable: true, status: statusField(m.data)}, true
				continue
			}
			j.sch = sch
		}
	}
}

// cachedAndFresh reports whether every job has the index's copy and those
// copies are current: the bucket's last sequence, asked now (after the
// batch was taken), holds nothing the loop cannot account for. It costs one
// small request instead of reading every key, which is what lets a burst
// of schedules created ahead of time fire without reading them back.
func (l *leader) cachedAndFresh(ctx context.Context, jobs []job) bool {
	entries := make([]*entry, len(jobs))
	for i := range jobs {
		if jobs[i].sch == nil {
			return false
		}
		entries[i] = jobs[i].e
	}
	last, err := l.s.bucketLastSeq(opCtx(ctx))
	if err != nil {
		return false
	}
	return l.askFresh(ctx, last, entries)
}

// bucketLastSeq is the last sequence of the schedules bucket's stream, as
// its leader knows it: every write acknowledged so far is at or below it.
func (s *Scheduler) bucketLastSeq(ctx context.Context) (uint64, error) {
	st, err := s.js.Stream(ctx, "KV_"+s.names.SchedulesBucket)
	if err != nil {
		return 0, unavailable(err)
	}
	return st.CachedInfo().State.LastSeq, nil
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
func (s *Scheduler) readValues(ctx context.Context, keys []string) (map[string]lastMsg, error) {
	out := make(map[string]lastMsg, len(keys))
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), batchSize)]
		keys = keys[len(chunk):]
		err := s.lastMsgs(ctx, chunk, out)
		if err != nil && ctx.Err() == nil {
			err = s.readEach(ctx, chunk, out)
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
func (s *Scheduler) lastMsgs(ctx context.Context, keys []string, out map[string]lastMsg) error {
	nc := s.nc
	subjects := make([]string, len(keys))
	for i, k := range keys {
		subjects[i] = s.kvSubject(k)
	}
	body, _ := json.Marshal(map[string]any{"multi_last": subjects, "batch": len(keys)})
	inbox := nc.NewRespInbox()
	ch := make(chan *nats.Msg, len(keys)+1)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest("$JS.API.DIRECT.GET.KV_"+s.names.SchedulesBucket, inbox, body); err != nil {
		return err
	}
	prefix := "$KV." + s.names.SchedulesBucket + "."
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
func (s *Scheduler) readEach(ctx context.Context, keys []string, out map[string]lastMsg) error {
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
			e, err := s.kv.Get(opCtx(ctx), k)
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

// kvSubject is where the bucket stores key id (what KeyValue.Update
// publishes to).
func (s *Scheduler) kvSubject(id string) string {
	return "$KV." + s.names.SchedulesBucket + "." + id
}

// isConflict reports a failed compare-and-set: the stream's last sequence
// for the key was not the one expected.
func isConflict(err error) bool {
	var apiErr *js.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == js.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == js.JSErrCodeStreamWrongLastSequenceConstant)
}
