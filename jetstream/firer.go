package jetstream

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/clock"
	"github.com/natsched/natsched/internal/engine"
	"github.com/natsched/natsched/jetstream/internal/lease"
)

// firer is the firing loop. Every instance runs one for its whole life:
// it keeps the index current from a watch of the schedules bucket (initial
// values, then every change), so that a new leader fires at once instead of
// rebuilding. While it holds the lease of a partition (one lease with a
// single partition) it sleeps on one timer until the earliest due time of
// the partitions it holds and hands their due schedules to workers. The
// loop goroutine owns the index; workers only report back through results,
// and each partition's lease switches its firing on and off through
// control.
type firer struct {
	kv         js.KeyValue // the schedules bucket, watched
	nc         *nats.Conn  // for reconnects
	clock      clock.Clock // the injected clock: the due timer
	leaseClock clock.Clock // intervals: rewatching
	now        func() time.Time
	opts       engine.Options
	workers    int
	log        *slog.Logger
	faults     *faults // for tests; never nil
	// lastSeq is the schedules bucket's last sequence.
	lastSeq func(ctx context.Context) (uint64, error)
	m       *metrics
	// fire fires a batch and reports every job's result (see firing).
	fire func(ctx context.Context, jobs []job) []result

	idx *index

	// parts is the partition count (natsched.Partition).
	parts int
	// held says which partitions this instance leads.
	held []bool
	// isLeader: it leads at least one; heldNow lists them, for other
	// goroutines.
	isLeader atomic.Bool
	heldNow  atomic.Pointer[[]int]
	// fences say, by partition, until when its lease, as last confirmed,
	// is safe to fire under: the lease goroutine steps down then, but a
	// delayed timer or a frozen process must not let anything be
	// published past it.
	fences []*fence
	// rr is the partition dispatch starts from, turning, so that no
	// partition's backlog holds another's back.
	rr      int
	control chan control
	stopped chan struct{} // closed when run returns
	// exiting closes when run stops answering, before it waits for the
	// batches in flight: a batch asking it something then gets no answer
	// at once instead of waiting out its fire timeout.
	exiting chan struct{}

	wake    chan struct{}
	results chan []result // one send per batch
	timer   clock.Timer
	timerAt int64
	busy    int
	// busyIn: busy by partition (a term ends once its partition's are
	// done).
	busyIn []int
	// batches: how many batches are in flight (see maxBatches).
	batches int
	// busyBehind: how many of busy came from the backlog.
	busyBehind int
	ready      bool        // the initial values are in
	loaded     atomic.Bool // ready, for other goroutines
	wg         sync.WaitGroup
	npend      atomic.Int64
	counts     atomic.Pointer[[statusOther + 1]int] // the index's entries by status, for metrics
	lastRev    uint64                               // highest bucket revision the watch delivered
	// watchFrom is the bucket's last sequence just before the current
	// watch began, and loadedRev the watchFrom of the latest watch whose
	// initial values are all in: the index reflects everything up to it
	// even if the message at it is gone (a purged delete marker) and the
	// watch never delivers it.
	watchFrom, loadedRev uint64
	query                chan chan snapshot
	// lists are list requests; listWait those waiting for the index to
	// catch up with the bucket.
	lists    chan listReq
	listWait []listReq
	// own holds the bucket sequences of state writes this leader made and
	// the watch has not delivered yet (the writers add them as their
	// PubAcks come); fresh uses it to tell its own writes from anyone
	// else's.
	own   *ownSeqs
	fresh chan freshReq
}

// freshReq asks the loop whether the index's copies of a batch's
// schedules are current as of bucket sequence last.
type freshReq struct {
	last    uint64
	entries []*entry
	reply   chan bool
}

// listReq asks the loop for the candidates of a status-filtered list page
// (see index.candidates), once the index has caught up with bucket
// sequence last.
type listReq struct {
	last          uint64
	status        status
	prefix, after string
	n             int
	reply         chan []string   // buffered: the loop never waits on it
	gone          <-chan struct{} // closed when the requester gives up
}

// control starts (lead) or ends a term of partition part; done closes
// once the loop has switched, and at the end of a term only after the
// partition's in-flight fires finished.
type control struct {
	part int
	lead bool
	done chan struct{}
}

// snapshot is the loop's state, for tests that wait until the leader has
// caught up and nothing is due.
type snapshot struct {
	leading bool
	ready   bool
	busy    int
	nextDue int64
	lastRev uint64
}

