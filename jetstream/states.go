package jetstream

import (
	"bytes"
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"
)

// writeStates records the new states of a batch's jobs that published
// (job.state, each a compare-and-set on the key's last revision) and
// sets their results. With fast batches the writes go out as one batch
// answered by one PubAck; otherwise as pipelined publishes, one PubAck
// each.
func (f *firing) writeStates(ctx context.Context, jobs []job) {
	var pend []*job
	for i := range jobs {
		if j := &jobs[i]; !j.done && j.state != nil {
			pend = append(pend, j)
		}
	}
	if len(pend) == 0 {
		return
	}
	t := f.writes.start()
	defer f.writes.end(t)
	switch {
	case f.batched.Load() && len(pend) > 1:
		f.writeBatch(ctx, pend)
	default:
		f.writeEach(ctx, pend)
	}
}

// writeEach writes the states with one publish each, overlapped.
func (f *firing) writeEach(ctx context.Context, pend []*job) {
	futs := make([]js.PubAckFuture, len(pend))
	for i, j := range pend {
		j.state.Reply = "" // a fast batch's, when it ended before this one
		fut, err := f.js.PublishMsgAsync(j.state)
		if err != nil {
			j.res, j.done = f.retryLater(j.e.id, j.failures, j.read, err), true
			continue
		}
		futs[i] = fut
	}
	for i, j := range pend {
		if j.done {
			continue
		}
		ack, err := f.await(ctx, futs[i])
		var seq uint64
		if err == nil {
			seq = ack.Sequence
			f.own.add(seq, seq)
		}
		f.recorded(ctx, j, seq, err)
	}
}

// writeBatch writes the states as one fast batch. The batch stops at the
// first write the stream refuses: the writes before it are recorded, a
// lost compare-and-set takes the careful path, and the writes after it
// are published again one by one. When the PubAck does not come, nothing
// is known to be recorded and every job retries (a republished
// occurrence is deduplicated, and a state write that did land makes the
// retry's compare-and-set fail and re-read).
func (f *firing) writeBatch(ctx context.Context, pend []*job) {
	msgs := make([]*nats.Msg, len(pend))
	for i, j := range pend {
		msgs[i] = j.state
	}
	n, last, err := publishBatch(ctx, f.nc, &f.sending, msgs)
	var first uint64
	if n > 0 && f.contiguous(ctx, last-uint64(n)+1, msgs[0]) {
		first = last - uint64(n) + 1
		f.own.add(first, last)
	}
	for i, j := range pend[:n] {
		if first != 0 {
			f.recorded(ctx, j, first+uint64(i), nil)
			continue
		}
		// Stored, at a sequence not known here: the watch delivers it.
		// Until it has, the index keeps the revision it had (a
		// compare-and-set from it fails and re-reads) and freshness
		// cannot be proven (a sequence in the bucket is unaccounted for).
		f.fired(j.e, j.nfired)
		j.res, j.done = f.resultFor(j.read, j.sch), true
		j.res.sch = nil
	}
	if n == len(pend) {
		return
	}
	if n == 0 && isBatchDisabled(err) {
		// allow_batched was turned off under us: write one by one from now.
		f.batched.Store(false)
		f.log.Warn("natsched: the schedules bucket no longer takes fast batches; writing states one by one", "err", err)
		f.writeEach(ctx, pend)
		return
	}
	if n == 0 && !isConflict(err) {
		for _, j := range pend {
			j.res, j.done = f.retryLater(j.e.id, j.failures, j.read, err), true
		}
		return
	}
	f.recorded(ctx, pend[n], 0, err)
	if rest := pend[n+1:]; len(rest) > 0 {
		f.writeEach(ctx, rest)
	}
}

// contiguous reports whether the bucket holds m at seq. A fast batch's
// PubAck gives the sequence of its last message only; when the first is
// at last-n+1, the n messages, stored in order, took every sequence up to
// last and nobody else's write came between, so each one's revision is
// known.
func (f *firing) contiguous(ctx context.Context, seq uint64, m *nats.Msg) bool {
	if f.schedules == nil {
		return false
	}
	got, err := f.schedules.GetMsg(opCtx(ctx), seq)
	return err == nil && got.Subject == m.Subject && bytes.Equal(got.Data, m.Data)
}

// jsErrBatchPublishDisabled is the server's error code for a fast batch
// sent to a stream without allow_batched.
const jsErrBatchPublishDisabled = 10205

func isBatchDisabled(err error) bool {
	var apiErr *js.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrBatchPublishDisabled
}

// recorded sets j's result from its state write: stored at seq, or err.
func (f *firing) recorded(ctx context.Context, j *job, seq uint64, err error) {
	switch {
	case err == nil:
		f.fired(j.e, j.nfired)
		j.sch.Revision = seq
		j.res = f.wroteResult(seq, j.sch)
	case isConflict(err):
		j.res = f.careful(ctx, j.fence, j.e, j.rev, j.failures)
	default:
		j.res = f.retryLater(j.e.id, j.failures, j.read, err)
	}
	j.done = true
}
