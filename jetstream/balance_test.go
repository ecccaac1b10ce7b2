package jetstream

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched/jetstream/internal/lease"
)

// sim is a set of instances sharing one bucket, each with its own balance
// fed from the same events, campaigning and yielding as the gates say:
// the balancing rules played out without a server.
type sim struct {
	t     *testing.T
	n     int
	now   time.Time
	bals  map[string]*balance
	order []string
	owner []string // by partition
	moves int      // hand-overs and take-overs after the start
}

func newSim(t *testing.T, n int) *sim {
	return &sim{t: t, n: n, now: time.Unix(1e9, 0), bals: map[string]*balance{}, owner: make([]string, n)}
}

// each tells every instance's view.
func (s *sim) each(f func(b *balance)) {
	for _, name := range s.order {
		f(s.bals[name])
	}
}

func (s *sim) join(name string) {
	b := newBalance(s.n, name, time.Second)
	s.bals[name], s.order = &b, append(s.order, name)
	// The new instance's watch replays the bucket.
	for tok := range s.bals {
		if tok != name {
			b.join(tok, member{ID: tok, Partitions: s.n})
		}
	}
	for p, o := range s.owner {
		if o != "" {
			b.hold(p, lease.Value{ID: o, Partitions: s.n}, s.now)
		} else {
			b.free(p, false, s.now)
		}
	}
	s.each(func(o *balance) { o.join(name, member{ID: name, Partitions: s.n}) })
}

// kill: the instance is gone; its leases and presence expire.
func (s *sim) kill(name string) {
	delete(s.bals, name)
	for i, o := range s.order {
		if o == name {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
	for p, o := range s.owner {
		if o == name {
			s.owner[p] = ""
			s.each(func(b *balance) { b.free(p, true, s.now) })
		}
	}
	s.each(func(b *balance) { b.leave(name) })
}

// settle runs rounds (each instance yields what it should, then
// campaigns for free partitions; time moves on by 200ms) until nothing
// changes for as long as the grace, or rounds run out.
func (s *sim) settle(rounds int) {
	quiet := 0
	for range rounds {
		changed := false
		for _, name := range s.order {
			b := s.bals[name]
			for p := range s.n {
				if s.owner[p] == name && b.yield(p, s.now, true) {
					s.owner[p] = ""
					s.each(func(o *balance) { o.free(p, false, s.now) })
					changed = true
					s.moves++
				}
			}
		}
		for _, name := range s.order {
			b := s.bals[name]
			for p := range s.n {
				if s.owner[p] != "" {
					continue
				}
				if ok, _ := b.campaign(p, s.now, true); ok {
					s.owner[p] = name
					s.each(func(o *balance) { o.hold(p, lease.Value{ID: name, Partitions: s.n}, s.now) })
					changed = true
					s.moves++
				}
			}
		}
		s.now = s.now.Add(200 * time.Millisecond)
		if changed {
			quiet = 0
		} else if quiet++; quiet > 10 {
			return
		}
	}
}

func (s *sim) shares() map[string]int {
	out := map[string]int{}
	for _, o := range s.owner {
		out[o]++
	}
	return out
}

// TestBalanceSpreadsPartitions: instances joining one by one end with
// ceil(N/k) or less each and every partition held; a dead instance's
// partitions are taken over; nothing moves once balanced.
func TestBalanceSpreadsPartitions(t *testing.T) {
	t.Parallel()
	s := newSim(t, 6)
	s.join("a")
	s.settle(100)
	require.Equal(t, map[string]int{"a": 6}, s.shares())
	s.join("b")
	s.settle(100)
	require.Equal(t, map[string]int{"a": 3, "b": 3}, s.shares())
	s.join("c")
	s.settle(100)
	require.Equal(t, map[string]int{"a": 2, "b": 2, "c": 2}, s.shares())

	s.moves = 0
	s.settle(100)
	require.Zero(t, s.moves, "balanced leases move")

	s.kill("b")
	s.settle(100)
	require.Equal(t, map[string]int{"a": 3, "c": 3}, s.shares())
	s.join("b")
	s.settle(100)
	require.Equal(t, map[string]int{"a": 2, "b": 2, "c": 2}, s.shares())

	s.join("d") // 6 over 4: 2, 2, 1, 1
	s.settle(100)
	sh := s.shares()
	require.Zero(t, sh[""], "unheld partitions: %v", sh)
	require.ElementsMatch(t, []int{2, 2, 1, 1}, []int{sh["a"], sh["b"], sh["c"], sh["d"]}, "%v", sh)
}

// TestBalanceFourOverThree: 4 partitions over 3 instances end 2, 1, 1
// (not 2, 2, 0, which ceil(N/k) alone allows), whatever the order they
// join in, and stay.
func TestBalanceFourOverThree(t *testing.T) {
	t.Parallel()
	s := newSim(t, 4)
	for _, name := range []string{"a", "b", "c"} {
		s.join(name)
		s.settle(100)
	}
	sh := s.shares()
	require.ElementsMatch(t, []int{2, 1, 1}, []int{sh["a"], sh["b"], sh["c"]}, "%v", sh)
	s.moves = 0
	s.settle(100)
	require.Zero(t, s.moves)
}

// TestBalanceTakesAFreePartitionAfterTheGrace: an instance at its share
// still takes a partition nobody has taken for the grace (a count that is
// wrong for a moment must not leave a partition unfired).
func TestBalanceTakesAFreePartitionAfterTheGrace(t *testing.T) {
	t.Parallel()
	now := time.Unix(1e9, 0)
	b := newBalance(2, "a", time.Second)
	b.join("x", member{ID: "b", Partitions: 2}) // b counts, but holds nothing
	b.hold(0, lease.Value{ID: "a", Partitions: 2}, now)
	b.reserve(0)
	b.free(1, false, now)
	ok, wait := b.campaign(1, now, true)
	require.False(t, ok)
	require.Equal(t, time.Second, wait)
	ok, _ = b.campaign(1, now.Add(time.Second), true)
	require.True(t, ok)
}

// TestBalanceFollowsThePartitionCountInForce: with another count in
// force (what the holder of partition 0 says) an instance takes partition
// 0 only and hands any other back; the count in force stays while nobody
// holds partition 0.
func TestBalanceFollowsThePartitionCountInForce(t *testing.T) {
	t.Parallel()
	now := time.Unix(1e9, 0)
	b := newBalance(6, "a", time.Second)
	ok, _ := b.campaign(3, now, true)
	require.False(t, ok, "count in force not known yet")
	b.hold(0, lease.Value{ID: "z", Partitions: 6}, now)
	ok, _ = b.campaign(3, now, true)
	require.True(t, ok)
	require.False(t, b.yield(3, now, true))

	b.hold(0, lease.Value{ID: "old"}, now) // an instance of 1 partition (or an older natsched) leads
	require.True(t, b.yield(3, now, true), "another count is in force")
	ok, _ = b.campaign(3, now, true)
	require.False(t, ok)
	b.free(0, true, now)
	ok, _ = b.campaign(0, now, true)
	require.True(t, ok, "partition 0 is anyone's")
	ok, _ = b.campaign(3, now, true)
	require.False(t, ok, "the count in force is the last one seen until partition 0 is held again")
}
