package jetstream

import (
	"container/heap"

	"github.com/natsched/natsched"
)

// index is the leader's view of what is due: a min-heap of (due, id) over
// compact entries. Only schedules due within cacheHorizon keep their
// decoded state (payload included); the others are read from the bucket
// when they fire.
//
// Schedules whose last fire left a backlog (more was due than one step
// fires) wait in a second heap, ordered by when they were put back: they
// get what capacity is left once everything on time has been taken, one
// turn each, so that one tenant's backlog never delays another's
// occurrences.
type index struct {
	byID    map[string]*entry
	heap    entryHeap // on time, by due time
	backlog entryHeap // behind, by when they were put back
	active  int       // entries that are not done
}

type entry struct {
	id  string
	due int64  // unix ns; 0 = not in the heap
	rev uint64 // latest revision seen
	pos int32  // in heap, -1 when out
	// busy: a worker is firing this schedule; watch updates wait in
	// latest until it reports back.
	busy bool
	done bool // the schedule's status is done
	// behind: its last fire left a backlog; it waits in index.backlog.
	behind bool
	// sch is the decoded state at rev, kept only while the schedule is due
	// soon (see cacheHorizon), so that firing needs no read.
	sch *natsched.Schedule
	// x holds what few entries need (a retry backoff, a write seen while
	// firing); kept apart so that a million idle entries stay small.
	x *entryExtra
}

type entryExtra struct {
	// retryAt: after a failed fire, not before this (unix ns), whatever
	// the stored state says; failures counts them for the backoff. Both
	// belong to the worker while busy.
	retryAt  int64
	failures int32
	// latest is what the watch delivered while a worker held the entry;
	// it wins over the worker's result if newer (nil value: deleted).
	latest *pendingOp
}

func (e *entry) extra() *entryExtra {
	if e.x == nil {
		e.x = &entryExtra{}
	}
	return e.x
}

func (e *entry) retryAt() int64 {
	if e.x == nil {
		return 0
	}
	return e.x.retryAt
}

type pendingOp struct {
	rev   uint64
	value []byte // nil: deleted
}

func newIndex() *index { return &index{byID: make(map[string]*entry)} }

// set records id at revision rev with due time due (0: nothing due) and,
// for soon-due schedules, its decoded state. Older revisions than the one
// already seen are ignored.
func (x *index) set(id string, rev uint64, due int64, done bool, sch *natsched.Schedule) {
	e := x.byID[id]
	if e == nil {
		e = &entry{id: id, pos: -1, done: true}
		x.byID[id] = e
	}
	if rev < e.rev {
		return
	}
	x.markDone(e, done)
	e.rev, e.sch = rev, sch
	x.place(e, due)
}

func (x *index) markDone(e *entry, done bool) {
	switch {
	case e.done && !done:
		x.active++
	case !e.done && done:
		x.active--
	}
	e.done = done
}

func (x *index) place(e *entry, due int64) {
	x.placeIn(e, due, false)
}

// placeIn puts e at due in the on-time heap, or in the backlog.
func (x *index) placeIn(e *entry, due int64, behind bool) {
	if r := e.retryAt(); due != 0 && due < r {
		due = r
	}
	if e.pos >= 0 && e.behind != behind {
		x.unqueue(e)
	}
	e.due, e.behind = due, behind
	h := x.queueOf(e)
	switch {
	case due == 0 && e.pos >= 0:
		heap.Remove(h, int(e.pos))
	case due == 0:
	case e.pos >= 0:
		heap.Fix(h, int(e.pos))
	default:
		heap.Push(h, e)
	}
}

func (x *index) queueOf(e *entry) *entryHeap {
	if e.behind {
		return &x.backlog
	}
	return &x.heap
}

// unqueue takes e out of whichever heap holds it.
func (x *index) unqueue(e *entry) {
	if e.pos >= 0 {
		heap.Remove(x.queueOf(e), int(e.pos))
	}
}

// remove forgets id (deleted at revision rev).
func (x *index) remove(id string, rev uint64) {
	e := x.byID[id]
	if e == nil || rev < e.rev {
		return
	}
	x.unqueue(e)
	x.markDone(e, true)
	delete(x.byID, id)
}

// peek returns the earliest due time of either heap, or 0.
func (x *index) peek() int64 {
	var due int64
	for _, h := range []entryHeap{x.heap, x.backlog} {
		if len(h) > 0 && (due == 0 || h[0].due < due) {
			due = h[0].due
		}
	}
	return due
}

// take removes the next entry to fire, the earliest on time if it is due
// by now (unix ns), else the longest-waiting one behind, and marks it busy.
func (x *index) take(now int64) *entry {
	h := &x.backlog
	if len(x.heap) > 0 && (x.heap[0].due <= now || len(x.backlog) == 0) {
		h = &x.heap
	}
	e := heap.Pop(h).(*entry)
	e.busy = true
	return e
}

// finish records a worker's result: the revision it wrote or read, the
// due time and state that revision implies or that the schedule is gone,
// and the retry backoff after a failure. It returns what the watch
// delivered meanwhile if that is newer: the caller applies it on top.
func (x *index) finish(r result) *pendingOp {
	e := r.e
	e.busy = false
	var latest *pendingOp
	if e.x != nil {
		latest, e.x.latest = e.x.latest, nil
	}
	if r.retryAt != 0 {
		ex := e.extra()
		ex.retryAt, ex.failures = r.retryAt, r.failures
	} else if e.x != nil {
		e.x = nil // success: no backoff, and latest was taken
	}
	if latest != nil && latest.rev > r.rev {
		e.sch = nil
		return latest
	}
	if r.gone {
		x.remove(e.id, r.rev)
		return nil
	}
	e.rev, e.sch = max(e.rev, r.rev), r.sch
	if r.status != "" {
		x.markDone(e, r.status == natsched.StatusDone)
	}
	x.placeIn(e, r.due, r.behind)
	return nil
}

type entryHeap []*entry

func (h entryHeap) Len() int { return len(h) }
func (h entryHeap) Less(i, j int) bool {
	if h[i].due != h[j].due {
		return h[i].due < h[j].due
	}
	return h[i].id < h[j].id
}
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos, h[j].pos = int32(i), int32(j)
}
func (h *entryHeap) Push(x any) {
	e := x.(*entry)
	e.pos = int32(len(*h))
	*h = append(*h, e)
}
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.pos = -1
	*h = old[:len(old)-1]
	return e
}