type result struct {
	e    *entry
	rev  uint64
	due  int64
	gone bool
	sch  *natsched.Schedule // state at rev, if due soon
	// status at rev, when the worker knows it ("" leaves the index's).
	status natsched.Status
	// unreadable: the value at rev cannot be decoded; it stays listed
	// (as skipped), under status if that much could be read, and never
	// fires.
	unreadable bool
	// retryAt and failures: the backoff after a failed fire (0: success).
	retryAt  int64
	failures int32
	wrote    bool // rev is a state write of this leader's
	// behind: the step left a backlog; due is when it was put back.
	behind bool
}

// newFirer makes f's state; f has its dependencies set.
func newFirer(f *firer) *firer {
	f.parts = max(f.parts, 1)
	f.idx = newIndex(f.parts)
	f.held, f.busyIn = make([]bool, f.parts), make([]int, f.parts)
	f.fences = make([]*fence, f.parts)
	for p := range f.fences {
		f.fences[p] = newFence(f.leaseClock)
	}
	f.heldNow.Store(new([]int))
	f.wake, f.results = make(chan struct{}, 1), make(chan []result, f.workers)
	f.query, f.control = make(chan chan snapshot), make(chan control)
	f.fresh, f.lists = make(chan freshReq), make(chan listReq)
	if f.own == nil {
		f.own = new(ownSeqs)
	}
	f.stopped, f.exiting = make(chan struct{}), make(chan struct{})
	if f.faults == nil {
		f.faults = new(faults)
	}
	return f
}

// switchTo asks the loop to start or end a term of partition p and waits
// until it has (a term ends once the partition's in-flight fires
// finished). It returns false if the loop is gone or cancel fires first.
func (l *firer) switchTo(cancel <-chan struct{}, p int, lead bool) bool {
	c := control{part: p, lead: lead, done: make(chan struct{})}
	select {
	case l.control <- c:
	case <-l.stopped:
		return false
	case <-cancel:
		return false
	}
	select {
	case <-c.done:
		return true
	case <-l.stopped:
		return false
	}
}

func (l *firer) pending() int { return int(l.npend.Load()) }

// statusCounts reports the index's schedules by status (as of the loop's
// latest turn).
func (l *firer) statusCounts() map[natsched.Status]int {
	out := map[natsched.Status]int{natsched.StatusActive: 0, natsched.StatusPaused: 0, natsched.StatusDone: 0}
	if c := l.counts.Load(); c != nil {
		out[natsched.StatusActive], out[natsched.StatusPaused], out[natsched.StatusDone] = c[statusActive], c[statusPaused], c[statusDone]
	}
	return out
}

// snap asks the loop for its state; false if the term ended.
func (l *firer) snap(ctx context.Context) (snapshot, bool) {
	q := make(chan snapshot, 1)
	select {
	case l.query <- q:
		return <-q, true
	case <-l.stopped:
		return snapshot{}, false
	case <-ctx.Done():
		return snapshot{}, false
	}
}

