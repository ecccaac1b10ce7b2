package jetstream

import (
	"time"

	"github.com/natsched/natsched/jetstream/internal/lease"
)

// balance is the coordinator's view of the leader bucket and its answers
// to the partition leases' gates (see partitions.go for the rules). It is
// plain data, so that the rules are tested without a server; the
// coordinator holds its lock.
type balance struct {
	n     int    // this instance's partition count
	self  string // this instance's name
	grace time.Duration

	// holders names, by partition (< n), the instance holding its lease;
	// freeSince says since when a free one has been seen free.
	holders   []string
	freeSince []time.Time
	// inForce is the partition count the holder of partition 0 fires by
	// (0: not known yet). It keeps its last value while nobody holds
	// partition 0.
	inForce int
	members map[string]member // presence keys, by token
	// dead are instances whose lease expired: they are not counted until
	// they write again.
	dead map[string]bool
	// mine: partitions this instance campaigns for or holds.
	mine  []bool
	nmine int
	// handing is the partition this instance handed over and nobody has
	// taken yet (-1: none): one hand-over at a time.
	handing  int
	handedAt time.Time
}

func newBalance(n int, self string, grace time.Duration) balance {
	b := balance{n: n, self: self, grace: grace, mine: make([]bool, n), handing: -1}
	b.reset()
	return b
}

// reset forgets the view (a new watch replays the bucket); what this
// instance holds stays.
func (b *balance) reset() {
	b.holders, b.freeSince = make([]string, b.n), make([]time.Time, b.n)
	b.members, b.dead = map[string]member{}, map[string]bool{}
}

// hold records that v holds partition p.
func (b *balance) hold(p int, v lease.Value, now time.Time) {
	if p == 0 {
		b.inForce = v.Count()
	}
	delete(b.dead, v.ID)
	if p < b.n {
		b.holders[p], b.freeSince[p] = v.ID, time.Time{}
	}
	if p == b.handing {
		b.handing = -1
	}
}

// free records that partition p's lease was released, or expired.
func (b *balance) free(p int, expired bool, now time.Time) {
	if p >= b.n {
		return
	}
	if expired && b.holders[p] != "" {
		b.dead[b.holders[p]] = true
	}
	b.holders[p], b.freeSince[p] = "", now
}

// join and leave record presence keys.
func (b *balance) join(token string, m member) {
	b.members[token] = m
	delete(b.dead, m.ID)
}

func (b *balance) leave(token string) { delete(b.members, token) }

// live counts the instances that fire by this instance's partition count
// and are not known dead, this one included.
func (b *balance) live() int {
	names := map[string]bool{b.self: true}
	for _, m := range b.members {
		if m.Partitions == b.n && !b.dead[m.ID] {
			names[m.ID] = true
		}
	}
	return len(names)
}

// limit is what one instance should hold at most: ceil(n / live).
func (b *balance) limit() int {
	k := b.live()
	return (b.n + k - 1) / k
}

// fewest is the fewest partitions another live instance of the same
// count holds, or -1 if there is none.
func (b *balance) fewest() int {
	held := map[string]int{}
	for _, h := range b.holders {
		if h != "" {
			held[h]++
		}
	}
	fewest := -1
	for _, m := range b.members {
		if m.ID != b.self && m.Partitions == b.n && !b.dead[m.ID] && (fewest < 0 || held[m.ID] < fewest) {
			fewest = held[m.ID]
		}
	}
	return fewest
}

// ours reports whether partitions other than 0 may be held by this
// instance: the count in force is its own.
func (b *balance) ours(p int) bool { return p == 0 || b.inForce == b.n }

// campaign answers the gate of partition p: whether to try for it now,
// and if not, when to ask again (0: when the view changes). An instance
// below its share and holding no more than any other tries at once.
// Without pushed expiries (markers) the view cannot tell the dead, so any
// free partition is tried for.
func (b *balance) campaign(p int, now time.Time, markers bool) (bool, time.Duration) {
	switch {
	case b.mine[p]:
		return true, 0
	case !b.ours(p):
		return false, 0
	case !markers || b.nmine < b.limit() && (b.fewest() < 0 || b.nmine <= b.fewest()):
		b.reserve(p)
		return true, 0
	case b.holders[p] != "":
		return false, 0
	}
	// Free, and others should take it first: take it only if nobody has
	// for a moment (a count that is briefly wrong, an instance gone).
	if b.freeSince[p].IsZero() {
		b.freeSince[p] = now
	}
	if wait := b.grace - now.Sub(b.freeSince[p]); wait > 0 {
		return false, wait
	}
	b.reserve(p)
	return true, 0
}

func (b *balance) reserve(p int) {
	b.mine[p] = true
	b.nmine++
}

// release gives partition p back (the campaign failed or the term
// ended).
func (b *balance) release(p int) {
	if b.mine[p] {
		b.mine[p] = false
		b.nmine--
	}
}

// yield answers the gate of partition p, held: whether to hand it over
// now. It does when the count in force is another, or when this instance
// holds at least two more than another instance of the same count, p is
// its highest, and no earlier hand-over is still waiting to be taken (for
// at most the grace). Every hand-over narrows the spread, so the leases
// settle with at most one between any two instances and then stay. Saying
// yes gives p back at once, so that the next question counts without it.
func (b *balance) yield(p int, now time.Time, markers bool) bool {
	if !b.mine[p] {
		return false
	}
	if !b.ours(p) {
		b.release(p)
		return true
	}
	if b.handing >= 0 && now.Sub(b.handedAt) < b.grace {
		return false
	}
	fewest := b.fewest()
	if !markers || fewest < 0 || b.nmine-fewest < 2 || b.highest() != p {
		return false
	}
	b.release(p)
	b.handing, b.handedAt = p, now
	return true
}

// highest is the highest partition this instance holds, or -1.
func (b *balance) highest() int {
	for p := b.n - 1; p >= 0; p-- {
		if b.mine[p] {
			return p
		}
	}
	return -1
}
