package jetstream

import (
	"slices"
	"sync"
)

// ownSeqs is the set of schedules-bucket sequences holding state writes
// this leader made and the watch has not delivered yet, as ranges (a
// batch's writes are one). Writers add a write as soon as its PubAck
// says where it went; the firing loop asks whether a span of sequences is
// all its own (then nothing unseen in it is anyone else's) and forgets
// what the watch has delivered. A write added late only makes the answer
// a more cautious "no".
type ownSeqs struct {
	mu     sync.Mutex
	ranges []seqRange // sorted, disjoint, not adjacent
}

type seqRange struct{ lo, hi uint64 }

// maxOwnRanges bounds the set while the watch is behind: past it the
// oldest ranges are dropped, which only makes covers say no.
const maxOwnRanges = 4096

// add records the writes at lo..hi.
func (o *ownSeqs) add(lo, hi uint64) {
	if lo == 0 || hi < lo {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	i, _ := slices.BinarySearchFunc(o.ranges, lo, func(r seqRange, lo uint64) int {
		switch {
		case r.hi+1 < lo:
			return -1
		case r.lo > lo:
			return 1
		}
		return 0
	})
	// ranges[i:] are those not wholly before lo-1; merge every one that
	// touches lo..hi.
	j := i
	for j < len(o.ranges) && o.ranges[j].lo <= hi+1 {
		lo, hi = min(lo, o.ranges[j].lo), max(hi, o.ranges[j].hi)
		j++
	}
	o.ranges = slices.Replace(o.ranges, i, j, seqRange{lo, hi})
	if len(o.ranges) > maxOwnRanges {
		o.ranges = slices.Delete(o.ranges, 0, len(o.ranges)-maxOwnRanges)
	}
}

// covers reports whether every sequence in lo..hi is an own write (true
// for an empty span).
func (o *ownSeqs) covers(lo, hi uint64) bool {
	if hi < lo {
		return true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	i, found := slices.BinarySearchFunc(o.ranges, lo, func(r seqRange, lo uint64) int {
		switch {
		case r.hi < lo:
			return -1
		case r.lo > lo:
			return 1
		}
		return 0
	})
	return found && o.ranges[i].hi >= hi
}

// forget drops the sequences up to seq (the watch has delivered them).
func (o *ownSeqs) forget(seq uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	i := 0
	for i < len(o.ranges) && o.ranges[i].hi <= seq {
		i++
	}
	o.ranges = slices.Delete(o.ranges, 0, i)
	if len(o.ranges) > 0 && o.ranges[0].lo <= seq {
		o.ranges[0].lo = seq + 1
	}
}

// writesInFlight tracks the state writes being made, by ticket, so that
// a freshness check can wait for those sent before it asked the bucket's
// last sequence: their sequences are at or below it and become own ones
// once their PubAcks come.
type writesInFlight struct {
	mu      sync.Mutex
	next    uint64
	pending map[uint64]struct{}
	changed chan struct{} // closed and replaced when a write ends
}

// start takes a ticket for a write about to be sent.
func (w *writesInFlight) start() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pending == nil {
		w.pending, w.changed = map[uint64]struct{}{}, make(chan struct{})
	}
	w.next++
	w.pending[w.next] = struct{}{}
	return w.next
}

// end returns a ticket once the write's outcome is known (and, if it
// landed, added to the own sequences).
func (w *writesInFlight) end(t uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.pending, t)
	close(w.changed)
	w.changed = make(chan struct{})
}

// issued is the latest ticket taken.
func (w *writesInFlight) issued() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.next
}

// wait waits until no write with a ticket up to t is in flight; false if
// done closes first.
func (w *writesInFlight) wait(t uint64, done <-chan struct{}) bool {
	for {
		w.mu.Lock()
		busy := false
		for p := range w.pending {
			if p <= t {
				busy = true
				break
			}
		}
		changed := w.changed
		w.mu.Unlock()
		if !busy {
			return true
		}
		select {
		case <-changed:
		case <-done:
			return false
		}
	}
}
