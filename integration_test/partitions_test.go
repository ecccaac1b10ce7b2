package integration_test

// Partitioned leases over a 3-node cluster: three instances of 6
// partitions share the firing, a killed instance's partitions move, and a
// rolling change of the partition count loses and repeats nothing.

import (
	"fmt"
	"slices"
	"testing"
	"time"

	js "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/jetstream"
	"github.com/natsched/natsched/natschedtest"
)

// haHeld waits until the live instances (nil ones are skipped) hold every
// one of n partitions, none twice, each between lo and hi of them, and
// returns who holds which.
func haHeld(t *testing.T, insts []*haInstance, n, lo, hi int) map[int]int {
	t.Helper()
	var held map[int]int
	natschedtest.Eventually(t, 30*time.Second, func() bool {
		held = map[int]int{}
		for i, in := range insts {
			if in == nil {
				continue
			}
			st, err := in.s.Status(haCtx(t))
			if err != nil || len(st.HeldPartitions) < lo || len(st.HeldPartitions) > hi {
				return false
			}
			for _, p := range st.HeldPartitions {
				if _, dup := held[p]; dup {
					return false
				}
				held[p] = i
			}
		}
		return len(held) == n
	}, "%d partitions held, %d-%d each", n, lo, hi)
	return held
}

// haFired returns each instance's fired count.
func haFired(t *testing.T, insts []*haInstance) []uint64 {
	out := make([]uint64, len(insts))
	for i, in := range insts {
		if in != nil {
			st, err := in.s.Status(haCtx(t))
			require.NoError(t, err)
			out[i] = st.Fired
		}
	}
	return out
}

// TestHAPartitionedFiring: three instances, 6 partitions. Each holds 2
// and fires between 20% and 50% of 3,000 occurrences. The holder of
// partition 0 is killed (connection closed, no release) while another
// 1,500 are firing: its partitions move to the other two (3 each), 0 lost,
// 0 duplicated, and no partition's fires pause for more than TTL + 1s. It
// comes back and the leases spread 2/2/2 again.
func TestHAPartitionedFiring(t *testing.T) {
	haParallel(t, true)
	const parts = 6
	c := natschedtest.RunCluster(t, 3)
	insts := make([]*haInstance, 3)
	for i := range insts {
		insts[i] = haStart(t, c.Conn(t), fmt.Sprintf("part-%d", i), jetstream.WithPartitions(parts))
	}
	haHeld(t, insts, parts, 2, 2)
	obs, err := js.New(c.Conn(t))
	require.NoError(t, err)
	live := haConsumeFires(t, obs)

	// Phase 1: 3,000 over 6 s, all three firing.
	before := haFired(t, insts)
	// Stored ahead (3,000 puts take about 1 s alone, 5 s or more under
	// -race beside other tests); one stored late only fires late.
	start := time.Now().Add(8 * time.Second)
	spread := haOneShots("spread", 3000, start, 2*time.Millisecond)
	t0 := time.Now()
	haPut(t, insts, spread)
	t.Logf("stored 3,000 in %s", time.Since(t0))
	natschedtest.Eventually(t, 60*time.Second, func() bool { _, d := live.count(); return d >= len(spread) }, "3,000 fired")
	after := haFired(t, insts)
	var shares []string
	for i := range insts {
		k := after[i] - before[i]
		shares = append(shares, fmt.Sprintf("%s %d (%.1f%%)", insts[i].name, k, 100*float64(k)/3000))
		require.True(t, k >= 600 && k <= 1500, "%s fired %d of 3,000", insts[i].name, k)
	}
	t.Logf("3,000 occurrences over 3 instances of %d partitions: %v", parts, shares)

	// Phase 2: kill the holder of partition 0 while 1,500 fire over 6 s.
	held := haHeld(t, insts, parts, 2, 2)
	victim := held[0]
	var lostParts []int
	for p, i := range held {
		if i == victim {
			lostParts = append(lostParts, p)
		}
	}
	start = time.Now().Add(5 * time.Second)
	killed := haOneShots("killed", 1500, start, 4*time.Millisecond)
	haPut(t, insts, killed)
	natschedtest.Eventually(t, 30*time.Second, func() bool { _, d := live.count(); return d >= len(spread)+len(killed)/3 }, "a third fired")
	kill := time.Now()
	insts[victim].nc.Close()
	dead := insts[victim]
	insts[victim] = nil
	t.Logf("killed %s (partitions %v) at %s", dead.name, lostParts, kill.Format("15:04:05.000"))
	moved := haHeld(t, insts, parts, 3, 3)
	took := time.Since(kill)
	natschedtest.Eventually(t, 60*time.Second, func() bool { _, d := live.count(); return d >= len(spread)+len(killed) }, "all fired")

	fires := haReadStream(t, obs, haFireStream)
	all := append(slices.Clone(spread), killed...)
	dups, lost, extra, _ := haCount(fires, haIDs(all))
	// The longest pause of each of the victim's partitions after the kill,
	// in stored timestamps, up to that partition's last fire.
	var worst time.Duration
	for _, p := range lostParts {
		var times []time.Time
		for _, f := range fires {
			if natsched.Partition(f.id, parts) == p && f.planned.After(start.Add(-time.Millisecond)) {
				times = append(times, f.stored)
			}
		}
		slices.SortFunc(times, time.Time.Compare)
		gap := haGap(times, kill, times[len(times)-1])
		t.Logf("partition %d: longest pause after the kill %s (now held by %s)", p, gap, insts[moved[p]].name)
		worst = max(worst, gap)
	}
	t.Logf("kill: %d stored, duplicates=%d lost=%d extra=%d; partitions spread 3/3 %s after; worst pause %s, bound %s",
		len(fires), dups, lost, extra, took, worst, haLease+time.Second)
	for _, in := range insts {
		if in != nil {
			haLogWarnings(t, in)
		}
	}
	require.Zero(t, dups, "duplicated occurrences")
	require.Zero(t, lost, "lost occurrences")
	require.Zero(t, extra, "unexpected messages")

	// It comes back: the leases spread again.
	insts[victim] = haStart(t, c.Conn(t), dead.name, jetstream.WithPartitions(parts))
	haHeld(t, insts, parts, 2, 2)

	var timing haTiming
	timing.check(worst <= haLease+time.Second, "a partition paused %s after the kill > %s", worst, haLease+time.Second)
	timing.done(t)
}

