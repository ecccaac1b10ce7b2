package jetstream

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched/jetstream/internal/lease"
	"github.com/natsched/natsched/natschedtest"
)

// startPartitioned starts a scheduler of n partitions named name on its
// own connection; stop closes it (also done at cleanup).
func startPartitioned(t *testing.T, srv *natschedtest.Server, name string, n int) (s *Scheduler, stop func()) {
	t.Helper()
	s, err := New(srv.JetStream(t), WithName(name), WithLeaseTTL(time.Second), WithPartitions(n))
	require.NoError(t, err)
	require.NoError(t, s.Start(bg))
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(bg, 10*time.Second)
		defer cancel()
		require.NoError(t, s.Close(ctx))
	}
	t.Cleanup(stop)
	return s, stop
}

// holdings waits until the partitions are all held and spread as want
// says (instance -> how many), and returns who holds which.
func holdings(t *testing.T, insts []*Scheduler, want map[string]int) map[int]string {
	t.Helper()
	var got map[int]string
	natschedtest.Eventually(t, 20*time.Second, func() bool {
		got = map[int]string{}
		count := map[string]int{}
		for _, s := range insts {
			for _, p := range s.loop.heldPartitions() {
				if _, dup := got[p]; dup {
					return false // a hand-over in progress
				}
				got[p] = s.Name()
				count[s.Name()]++
			}
		}
		for name, k := range want {
			if count[name] != k {
				return false
			}
		}
		return len(got) == insts[0].o.partitions
	}, "partitions spread as %v", want)
	return got
}

// TestPartitionsSpreadFiring: three instances of 6 partitions each hold
// 2; the leader bucket has "leader" (partition 0, naming the count in
// force), its mirror "leader.0" and "leader.1".."leader.5"; each instance
// fires the schedules of its partitions, every occurrence once. One
// instance stops: the other two take its partitions (3 each) and still
// fire everything once; it comes back and the leases spread again.
func TestPartitionsSpreadFiring(t *testing.T) {
	t.Parallel()
	const n = 6
	srv := natschedtest.RunServer(t)
	a, _ := startPartitioned(t, srv, "a", n)
	b, stopB := startPartitioned(t, srv, "b", n)
	c, _ := startPartitioned(t, srv, "c", n)
	insts := []*Scheduler{a, b, c}
	held := holdings(t, insts, map[string]int{"a": 2, "b": 2, "c": 2})

	kv, err := srv.JetStream(t).KeyValue(bg, a.Names().LeaderBucket)
	require.NoError(t, err)
	for p := range n {
		v, ok, err := lease.Current(bg, kv, PartitionKey(p))
		require.NoError(t, err)
		require.True(t, ok, "key %s", PartitionKey(p))
		require.Equal(t, held[p], v.ID, "key %s", PartitionKey(p))
		require.Equal(t, n, v.Count())
	}
	mirror, ok, err := lease.Current(bg, kv, "leader.0")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, held[0], mirror.ID)
	st, err := b.Status(bg)
	require.NoError(t, err)
	require.Equal(t, n, st.Partitions)
	require.Len(t, st.HeldPartitions, 2)
	require.Equal(t, held[0], st.Leader)
	for p, name := range st.PartitionLeaders {
		require.Equal(t, held[p], name, "partition %d", p)
	}

	fireAll := func(prefix string, k int, insts []*Scheduler) map[string]uint64 {
		t.Helper()
		before := map[string]uint64{}
		for _, s := range insts {
			before[s.Name()] = s.stats.fired.Load()
		}
		ids := putOneShots(t, a, prefix, k, time.Now().Add(1500*time.Millisecond))
		natschedtest.Eventually(t, 30*time.Second, func() bool {
			var total uint64
			for _, s := range insts {
				total += s.stats.fired.Load() - before[s.Name()]
			}
			return total >= uint64(k)
		}, "%d fired", k)
		got := fireStreamCounts(t, srv.JetStream(t), a.Names().FireStream)
		for _, id := range ids {
			require.Len(t, got[id], 1, "fires of %s", id)
		}
		share := map[string]uint64{}
		for _, s := range insts {
			share[s.Name()] = s.stats.fired.Load() - before[s.Name()]
		}
		return share
	}
	share := fireAll("spread", 600, insts)
	t.Logf("600 occurrences over 3 instances: %v", share)
	for name, k := range share {
		require.True(t, k >= 600/5 && k <= 600/2, "%s fired %d of 600", name, k)
	}
	// Each fired only its partitions' schedules.
	for _, s := range insts {
		mine := map[int]bool{}
		for _, p := range s.loop.heldPartitions() {
			mine[p] = true
		}
		for p := range n {
			fired := testutil.ToFloat64(s.m.partitionFired[p])
			require.Equal(t, mine[p], fired > 0, "%s fired %v of partition %d", s.Name(), fired, p)
		}
	}

	stopB()
	holdings(t, []*Scheduler{a, c}, map[string]int{"a": 3, "c": 3})
	share = fireAll("two", 300, []*Scheduler{a, c})
	t.Logf("300 occurrences over 2 instances: %v", share)

	b2, _ := startPartitioned(t, srv, "b", n)
	holdings(t, []*Scheduler{a, b2, c}, map[string]int{"a": 2, "b": 2, "c": 2})
}

