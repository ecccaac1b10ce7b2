package jetstream

import (
	"math/rand/v2"
	"testing"
)

// TestOwnSeqsAgainstASet checks the ranges against a plain set under
// random adds, forgets and queries.
func TestOwnSeqsAgainstASet(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		var o ownSeqs
		set := map[uint64]bool{}
		var floor uint64
		for op := 0; op < 300; op++ {
			switch r.IntN(4) {
			case 0, 1:
				lo := floor + 1 + r.Uint64N(200)
				hi := lo + r.Uint64N(8)
				o.add(lo, hi)
				for s := lo; s <= hi; s++ {
					set[s] = true
				}
			case 2:
				floor += r.Uint64N(20)
				o.forget(floor)
				for s := range set {
					if s <= floor {
						delete(set, s)
					}
				}
			case 3:
				lo := floor + 1 + r.Uint64N(200)
				hi := lo + r.Uint64N(30)
				want := true
				for s := lo; s <= hi; s++ {
					want = want && set[s]
				}
				if got := o.covers(lo, hi); got != want {
					t.Fatalf("round %d: covers(%d, %d) = %v, want %v (ranges %v)", round, lo, hi, got, want, o.ranges)
				}
			}
			for i := 1; i < len(o.ranges); i++ {
				if o.ranges[i-1].hi+1 >= o.ranges[i].lo {
					t.Fatalf("ranges not sorted, disjoint and apart: %v", o.ranges)
				}
			}
		}
	}
}

func TestOwnSeqsEdges(t *testing.T) {
	var o ownSeqs
	if !o.covers(5, 4) {
		t.Fatal("an empty span is covered")
	}
	if o.covers(1, 1) {
		t.Fatal("nothing added, nothing covered")
	}
	o.add(10, 20)
	o.add(21, 21) // adjacent: merged
	o.add(5, 9)
	if len(o.ranges) != 1 || !o.covers(5, 21) || o.covers(4, 21) || o.covers(5, 22) {
		t.Fatalf("ranges %v", o.ranges)
	}
	o.forget(12)
	if o.covers(12, 12) || !o.covers(13, 21) {
		t.Fatalf("after forget: %v", o.ranges)
	}
}