func (l *firer) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// run keeps the index and fires while leading, until ctx ends; then it
// waits for in-flight fires.
func (l *firer) run(ctx context.Context) {
	log := l.log
	l.timer = l.clock.AfterFunc(time.Hour, l.poke)
	l.timer.Stop()
	var ending []control // term ends waiting for their in-flight fires
	defer close(l.stopped)
	defer func() {
		close(l.exiting)
		l.timer.Stop()
		l.wg.Wait()
		l.isLeader.Store(false)
		for _, c := range ending {
			close(c.done)
		}
	}()
	var w js.KeyWatcher
	var updates <-chan js.KeyValueEntry
	retry := make(chan struct{}, 1)
	var retryTimer clock.Timer
	defer func() {
		if retryTimer != nil {
			retryTimer.Stop()
		}
	}()
	retryLater := func() {
		retryTimer = l.leaseClock.AfterFunc(time.Second, func() {
			select {
			case retry <- struct{}{}:
			default:
			}
		})
	}
	retry <- struct{}{}
	// A watch notices a server restart only when its heartbeats go
	// missing, which takes many seconds; a reconnect is the cue to watch
	// again at once.
	reconnected := l.nc.StatusChanged(nats.CONNECTED)
	defer l.nc.RemoveStatusListener(reconnected)
	for {
		watched := updates
		if hold := l.faults.holdWatch; hold != nil && hold() {
			watched = nil
		}
		select {
		case <-ctx.Done():
			lease.StopWatch(l.nc, w)
			return
		case <-reconnected:
			lease.StopWatch(l.nc, w)
			updates, w = nil, nil
			select {
			case retry <- struct{}{}:
			default:
			}
			continue
		case <-retry:
			var err error
			if l.watchFrom, err = l.lastSeq(opCtx(ctx)); err != nil {
				l.watchFrom = 0 // lists wait for the watch to deliver what they need
			}
			if w, err = l.kv.WatchAll(ctx); err != nil {
				log.Warn("natsched: cannot watch schedules; retrying", "err", err)
				retryLater()
				continue
			}
			updates = w.Updates()
		case e, ok := <-watched:
			if !ok {
				// The watch ended under us: watch again. The new watch
				// replays current values; entries for keys deleted
				// meanwhile are dropped when they fire and are not found.
				log.Warn("natsched: schedule watch ended; watching again")
				updates, w = nil, nil
				retryLater()
				continue
			}
			l.apply(e)
		case rs := <-l.results:
			// A whole batch at once, so that the freed room is filled with
			// full batches rather than one schedule at a time.
			l.batches--
			for _, r := range rs {
				l.busy--
				l.busyIn[r.e.part]--
				if r.e.behind {
					l.busyBehind--
				}
				if r.wrote && r.rev > l.lastRev {
					l.own.add(r.rev, r.rev)
				}
				if newer := l.idx.finish(r); newer != nil {
					l.applyValue(r.e.id, newer.rev, newer.value)
				}
			}
		case <-l.wake:
			l.timerAt = 0
		case c := <-l.control:
			l.setHeld(c.part, c.lead)
			if c.lead {
				log.Info("natsched: firing", "schedules", len(l.idx.byID), "partition", c.part, "partitions", l.parts)
				close(c.done)
			} else {
				ending = append(ending, c)
			}
		case f := <-l.fresh:
			f.reply <- l.isFresh(f.last, f.entries)
			continue
		case q := <-l.query:
			q <- snapshot{leading: l.isLeader.Load(), ready: l.ready, busy: l.busy, nextDue: l.idx.peek(), lastRev: l.lastRev}
			continue
		case r := <-l.lists:
			l.listWait = append(l.listWait, r)
			l.answerLists()
			continue
		}
		if len(l.listWait) > 0 {
			l.answerLists()
		}
		if len(ending) > 0 {
			ending = l.endTerms(ending)
		}
		if l.ready && l.isLeader.Load() {
			l.dispatch(ctx)
		}
		l.rearm()
		l.npend.Store(int64(l.idx.pending))
		if c := l.idx.byStatusCount; l.counts.Load() == nil || *l.counts.Load() != c {
			l.counts.Store(&c)
		}
	}
}

func (l *firer) apply(e js.KeyValueEntry) {
	if e == nil {
		l.loadedRev = max(l.loadedRev, l.watchFrom)
		if !l.ready {
			l.ready = true
			l.loaded.Store(true)
			l.log.Debug("natsched: index loaded", "schedules", len(l.idx.byID))
		}
		return
	}
	rev := e.Revision()
	l.lastRev = max(l.lastRev, rev)
	l.own.forget(l.lastRev)
	var value []byte
	if e.Operation() == js.KeyValuePut {
		value = e.Value()
	}
	if ent := l.idx.byID[e.Key()]; ent != nil {
		switch {
		case ent.busy:
			// A worker holds it; whatever is newest wins when it is done.
			l.idx.postpone(ent, &pendingOp{rev: rev, value: value})
			return
		case rev <= ent.rev:
			return // the echo of a state write the index already has
		}
	}
	l.applyValue(e.Key(), rev, value)
}

// applyValue indexes one revision of a schedule (value nil: deleted).
// Only the fields that say when it is due are decoded, unless it is due
// soon enough to keep whole: a new leader indexing a million schedules
// spends its time here.
func (l *firer) applyValue(id string, rev uint64, value []byte) {
	if value == nil {
		l.idx.remove(id, rev)
		return
	}
	sch, err := dueView(id, value)
	if err != nil {
		// Never fired; listed as skipped until a readable value replaces it.
		l.log.Error("natsched: stored schedule is unreadable; not firing it", "id", id, "err", err)
		l.idx.set(id, rev, 0, statusOf(statusField(value)), nil)
		return
	}
	due := engine.Due(sch, l.opts)
	var keep *natsched.Schedule
	if !due.IsZero() && due.Sub(l.now()) <= cacheHorizon {
		full := new(natsched.Schedule)
		if err := json.Unmarshal(value, full); err == nil {
			full.Revision = rev
			keep = full
		}
	}
	l.idx.set(id, rev, unixNano(due), statusOf(sch.Status), keep)
}