// TestPartitionsOption: the option's bounds.
func TestPartitionsOption(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	for _, bad := range []int{0, -1, MaxPartitions + 1} {
		_, err := New(srv.JetStream(t), WithPartitions(bad))
		require.ErrorIs(t, err, ErrInvalidOption, "partitions %d", bad)
	}
	require.Equal(t, "leader", PartitionKey(0))
	require.Equal(t, "leader.5", PartitionKey(5))
	for key, p := range map[string]int{"leader": 0, "leader.3": 3, "leader.0": -1, "leader.03": -1, "leader.x": -1, "member.ab": -1} {
		require.Equal(t, p, partitionOf(key), key)
	}
}

// TestPartitionCountInForce: the holder of "leader" decides the partition
// count in force. An instance of 6 partitions beside a leader of 1 holds
// nothing (it campaigns for partition 0 only), so two counts never fire
// side by side; once the leader of 1 stops it takes all 6 and "leader"
// says 6; an instance of 1 started then holds nothing either.
func TestPartitionCountInForce(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	one, stopOne := startPartitioned(t, srv, "one", 1)
	waitLeader(t, one)
	six, _ := startPartitioned(t, srv, "six", 6)
	// Every other partition's lease has asked its gate (and been told no)
	// once the coordinator saw "leader".
	natschedtest.Eventually(t, 10*time.Second, func() bool {
		for p := 1; p < 6; p++ {
			if six.coord.gates[p].asked.Load() == 0 {
				return false
			}
		}
		six.coord.mu.Lock()
		defer six.coord.mu.Unlock()
		return six.coord.bal.inForce == 1
	}, "the gates of partitions 1-5 asked with 1 partition in force")
	kv, err := srv.JetStream(t).KeyValue(bg, one.Names().LeaderBucket)
	require.NoError(t, err)
	for p := 1; p < 6; p++ {
		_, held, err := lease.Current(bg, kv, PartitionKey(p))
		require.NoError(t, err)
		require.False(t, held, "%s is held beside a leader of 1 partition", PartitionKey(p))
	}
	require.Empty(t, six.loop.heldPartitions())
	require.True(t, one.IsLeader())

	stopOne()
	holdings(t, []*Scheduler{six}, map[string]int{"six": 6})
	v, ok, err := lease.Current(bg, kv, LeaderKey)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "six", v.ID)
	require.Equal(t, 6, v.Partitions)

	late, _ := startPartitioned(t, srv, "late", 1)
	natschedtest.Eventually(t, 10*time.Second, func() bool { return late.loop.loaded.Load() }, "late loaded")
	require.False(t, late.IsLeader())
	require.Len(t, six.loop.heldPartitions(), 6)
}
