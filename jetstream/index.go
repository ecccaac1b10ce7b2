package jetstream

import (
	"slices"
	"strings"

	"github.com/google/btree"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/internal/dueheap"
)

// index is every instance's view of the schedules bucket: a min-heap of
// (due, id) for firing, and a B-tree of (status, id) for listing by
// status, over compact entries. Only schedules due within cacheHorizon
// keep their decoded state (payload included); the others are read from
// the bucket when they fire.
//
// Schedules whose last fire left a backlog (more was due than one step
// fires) wait in a second heap, ordered by when they were put back: they
// get what capacity is left once everything on time has been taken, one
// turn each, so that one tenant's backlog never delays another's
// occurrences.
//
// With partitions (see natsched.Partition) each partition has its own pair
// of heaps, so that a leader of some partitions takes only theirs.
type index struct {
	byID  map[string]*entry
	parts []queues // by partition
	// byStatus holds every entry of byID, ordered by (status, id): a page
	// of one status is found in time proportional to the page.
	byStatus *btree.BTreeG[*entry]
	// unsettled are busy entries the watch delivered a newer value of:
	// their place in byStatus waits for the worker, so every
	// status-filtered list considers them.
	unsettled map[*entry]struct{}
	pending   int // entries that are active or paused
	// byStatusCount counts the entries of each status.
	byStatusCount [statusOther + 1]int
}

// queues are one partition's heaps.
type queues struct {
	heap    dueheap.Heap[*entry] // on time, by due time
	backlog dueheap.Heap[*entry] // behind, by when they were put back
}

type entry struct {
	id  string
	due int64  // unix ns; 0 = not in the heap
	rev uint64 // latest revision seen
	pos int32  // in heap, -1 when out
	// part is the schedule's partition (a byte: entries stay 48 bytes).
	part uint8
	// busy: a worker is firing this schedule; watch updates wait in
	// latest until it reports back.
	busy bool
	// behind: its last fire left a backlog; it waits in index.backlog.
	behind bool
	// status is the latest stored status seen (as byStatus orders it);
	// change it only through index.setStatus.
	status status
	// x holds what few entries need (the decoded state of one due soon, a
	// retry backoff, a write seen while firing); kept apart so that a
	// million idle entries stay small.
	x *entryExtra
}

type entryExtra struct {
	// sch is the decoded state at the entry's rev, kept only while the
	// schedule is due soon (see cacheHorizon), so that firing needs no
	// read.
	sch *natsched.Schedule
	// retryAt: after a failed fire, not before this (unix ns), whatever
	// the stored state says; failures counts them for the backoff. Both
	// belong to the worker while busy.
	retryAt  int64
	failures int32
	// latest is what the watch delivered while a worker held the entry;
	// it wins over the worker's result if newer (nil value: deleted).
	latest *pendingOp
}

// status is a stored status as the index keeps it, in one byte.
type status uint8

const (
	statusActive status = iota
	statusPaused
	statusDone
	// statusOther: the stored value is unreadable or has no known
	// status. Such entries are candidates of every status-filtered list,
	// which reads them and counts the unreadable ones as skipped.
	statusOther
)

func statusOf(s natsched.Status) status {
	switch s {
	case natsched.StatusActive:
		return statusActive
	case natsched.StatusPaused:
		return statusPaused
	case natsched.StatusDone:
		return statusDone
	}
	return statusOther
}

func (e *entry) extra() *entryExtra {
	if e.x == nil {
		e.x = &entryExtra{}
	}
	return e.x
}

// trim drops x once it holds nothing.
func (e *entry) trim() {
	if e.x != nil && *e.x == (entryExtra{}) {
		e.x = nil
	}
}

func (e *entry) retryAt() int64 {
	if e.x == nil {
		return 0
	}
	return e.x.retryAt
}

// cached is the decoded state the index keeps, or nil.
func (e *entry) cached() *natsched.Schedule {
	if e.x == nil {
		return nil
	}
	return e.x.sch
}

func (e *entry) cache(sch *natsched.Schedule) {
	if sch == nil {
		if e.x != nil {
			e.x.sch = nil
			e.trim()
		}
		return
	}
	e.extra().sch = sch
}

type pendingOp struct {
	rev   uint64
	value []byte // nil: deleted
}

// btreeDegree: nodes of up to 63 entries, a few pointers' overhead each.
const btreeDegree = 32

func byStatusLess(a, b *entry) bool {
	if a.status != b.status {
		return a.status < b.status
	}
	return a.id < b.id
}

// newIndex returns an empty index of n partitions (at least 1).
func newIndex(n int) *index {
	return &index{byID: make(map[string]*entry), parts: make([]queues, max(n, 1)),
		byStatus: btree.NewG(btreeDegree, byStatusLess), unsettled: make(map[*entry]struct{})}
}

// set records id at revision rev with status st, due time due (0: nothing
// due) and, for soon-due schedules, its decoded state. Older revisions
// than the one already seen are ignored.
func (x *index) set(id string, rev uint64, due int64, st status, sch *natsched.Schedule) {
	e := x.byID[id]
	if e == nil {
		// The watch's key is a slice of the whole message subject: keep
		// a copy of just the ID.
		e = &entry{id: strings.Clone(id), pos: -1, status: st, part: uint8(natsched.Partition(id, len(x.parts)))}
		x.byID[e.id] = e
		x.byStatus.ReplaceOrInsert(e)
		x.count(st, 1)
	}
	if rev < e.rev {
		return
	}
	x.setStatus(e, st)
	e.rev = rev
	e.cache(sch)
	x.place(e, due)
}