// TestHAPartitionCountChange: three instances of 1 partition are
// restarted one by one with 6, then one by one with 4, while one-shots and
// recurring schedules fire: every one-shot is stored once, every
// recurring schedule's occurrences are stored once each with none
// missing between its first and its last, and at the end 4 partitions are
// in force and spread.
func TestHAPartitionCountChange(t *testing.T) {
	haParallel(t, false)
	c := natschedtest.RunCluster(t, 3)
	start := func(i, parts int) *haInstance {
		return haStart(t, c.Conn(t), fmt.Sprintf("roll-%d-%d", parts, i), jetstream.WithPartitions(parts))
	}
	insts := []*haInstance{start(0, 1), start(1, 1), start(2, 1)}
	haWaitLeader(t, insts)
	obs, err := js.New(c.Conn(t))
	require.NoError(t, err)

	// 30 recurring schedules every 500ms, and one-shots over the whole
	// change, one every 10ms.
	var recurring []*natsched.Schedule
	for i := range 30 {
		recurring = append(recurring, &natsched.Schedule{
			ID: fmt.Sprintf("roll.every.%02d", i), Subject: "natsched.fire.roll", Every: 500 * time.Millisecond,
		})
	}
	haPut(t, insts, recurring)
	oneShots := haOneShots("roll", 2500, time.Now().Add(5*time.Second), 10*time.Millisecond)
	haPut(t, insts, oneShots)

	live := haConsumeFires(t, obs)
	arrived := func(k int) func() bool {
		return func() bool {
			live.mu.Lock()
			defer live.mu.Unlock()
			n := 0
			for id := range live.ids {
				if _, every := cutEvery(id); !every {
					n++
				}
			}
			return n >= k
		}
	}
	// A rolling restart: one instance at a time is stopped and started
	// with the new count, and the next waits until it is healthy and the
	// firing goes on (some one-shots arrived since).
	restart := func(parts int) {
		for i := range insts {
			require.NoError(t, insts[i].s.Close(haCtx(t)))
			insts[i].nc.Close()
			insts[i] = start(i, parts)
			natschedtest.Eventually(t, 20*time.Second, func() bool { return insts[i].s.Healthy(haCtx(t)) == nil },
				"%s healthy", insts[i].name)
			_, now := live.count()
			natschedtest.Eventually(t, 20*time.Second, arrived(now+100-len(recurring)), "firing goes on after restarting %s", insts[i].name)
		}
	}
	natschedtest.Eventually(t, 20*time.Second, arrived(100), "one-shots fire")
	restart(6)
	haHeld(t, insts, 6, 2, 2)
	restart(4)
	held := haHeld(t, insts, 4, 1, 2)
	t.Logf("4 partitions in force, held %v", held)
	natschedtest.Eventually(t, 60*time.Second, arrived(len(oneShots)), "all one-shots fired")
	for _, s := range recurring {
		ctx := haCtx(t)
		_, err := insts[0].s.Pause(ctx, s.ID)
		require.NoError(t, err)
	}

	fires := haReadStream(t, obs, haFireStream)
	var once []haFire
	planned := map[string][]time.Time{}
	for _, f := range fires {
		if sid, ok := cutEvery(f.id); ok {
			planned[sid] = append(planned[sid], f.planned)
			continue
		}
		once = append(once, f)
	}
	dups, lost, extra, _ := haCount(once, haIDs(oneShots))
	t.Logf("rolling 1 -> 6 -> 4 partitions: %d one-shots stored, duplicates=%d lost=%d extra=%d", len(once), dups, lost, extra)
	require.Zero(t, dups, "duplicated one-shots")
	require.Zero(t, lost, "lost one-shots")
	require.Zero(t, extra, "unexpected messages")
	require.Len(t, planned, len(recurring))
	for id, ps := range planned {
		slices.SortFunc(ps, time.Time.Compare)
		for k := 1; k < len(ps); k++ {
			step := ps[k].Sub(ps[k-1])
			require.NotZero(t, step, "%s: occurrence %s stored twice", id, ps[k].Format(time.StampMilli))
			require.Equal(t, 500*time.Millisecond, step, "%s: occurrences missing between %s and %s", id,
				ps[k-1].Format(time.StampMilli), ps[k].Format(time.StampMilli))
		}
		require.Greater(t, len(ps), 20, "%s fired %d times", id, len(ps))
	}
}

// cutEvery tells a recurring schedule of TestHAPartitionCountChange by
// its ID.
func cutEvery(id string) (string, bool) {
	if len(id) > len("roll.every.") && id[:len("roll.every.")] == "roll.every." {
		return id, true
	}
	return "", false
}