// dueFields are the stored fields engine.Due reads.
type dueFields struct {
	Status     natsched.Status `json:"status"`
	Paused     bool            `json:"paused"`
	NextRun    string          `json:"next_run"`
	Updated    string          `json:"updated"`
	Jitter     string          `json:"jitter"`
	Generation uint64          `json:"generation"`
	Triggers   []string        `json:"triggers"`
}

// statusField is the status a stored value says it has, or "" when not
// even that can be read: status-filtered lists look at an unreadable value
// (and count it as skipped) unless it says it has another status.
func statusField(value []byte) natsched.Status {
	var f struct {
		Status natsched.Status `json:"status"`
	}
	if json.Unmarshal(value, &f) != nil {
		return ""
	}
	return f.Status
}

// dueView decodes just enough of a stored schedule to tell when it is due.
func dueView(id string, value []byte) (*natsched.Schedule, error) {
	var f dueFields
	if err := json.Unmarshal(value, &f); err != nil {
		return nil, err
	}
	sch := &natsched.Schedule{ID: id, Status: f.Status, Paused: f.Paused, Generation: f.Generation}
	var err error
	parse := func(v string) time.Time {
		if v == "" || err != nil {
			return time.Time{}
		}
		var t time.Time
		t, err = time.Parse(time.RFC3339Nano, v)
		return t
	}
	sch.NextRun, sch.Updated = parse(f.NextRun), parse(f.Updated)
	for _, tr := range f.Triggers {
		sch.Triggers = append(sch.Triggers, parse(tr))
	}
	if f.Jitter != "" && err == nil {
		sch.Jitter, err = natsched.ParseDuration(f.Jitter)
	}
	return sch, err
}

// cacheHorizon: schedules due within it keep their decoded state in the
// index, so that firing them needs no read of the bucket.
const cacheHorizon = 2 * time.Minute