// postpone keeps op, delivered by the watch while a worker holds e, for
// when the worker is done, unless a newer one is already kept.
func (x *index) postpone(e *entry, op *pendingOp) {
	if ex := e.extra(); ex.latest == nil || op.rev > ex.latest.rev {
		ex.latest = op
		x.unsettled[e] = struct{}{}
	}
}

// setStatus moves e to status st.
func (x *index) setStatus(e *entry, st status) {
	if e.status == st {
		return
	}
	x.byStatus.Delete(e)
	x.count(e.status, -1)
	e.status = st
	x.byStatus.ReplaceOrInsert(e)
	x.count(st, 1)
}

func (x *index) count(st status, d int) {
	x.byStatusCount[st] += d
	if st == statusActive || st == statusPaused {
		x.pending += d
	}
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
		h.Remove(e)
	case due == 0:
	case e.pos >= 0:
		h.Fix(e)
	default:
		h.Push(e)
	}
}

func (x *index) queueOf(e *entry) *dueheap.Heap[*entry] {
	q := &x.parts[e.part]
	if e.behind {
		return &q.backlog
	}
	return &q.heap
}

// unqueue takes e out of whichever heap holds it.
func (x *index) unqueue(e *entry) {
	if e.pos >= 0 {
		x.queueOf(e).Remove(e)
	}
}

// remove forgets id (deleted at revision rev).
func (x *index) remove(id string, rev uint64) {
	e := x.byID[id]
	if e == nil || rev < e.rev {
		return
	}
	x.unqueue(e)
	x.byStatus.Delete(e)
	x.count(e.status, -1)
	delete(x.unsettled, e)
	delete(x.byID, id)
}

// peek returns the earliest due time of any heap, or 0.
func (x *index) peek() int64 {
	var due int64
	for p := range x.parts {
		if d := x.nextDue(p, true); d != 0 && (due == 0 || d < due) {
			due = d
		}
	}
	return due
}

// nextDue returns the earliest due time of what next may take from
// partition p: the on-time heap's, and the backlog's if backlog; 0 if
// none.
func (x *index) nextDue(p int, backlog bool) int64 {
	q := &x.parts[p]
	var due int64
	if e, ok := q.heap.Peek(); ok {
		due = e.due
	}
	if e, ok := q.backlog.Peek(); backlog && ok && (due == 0 || e.due < due) {
		due = e.due
	}
	return due
}

// next takes the next entry of partition p to fire at now (unix ns) and
// marks it busy: the earliest on-time one due by now, else, if backlog,
// the longest-waiting one behind; nil if there is none.
func (x *index) next(p int, now int64, backlog bool) *entry {
	q := &x.parts[p]
	var h *dueheap.Heap[*entry]
	if e, ok := q.heap.Peek(); ok && e.due <= now {
		h = &q.heap
	} else if e, ok := q.backlog.Peek(); backlog && ok && e.due <= now {
		h = &q.backlog
	} else {
		return nil
	}
	e := h.Pop()
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
	delete(x.unsettled, e)
	var latest *pendingOp
	if e.x != nil {
		latest, e.x.latest = e.x.latest, nil
		e.x.retryAt, e.x.failures = 0, 0
	}
	if r.retryAt != 0 {
		ex := e.extra()
		ex.retryAt, ex.failures = r.retryAt, r.failures
	}
	if latest != nil && latest.rev > r.rev {
		e.cache(nil)
		return latest
	}
	if r.gone {
		x.remove(e.id, r.rev)
		return nil
	}
	e.rev = max(e.rev, r.rev)
	e.cache(r.sch)
	switch {
	case r.unreadable:
		x.setStatus(e, statusOf(r.status))
	case r.status != "":
		x.setStatus(e, statusOf(r.status))
	}
	x.placeIn(e, r.due, r.behind)
	return nil
}

// candidates returns up to n IDs after after (exclusive) in prefix (whole
// tokens), in byte order, of the entries with status st, statusOther or
// unsettled ones.
func (x *index) candidates(st status, prefix, after string, n int) []string {
	ids := x.inPrefix(st, prefix, after, n)
	more := x.inPrefix(statusOther, prefix, after, n)
	for e := range x.unsettled {
		if e.id > after && natsched.MatchPrefix(e.id, prefix) {
			more = append(more, e.id)
		}
	}
	if len(more) == 0 {
		return ids
	}
	ids = slices.Compact(slices.Sorted(slices.Values(append(ids, more...))))
	return ids[:min(len(ids), n)]
}

// inPrefix returns up to n IDs of status st after after in prefix: the
// prefix itself, then the IDs under prefix + "." (IDs that merely start
// with the prefix, such as "billing-x" between "billing" and "billing.",
// are never visited).
func (x *index) inPrefix(st status, prefix, after string, n int) []string {
	var ids []string
	probe := &entry{status: st}
	from, under := after, ""
	if prefix != "" {
		probe.id = prefix
		if prefix > after && x.byStatus.Has(probe) {
			if ids = append(ids, prefix); len(ids) == n {
				return ids
			}
		}
		under = prefix + "."
		from = max(after, under)
	}
	probe.id = from
	x.byStatus.AscendGreaterOrEqual(probe, func(e *entry) bool {
		if e.status != st || !strings.HasPrefix(e.id, under) {
			return false
		}
		if e.id != after {
			ids = append(ids, e.id)
		}
		return len(ids) < n
	})
	return ids
}

// The index's entries are in dueheap's heaps.
func (e *entry) Due() int64   { return e.due }
func (e *entry) Key() string  { return e.id }
func (e *entry) SetPos(i int) { e.pos = int32(i) }
func (e *entry) Pos() int     { return int(e.pos) }