func cacheable(sch *natsched.Schedule, due, now time.Time) *natsched.Schedule {
	if due.IsZero() || due.Sub(now) > cacheHorizon {
		return nil
	}
	return sch
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// isFresh reports whether nothing but this leader's own acknowledged state
// writes lies between what the watch has delivered and sequence last, and
// no entry of the batch was written while it was being fired: then the
// copies the index gave the batch are current as of last.
func (l *firer) isFresh(last uint64, entries []*entry) bool {
	if !l.own.covers(l.lastRev+1, last) {
		return false
	}
	for _, e := range entries {
		if e.x != nil && e.x.latest != nil {
			return false
		}
	}
	return true
}

// askFresh asks the loop; false if it is gone.
func (l *firer) askFresh(ctx context.Context, last uint64, entries []*entry) bool {
	reply := make(chan bool, 1)
	select {
	case l.fresh <- freshReq{last: last, entries: entries, reply: reply}:
	case <-l.exiting:
		return false
	case <-ctx.Done():
		return false
	}
	select {
	case ok := <-reply:
		return ok
	case <-l.stopped:
		return false
	}
}

// answerLists answers the list requests waiting for the index to catch
// up, once it has, and drops those whose requester gave up.
func (l *firer) answerLists() {
	kept := l.listWait[:0]
	for _, r := range l.listWait {
		select {
		case <-r.gone:
			continue
		default:
		}
		if max(l.lastRev, l.loadedRev) < r.last {
			kept = append(kept, r)
			continue
		}
		r.reply <- l.idx.candidates(r.status, r.prefix, r.after, r.n)
	}
	clear(l.listWait[len(kept):])
	l.listWait = kept
}

// candidates asks the loop for r's candidates; it waits (as long as ctx
// allows) until the index has caught up with r.last.
func (l *firer) candidates(ctx context.Context, r listReq) ([]string, error) {
	r.reply, r.gone = make(chan []string, 1), ctx.Done()
	select {
	case l.lists <- r:
	case <-l.stopped:
		return nil, natsched.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case ids := <-r.reply:
		return ids, nil
	case <-l.stopped:
		return nil, natsched.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// batchSize bounds the schedules one batch fires together.
const batchSize = 256

// maxBatches bounds the batches in flight. Each costs a freshness request
// and a state write round trip whatever its size, so when fires come
// faster than batches finish, the due schedules wait for a free one and go
// together, instead of as many batches of a few each; a burst fills them
// whole either way (workers / batchSize of them).
const maxBatches = 4

// backlogInFlight bounds the fires of schedules that are behind (see
// index) in flight at once, so that on-time work queues behind at most
// this many publishes in the pipeline to the server, whatever the backlog.
const backlogInFlight = batchSize

// setHeld records that this instance leads partition p, or no longer.
func (l *firer) setHeld(p int, lead bool) {
	if l.held[p] == lead {
		return
	}
	l.held[p] = lead
	held := []int{}
	for q, h := range l.held {
		if h {
			held = append(held, q)
		}
	}
	l.heldNow.Store(&held)
	l.isLeader.Store(len(held) > 0)
}

// heldPartitions lists the partitions this instance leads.
func (l *firer) heldPartitions() []int { return *l.heldNow.Load() }

// endTerms ends the terms whose partition has nothing in flight and
// returns the others.
func (l *firer) endTerms(ending []control) []control {
	kept := ending[:0]
	for _, c := range ending {
		if l.busyIn[c.part] > 0 {
			kept = append(kept, c)
			continue
		}
		close(c.done)
	}
	clear(ending[len(kept):])
	return kept
}

// dispatch hands due schedules to batches, up to the in-flight limit, one
// partition per batch (a batch fires under its partition's fence), taking
// the partitions in turn.
func (l *firer) dispatch(ctx context.Context) {
	now := l.now().UnixNano()
	for range l.parts {
		p := l.rr
		l.rr = (l.rr + 1) % l.parts
		// A lapsed fence: the lease may have lapsed; the lease goroutine
		// steps down.
		if l.held[p] && l.fences[p].ok() && !l.dispatchPart(ctx, p, now) {
			return
		}
	}
}

// dispatchPart hands partition p's due schedules to batches; false once
// no more batches may start.
func (l *firer) dispatchPart(ctx context.Context, p int, now int64) bool {
	for {
		if l.busy >= l.workers || l.batches >= maxBatches {
			return false
		}
		var batch []job
		for len(batch) < batchSize && l.busy < l.workers {
			e := l.idx.next(p, now, l.busyBehind < backlogInFlight)
			if e == nil {
				break
			}
			l.busy++
			l.busyIn[p]++
			if e.behind {
				l.busyBehind++
			}
			j := job{e: e, rev: e.rev, fence: l.fences[p]}
			if e.x != nil {
				j.failures = e.x.failures
			}
			if sch := e.cached(); sch != nil && sch.Revision == e.rev {
				j.sch = sch.Clone()
			}
			batch = append(batch, j)
		}
		if len(batch) == 0 {
			return true
		}
		l.batches++
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fireTimeout)
			defer cancel()
			l.results <- l.fire(fctx, batch) // never blocks: batches in flight <= workers
		}()
	}
}

// rearm points the one timer at the earliest due time of what dispatch
// may take.
func (l *firer) rearm() {
	var due int64
	for p, h := range l.held {
		if !h || !l.fences[p].ok() { // lapsed: the next renewal pokes the loop
			continue
		}
		if d := l.idx.nextDue(p, l.busyBehind < backlogInFlight); d != 0 && (due == 0 || d < due) {
			due = d
		}
	}
	if due == 0 || l.busy >= l.workers || l.batches >= maxBatches {
		// Nothing to wait for, or a worker's result or the next lease
		// renewal (which pokes the loop) will wake it.
		if l.timerAt != 0 {
			l.timer.Stop()
			l.timerAt = 0
		}
		return
	}
	if due == l.timerAt {
		return
	}
	l.timerAt = due
	l.timer.Reset(time.Unix(0, due).Sub(l.now()))
}

// The leases (package internal/lease, whose doc states its model) decide
// which instance fires which partition: the firing loop is, through
// holder, the Holder of each: it fires a partition only within a term of
// its lease, and publishes only while the term's fence is open.

// holder is the firing loop as the Holder of partition p's lease.
func (l *firer) holder(p int) lease.Holder { return partHolder{l: l, p: p} }

type partHolder struct {
	l *firer
	p int
}

// Lead starts a term safe until until.
func (h partHolder) Lead(ctx context.Context, until time.Time) bool {
	h.l.m.leaseChanges.Inc()
	h.l.fences[h.p].open(until)
	return h.l.switchTo(ctx.Done(), h.p, true)
}

// Extend moves the fence to until after a confirmed renewal.
func (h partHolder) Extend(until time.Time) {
	h.l.fences[h.p].open(until)
	h.l.poke()
}

// Step closes the fence at once, so that in-flight fires publish no more,
// then ends the term once they have finished.
func (h partHolder) Step() {
	h.l.m.leaseChanges.Inc()
	h.l.fences[h.p].close()
	h.l.switchTo(nil, h.p, false)
}
