package integration_test

// Fault tests over a 3-node JetStream cluster: every bucket and stream has
// 3 replicas, the lease TTL is 1s (so the fire stream's duplicate window
// is the default minimum, 2 minutes). Each test counts what reached the
// fire stream: every occurrence exactly once, however the fault fell.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/clock"
	"github.com/natsched/natsched/jetstream"
	"github.com/natsched/natsched/natschedtest"
)

// TestHAKilledSchedulerLeader: three instances, 400 one-shots spread over
// 15s, the leader killed twice (its connection closed, no graceful
// release). Every occurrence is stored once, and fires resume within
// lease TTL + 1s of each kill.
func TestHAKilledSchedulerLeader(t *testing.T) {
	haParallel(t, true)
	const (
		n       = 400
		spacing = 37500 * time.Microsecond
	)
	c := natschedtest.RunCluster(t, 3)
	insts := make([]*haInstance, 3)
	for i := range insts {
		insts[i] = haStart(t, c.Conn(t), fmt.Sprintf("ha1-%d", i))
	}
	haWaitLeader(t, insts)

	obs, err := js.New(c.Conn(t))
	require.NoError(t, err)
	live := haConsumeFires(t, obs)

	start := time.Now().Add(3 * time.Second)
	schedules := haOneShots("ha1", n, start, spacing)
	haPut(t, insts, schedules)
	require.True(t, time.Now().Before(start), "the schedules were stored before the first fell due")

	arrived := func(k int) func() bool {
		return func() bool { _, d := live.count(); return d >= k }
	}
	kill := func(skip ...int) (int, time.Time) {
		victim := haWaitLeader(t, insts, skip...)
		at := time.Now()
		insts[victim].nc.Close()
		t.Logf("killed leader %s at %s", insts[victim].name, at.Format("15:04:05.000"))
		return victim, at
	}

	natschedtest.Eventually(t, 20*time.Second, arrived(n/4), "a quarter fired")
	v1, kill1 := kill()
	next := haWaitLeader(t, insts, v1)
	t.Logf("%s leads after %s", insts[next].name, time.Since(kill1))
	natschedtest.Eventually(t, 20*time.Second, arrived(n*6/10), "60%% fired")
	v2, kill2 := kill(v1)
	last := haWaitLeader(t, insts, v1, v2)
	t.Logf("%s leads after %s", insts[last].name, time.Since(kill2))

	natschedtest.Eventually(t, 30*time.Second, arrived(n), "all %d fired", n)
	// The victims stop leading once their renewals fail.
	natschedtest.Eventually(t, 10*time.Second, func() bool {
		return !insts[v1].s.IsLeader() && !insts[v2].s.IsLeader()
	}, "the killed instances stepped down")

	fires := haReadStream(t, obs, haFireStream)
	dups, lost, extra, _ := haCount(fires, haIDs(schedules))
	times := live.arrivalTimes()
	end := times[len(times)-1]
	gap1, gap2 := haGap(times, kill1, kill2), haGap(times, kill2, end)
	stored := haStoredTimes(fires)
	sgap1, sgap2 := haGap(stored, kill1, kill2), haGap(stored, kill2, end)
	st, err := insts[last].s.Status(haCtx(t))
	require.NoError(t, err)
	t.Logf("killed leader twice: %d schedules, %d stored, duplicates=%d lost=%d extra=%d; "+
		"arrival gap after kill 1 = %s, after kill 2 = %s (stored-timestamp gaps %s, %s); "+
		"lease TTL %s, bound %s; last leader's publishes JetStream dropped as duplicates: %d",
		n, len(fires), dups, lost, extra, gap1, gap2, sgap1, sgap2, haLease, haLease+time.Second, st.Duplicates)
	for _, in := range insts {
		haLogWarnings(t, in)
	}
	require.Zero(t, dups, "duplicated occurrences")
	require.Zero(t, lost, "lost occurrences")
	require.Zero(t, extra, "unexpected messages")
	require.Len(t, fires, n)
	var timing haTiming
	timing.check(gap1 <= haLease+time.Second, "failover gap after the first kill %s > %s", gap1, haLease+time.Second)
	timing.check(gap2 <= haLease+time.Second, "failover gap after the second kill %s > %s", gap2, haLease+time.Second)
	timing.done(t)
}

// TestHAKilledNATSNode: two instances, 300 one-shots over 15s; the server
// leading the schedules bucket's stream (or the fire stream) is stopped
// mid-run and started again later. Firing resumes once JetStream has
// elected new stream leaders, every occurrence is stored once, and none is
// stored more than 10s after its planned time.
func TestHAKilledNATSNode(t *testing.T) {
	haParallel(t, true)
	const (
		n       = 300
		spacing = 50 * time.Millisecond
		bound   = 10 * time.Second
	)
	c := natschedtest.RunCluster(t, 3)
	insts := []*haInstance{
		haStart(t, c.Conn(t), "ha2-0"),
		haStart(t, c.Conn(t), "ha2-1"),
	}
	haWaitLeader(t, insts)

	kvLeader := c.StreamLeader(t, "", haKVStream)
	fireLeader := c.StreamLeader(t, "", haFireStream)
	leaseLeader := c.StreamLeader(t, "", "KV_natsched_leader")
	victim := kvLeader
	if kvLeader != fireLeader && leaseLeader == fireLeader {
		victim = fireLeader
	}
	var what []string
	for name, i := range map[string]int{haKVStream: kvLeader, haFireStream: fireLeader, "KV_natsched_leader": leaseLeader} {
		if i == victim {
			what = append(what, name)
		}
	}
	slices.Sort(what)

	// Observe through a node that stays up.
	obsConn := c.Server((victim + 1) % 3).Conn(t)
	obs, err := js.New(obsConn)
	require.NoError(t, err)
	arrivals := haSubscribe(t, obsConn, "natsched.fire.>")

	start := time.Now().Add(3 * time.Second)
	schedules := haOneShots("ha2", n, start, spacing)
	haPut(t, insts, schedules)
	require.True(t, time.Now().Before(start), "the schedules were stored before the first fell due")

	natschedtest.Eventually(t, 20*time.Second, func() bool { return arrivals.distinct() >= n/4 }, "a quarter fired")
	stoppedAt := time.Now()
	c.Stop(victim)
	natschedtest.Eventually(t, 30*time.Second, func() bool { return arrivals.distinct() >= n*6/10 }, "60%% fired")
	restartAt := time.Now()
	c.Start(victim)
	t.Logf("stopped n%d, leader of %v, for %s (it rejoined in %s)", victim+1, what, restartAt.Sub(stoppedAt), time.Since(restartAt))

	natschedtest.Eventually(t, 45*time.Second, func() bool { return haStreamMsgs(obs, haFireStream) >= n },
		"all %d stored", n)
	fires := haReadStream(t, obs, haFireStream)
	dups, lost, extra, _ := haCount(fires, haIDs(schedules))
	end := start.Add(n * spacing)
	gap := haGap(haStoredTimes(fires), stoppedAt, end)
	coreGap := haGap(arrivals.arrivalTimes(), stoppedAt, end)
	var latest time.Duration
	var lateID string
	for _, f := range fires {
		if l := f.stored.Sub(f.planned); l > latest {
			latest, lateID = l, f.id
		}
	}
	t.Logf("killed node n%d (%v): %d schedules, %d stored, duplicates=%d lost=%d extra=%d; "+
		"largest gap in stored messages after the stop = %s (in first publishes seen by a core subscriber: %s); "+
		"latest occurrence %s stored %s after its planned time; bound %s",
		victim+1, what, n, len(fires), dups, lost, extra, gap, coreGap, lateID, latest, bound)
	for _, in := range insts {
		haLogWarnings(t, in)
	}
	require.Zero(t, dups, "duplicated occurrences")
	require.Zero(t, lost, "lost occurrences")
	require.Zero(t, extra, "unexpected messages")
	require.Len(t, fires, n)
	require.LessOrEqual(t, gap, bound, "gap in the stream while the stream leaders moved")
	require.LessOrEqual(t, latest, bound, "%s stored late", lateID)
}

// TestHAWholeClusterRestart: schedules of each kind are stored, then every
// instance and all three servers stop; while they are down (on the
// schedulers' clock, a fake one so that the counts are exact) the one-shot
// falls due and ten occurrences of each recurring schedule pass. After the
// restart every schedule is back, the late one-shot fires once, and the
// misfire policies hold.
func TestHAWholeClusterRestart(t *testing.T) {
	haParallel(t, false)
	c := natschedtest.RunCluster(t, 3)
	fc := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	t0 := fc.Now()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	startAll := func(gen string) []*haInstance {
		insts := make([]*haInstance, 3)
		for i := range insts {
			insts[i] = haStart(t, c.Conn(t), fmt.Sprintf("ha3-%s-%d", gen, i), jetstream.WithClock(fc))
		}
		return insts
	}
	insts := startAll("a")
	haWaitLeader(t, insts)
	ids := []string{"ha3.once", "ha3.every.once", "ha3.every.skip", "ha3.every.all"}
	for _, sch := range []*natsched.Schedule{
		{ID: ids[0], Subject: "natsched.fire.ha3", At: at(10 * time.Second)},
		{ID: ids[1], Subject: "natsched.fire.ha3", Every: 2 * time.Second, Misfire: natsched.MisfireOnce},
		{ID: ids[2], Subject: "natsched.fire.ha3", Every: 2 * time.Second, Misfire: natsched.MisfireSkip},
		{ID: ids[3], Subject: "natsched.fire.ha3", Every: 2 * time.Second, Misfire: natsched.MisfireAll},
	} {
		_, err := insts[0].s.Put(haCtx(t), sch)
		require.NoError(t, err)
	}
	obs, err := js.New(c.Conn(t))
	require.NoError(t, err)

	// settled waits until the stream holds want messages and every
	// recurring schedule has recorded its fires up to now.
	settled := func(s *jetstream.Scheduler, want int) {
		t.Helper()
		natschedtest.Eventually(t, 30*time.Second, func() bool {
			if haStreamMsgs(obs, haFireStream) < want {
				return false
			}
			for _, id := range ids[1:] {
				ctx, cancel := context.WithTimeout(context.Background(), haOpTimeout)
				sch, err := s.Get(ctx, id)
				cancel()
				if err != nil || !sch.NextRun.After(fc.Now()) {
					return false
				}
			}
			return true
		}, "%d fires recorded", want)
	}
	// 0:02 and 0:04 of each recurring one, reached one at a time: a jump
	// over both would make 0:02 more than the misfire threshold late.
	fc.Advance(2 * time.Second)
	settled(insts[0].s, 3)
	fc.Advance(2 * time.Second)
	settled(insts[0].s, 6)

	// Down: every instance, then every server.
	for _, in := range insts {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		require.NoError(t, in.s.Close(ctx))
		cancel()
	}
	for i := range 3 {
		c.Stop(i)
	}
	fc.Advance(20 * time.Second) // down from 0:04 to 0:24
	// A node cannot rejoin alone (no meta quorum), and Start waits until
	// it has: start all three at once.
	restarting := time.Now()
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() { c.Start(i) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("cluster restarted in %s", time.Since(restarting))
	// Start's first JetStream request can go unanswered while a stream has
	// no leader yet, and then waits out its whole context: start once the
	// streams have leaders again.
	for _, name := range []string{haKVStream, "KV_natsched_leader", haFireStream, haDeadStream, "NATSCHED_INTAKE"} {
		i := c.StreamLeader(t, "", name)
		t.Logf("%s leader n%d after %s", name, i+1, time.Since(restarting))
	}

	insts = startAll("b")
	leader := insts[haWaitLeader(t, insts)]
	for _, id := range ids {
		sch, err := leader.s.Get(haCtx(t), id)
		require.NoError(t, err, "%s survived the restart", id)
		require.Equal(t, id, sch.ID)
	}
	// 0:06 to 0:22 were missed; the new leader started at 0:24.
	settled(leader.s, 6+1+2+1+10)
	got := map[string][]time.Time{}
	for _, f := range haReadStream(t, obs, haFireStream) {
		got[f.id] = append(got[f.id], f.planned)
	}
	every := func(from, to time.Duration) []time.Time {
		var out []time.Time
		for d := from; d <= to; d += 2 * time.Second {
			out = append(out, at(d))
		}
		return out
	}
	t.Logf("planned times fired: once %d, every.once %d, every.skip %d, every.all %d",
		len(got[ids[0]]), len(got[ids[1]]), len(got[ids[2]]), len(got[ids[3]]))
	require.Equal(t, []time.Time{at(10 * time.Second)}, got[ids[0]], "the late one-shot fires once")
	require.Equal(t, []time.Time{at(2 * time.Second), at(4 * time.Second), at(22 * time.Second), at(24 * time.Second)},
		got[ids[1]], "once: the latest missed occurrence, then the cadence")
	require.Equal(t, []time.Time{at(2 * time.Second), at(4 * time.Second), at(24 * time.Second)},
		got[ids[2]], "skip: no missed occurrence")
	require.Equal(t, every(2*time.Second, 24*time.Second), got[ids[3]], "all: every missed occurrence, oldest first")
	once, err := leader.s.Get(haCtx(t), ids[0])
	require.NoError(t, err)
	require.Equal(t, natsched.StatusDone, once.Status)

	// The cadence resumes.
	fc.Advance(2 * time.Second)
	settled(leader.s, 20+3)
	got = map[string][]time.Time{}
	for _, f := range haReadStream(t, obs, haFireStream) {
		got[f.id] = append(got[f.id], f.planned)
	}
	for _, id := range ids[1:] {
		require.Equal(t, at(26*time.Second), got[id][len(got[id])-1], "%s resumed its cadence", id)
	}
	require.Len(t, got[ids[0]], 1)
}

// TestHANetworkBlip: each of three instances reaches its own server
// through a proxy; the leader's proxy is paused for 3 lease TTLs while 120
// schedules fall due. Its connection stays open (pings every 10s), so the
// leader is partitioned, not disconnected. It stops leading before another
// instance wins; no occurrence is stored twice or lost; after the blip it
// is a follower again and what is put through it fires once.
func TestHANetworkBlip(t *testing.T) {
	haParallel(t, true)
	const (
		n       = 200
		spacing = 25 * time.Millisecond
		pause   = 3 * haLease
	)
	c := natschedtest.RunCluster(t, 3)
	var insts []*haInstance
	var proxies []*haProxy
	var disconnects []*atomic.Int32
	for i := range 3 {
		p := haNewProxy(t, strings.TrimPrefix(c.Server(i).URL(), "nats://"))
		d := new(atomic.Int32)
		nc, err := nats.Connect(p.URL(),
			nats.Name(fmt.Sprintf("ha4-%d", i)),
			nats.MaxReconnects(-1),
			nats.ReconnectWait(20*time.Millisecond),
			nats.PingInterval(10*time.Second),
			nats.IgnoreDiscoveredServers(),
			nats.DisconnectErrHandler(func(*nats.Conn, error) { d.Add(1) }),
		)
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		insts = append(insts, haStart(t, nc, fmt.Sprintf("ha4-%d", i)))
		proxies = append(proxies, p)
		disconnects = append(disconnects, d)
	}
	haWaitLeader(t, insts)

	obsConn := c.Conn(t)
	obs, err := js.New(obsConn)
	require.NoError(t, err)
	arrivals := haSubscribe(t, obsConn, "natsched.fire.>")

	// Who leads, every 5ms.
	type poll struct {
		at      time.Time
		leading []bool
	}
	var (
		pollMu  sync.Mutex
		polls   []poll
		stopped = make(chan struct{})
		pollWG  sync.WaitGroup
	)
	pollWG.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			p := poll{at: time.Now()}
			for _, in := range insts {
				p.leading = append(p.leading, in.s.IsLeader())
			}
			pollMu.Lock()
			polls = append(polls, p)
			pollMu.Unlock()
			select {
			case <-stopped:
				return
			case <-tick.C:
			}
		}
	})
	stopPolling := sync.OnceFunc(func() { close(stopped); pollWG.Wait() })
	t.Cleanup(stopPolling)

	start := time.Now().Add(3 * time.Second)
	schedules := haOneShots("ha4", n, start, spacing)
	haPut(t, insts, schedules)
	require.True(t, time.Now().Before(start), "the schedules were stored before the first fell due")

	natschedtest.Eventually(t, 20*time.Second, func() bool { return arrivals.distinct() >= n/5 }, "a fifth fired")
	b := haWaitLeader(t, insts)
	blipped := insts[b]
	proxies[b].Pause()
	pausedAt := time.Now()
	due := 0
	for _, s := range schedules {
		if s.At.After(pausedAt) && s.At.Before(pausedAt.Add(pause)) {
			due++
		}
	}
	next := -1
	natschedtest.Eventually(t, pause, func() bool { next = haLeaderOf(insts, b); return next >= 0 },
		"another instance leads during the blip")
	tookOver := time.Since(pausedAt)
	natschedtest.Eventually(t, 10*time.Second, func() bool { return time.Since(pausedAt) >= pause },
		"the blip lasts %s", pause)
	proxies[b].Resume()
	t.Logf("paused the connection of leader %s for %s with %d schedules due; %s took over after %s",
		blipped.name, time.Since(pausedAt), due, insts[next].name, tookOver)

	// After the blip: a follower again.
	natschedtest.Eventually(t, 10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), haOpTimeout)
		defer cancel()
		st, err := blipped.s.Status(ctx)
		return err == nil && !st.IsLeader && st.Leader == insts[next].name
	}, "the blipped instance rejoined as a follower")
	natschedtest.Eventually(t, 20*time.Second, func() bool { return arrivals.distinct() >= n }, "all %d fired", n)
	stopPolling()

	// Later schedules, put through the blipped instance, fire once.
	later := haOneShots("ha4.later", 20, time.Now().Add(time.Second), 20*time.Millisecond)
	haPut(t, []*haInstance{blipped}, later)
	natschedtest.Eventually(t, 20*time.Second, func() bool { return arrivals.distinct() >= n+len(later) },
		"the later schedules fired")
	natschedtest.Eventually(t, 10*time.Second, func() bool { return haStreamMsgs(obs, haFireStream) >= n+len(later) },
		"all stored")

	fires := haReadStream(t, obs, haFireStream)
	dups, lost, extra, _ := haCount(fires, append(haIDs(schedules), haIDs(later)...))
	gap := haGap(arrivals.arrivalTimes(), pausedAt, start.Add(n*spacing))

	// From the pause on: the last poll at which the blipped instance led,
	// and the first at which another did. Over the whole run: polls that
	// saw two leaders.
	pollMu.Lock()
	firstOther, lastBlipped, overlap := -1, -1, 0
	for i, p := range polls {
		leaders := 0
		for j, l := range p.leading {
			if !l {
				continue
			}
			leaders++
			if p.at.Before(pausedAt) {
				continue
			}
			if j == b {
				lastBlipped = i
			} else if firstOther < 0 {
				firstOther = i
			}
		}
		if leaders > 1 {
			overlap++
		}
	}
	var stepDown, win time.Duration
	if lastBlipped >= 0 && lastBlipped+1 < len(polls) {
		stepDown = polls[lastBlipped+1].at.Sub(pausedAt)
	}
	if firstOther >= 0 {
		win = polls[firstOther].at.Sub(pausedAt)
	}
	npolls := len(polls)
	pollMu.Unlock()
	var stats []string
	for i, in := range insts {
		st, err := in.s.Status(haCtx(t))
		require.NoError(t, err)
		stats = append(stats, fmt.Sprintf("%s fired=%d duplicates=%d failures=%d disconnects=%d",
			in.name, st.Fired, st.Duplicates, st.PublishFailures, disconnects[i].Load()))
	}
	_, errs := blipped.logs.snapshot()
	t.Logf("network blip: %d schedules, %d stored, duplicates=%d lost=%d extra=%d; largest arrival gap after the pause %s; "+
		"blipped leader reported not leading %s after the pause (poll %d), another leading %s after it (poll %d); "+
		"%d of %d polls saw two leaders; %s",
		n+len(later), len(fires), dups, lost, extra, gap, stepDown, lastBlipped+1, win, firstOther, overlap, npolls,
		strings.Join(stats, "; "))
	for _, in := range insts {
		haLogWarnings(t, in)
	}
	require.GreaterOrEqual(t, due, 100, "schedules due during the blip")
	require.GreaterOrEqual(t, lastBlipped, 0, "the blipped instance led when paused")
	require.GreaterOrEqual(t, firstOther, 0)
	require.Less(t, lastBlipped, firstOther, "the blipped leader stopped leading before another instance led")
	require.Zero(t, overlap, "polls that saw two leaders")
	require.Zero(t, disconnects[b].Load(), "partitioned, not disconnected")
	require.Zero(t, dups, "duplicated occurrences")
	require.Zero(t, lost, "lost occurrences")
	require.Zero(t, extra, "unexpected messages")
	require.Empty(t, errs, "errors logged by the blipped instance")
	require.False(t, blipped.s.IsLeader())
}

// TestHAClockSkew: one instance's clock runs 5s ahead and another's 5s
// behind, both correcting by the server's clock. Each leads in turn and
// fires 20 schedules: none before its planned time, all within 500ms.
func TestHAClockSkew(t *testing.T) {
	haParallel(t, true)
	const (
		n       = 20
		skew    = 5 * time.Second
		within  = 500 * time.Millisecond
		spacing = 50 * time.Millisecond
	)
	c := natschedtest.RunCluster(t, 3)
	ahead := haStart(t, c.Conn(t), "ha5-ahead", jetstream.WithClock(haSkewClock{skew}), jetstream.WithClockSync(true))
	natschedtest.Eventually(t, 20*time.Second, ahead.s.IsLeader, "the instance ahead leads")
	behind := haStart(t, c.Conn(t), "ha5-behind", jetstream.WithClock(haSkewClock{-skew}), jetstream.WithClockSync(true))
	obsConn := c.Conn(t)
	arrivals := haSubscribe(t, obsConn, "natsched.fire.>")

	var timing haTiming
	round := func(leader *haInstance, prefix string) {
		t.Helper()
		// Put right away: the first leader has only just won.
		schedules := haOneShots(prefix, n, time.Now().Add(1500*time.Millisecond), spacing)
		haPut(t, []*haInstance{leader}, schedules)
		natschedtest.Eventually(t, 10*time.Second, func() bool {
			late := arrivals.lateness()
			for _, s := range schedules {
				if _, ok := late[s.ID]; !ok {
					return false
				}
			}
			return true
		}, "%s fired", prefix)
		late := arrivals.lateness()
		var early, tooLate int
		var lo, hi time.Duration
		for i, s := range schedules {
			l := late[s.ID]
			if i == 0 || l < lo {
				lo = l
			}
			hi = max(hi, l)
			if l < 0 {
				early++
			}
			if l > within {
				tooLate++
			}
		}
		off, known := leader.s.ClockOffset()
		require.True(t, leader.s.IsLeader(), "%s led the round", leader.name)
		t.Logf("%s leading (clock offset estimate %s, known %v): %d fired, %d early, %d later than %s; lateness min %s max %s",
			leader.name, off, known, n, early, tooLate, within, lo, hi)
		require.Zero(t, early, "%s fired early", leader.name)
		timing.check(tooLate == 0, "%s fired %d of %d later than %s (max %s)", leader.name, tooLate, n, within, hi)
	}
	round(ahead, "ha5.ahead")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, ahead.s.Close(ctx))
	natschedtest.Eventually(t, 10*time.Second, behind.s.IsLeader, "the instance behind leads")
	round(behind, "ha5.behind")

	offA, _ := ahead.s.ClockOffset()
	offB, _ := behind.s.ClockOffset()
	require.InDelta(t, float64(-skew), float64(offA), float64(100*time.Millisecond), "offset estimate of the instance ahead")
	require.InDelta(t, float64(skew), float64(offB), float64(100*time.Millisecond), "offset estimate of the instance behind")
	timing.done(t)
}

// TestHASlowAndFailingConsumers: three handler groups on different
// subjects: one always fails, one blocks until the test ends, one records
// arrivals. The recording group and the firing itself are unaffected
// (lateness p99 < 200ms), and the failures end in NATSCHED_DEAD with
// Natsched-Error and Natsched-Deliveries after 3 attempts.
func TestHASlowAndFailingConsumers(t *testing.T) {
	haParallel(t, true)
	const (
		nB, nFail, nBlock = 100, 40, 20
		spacing           = 25 * time.Millisecond
		p99Bound          = 200 * time.Millisecond
		failure           = "ha6: handler A always fails"
	)
	c := natschedtest.RunCluster(t, 3)

	var attemptsMu sync.Mutex
	attempts := map[string]int{}
	failRouter := natsched.NewRouter(nil)
	require.NoError(t, failRouter.HandleSubject("natsched.fire.ha6.afail", func(ctx context.Context, m *natsched.Message) error {
		attemptsMu.Lock()
		attempts[m.ScheduleID()]++
		attemptsMu.Unlock()
		return errors.New(failure)
	}))
	release := make(chan struct{})
	var blocked atomic.Int32
	blockRouter := natsched.NewRouter(nil)
	require.NoError(t, blockRouter.HandleSubject("natsched.fire.ha6.ablock", func(ctx context.Context, m *natsched.Message) error {
		blocked.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return errors.New("ha6: blocked until the test ended")
	}))
	var bMu sync.Mutex
	bLate := map[string]time.Duration{}
	bCount := 0
	bRouter := natsched.NewRouter(nil)
	require.NoError(t, bRouter.HandleSubject("natsched.fire.ha6.b", func(ctx context.Context, m *natsched.Message) error {
		now := time.Now()
		bMu.Lock()
		defer bMu.Unlock()
		bCount++
		if _, ok := bLate[m.ScheduleID()]; !ok {
			bLate[m.ScheduleID()] = now.Sub(m.Planned())
		}
		return nil
	}))
	cfg := func(group, subject string, concurrency int) jetstream.ConsumerConfig {
		return jetstream.ConsumerConfig{Group: group, Subjects: []string{subject}, MaxDeliver: 3,
			Backoff: []time.Duration{10 * time.Millisecond}, Concurrency: concurrency}
	}
	in := haStart(t, c.Conn(t), "ha6",
		jetstream.WithRouter(failRouter, cfg("ha6-fail", "natsched.fire.ha6.afail", 1)),
		jetstream.WithRouter(blockRouter, cfg("ha6-block", "natsched.fire.ha6.ablock", 1)),
		jetstream.WithRouter(bRouter, cfg("ha6-b", "natsched.fire.ha6.b", 4)),
	)
	// Let the blocked handler go before the scheduler closes (cleanups run
	// last-registered first).
	t.Cleanup(func() { close(release) })
	natschedtest.Eventually(t, 20*time.Second, in.s.IsLeader, "leader")
	obsConn := c.Conn(t)
	obs, err := js.New(obsConn)
	require.NoError(t, err)
	arrivals := haSubscribe(t, obsConn, "natsched.fire.ha6.>")

	start := time.Now().Add(2 * time.Second)
	var schedules, bs, fails []*natsched.Schedule
	for i := range nB + nFail + nBlock {
		kind := "b"
		switch {
		case i%8 == 3 || i%8 == 6:
			if len(fails) < nFail {
				kind = "afail"
			}
		case i%8 == 5:
			if i/8 < nBlock {
				kind = "ablock"
			}
		}
		s := &natsched.Schedule{ID: fmt.Sprintf("ha6.%s.%03d", kind, i), Subject: "natsched.fire.ha6." + kind,
			At: start.Add(time.Duration(i) * spacing)}
		schedules = append(schedules, s)
		switch kind {
		case "b":
			bs = append(bs, s)
		case "afail":
			fails = append(fails, s)
		}
	}
	nBlocks := len(schedules) - len(bs) - len(fails)
	haPut(t, []*haInstance{in}, schedules)
	require.True(t, time.Now().Before(start), "the schedules were stored before the first fell due")

	natschedtest.Eventually(t, 20*time.Second, func() bool {
		bMu.Lock()
		defer bMu.Unlock()
		return len(bLate) == len(bs)
	}, "group B handled its %d messages", len(bs))
	natschedtest.Eventually(t, 20*time.Second, func() bool { return haStreamMsgs(obs, haDeadStream) >= len(fails) },
		"%d dead letters", len(fails))
	require.Equal(t, len(schedules), arrivals.distinct(), "every schedule fired")

	var fireLate, handlerLate []time.Duration
	for _, l := range arrivals.lateness() {
		fireLate = append(fireLate, l)
	}
	bMu.Lock()
	for _, l := range bLate {
		handlerLate = append(handlerLate, l)
	}
	handled := bCount
	bMu.Unlock()
	dead := haReadStream(t, obs, haDeadStream)
	fires := haReadStream(t, obs, haFireStream)
	dups, lost, extra, _ := haCount(fires, haIDs(schedules))
	t.Logf("slow and failing consumers: %d B, %d failing, %d blocking schedules; %d fired (duplicates=%d lost=%d extra=%d); "+
		"fire lateness p50 %s p99 %s max %s; B handler lateness p50 %s p99 %s max %s (%d calls); "+
		"dead letters %d; blocked handler calls %d",
		len(bs), len(fails), nBlocks, len(fires), dups, lost, extra,
		haPercentile(fireLate, 50), haPercentile(fireLate, 99), haPercentile(fireLate, 100),
		haPercentile(handlerLate, 50), haPercentile(handlerLate, 99), haPercentile(handlerLate, 100), handled,
		len(dead), blocked.Load())
	haLogWarnings(t, in)
	require.Zero(t, dups)
	require.Zero(t, lost)
	require.Zero(t, extra)
	var timing haTiming
	timing.check(haPercentile(fireLate, 99) < p99Bound, "fire lateness p99 %s >= %s", haPercentile(fireLate, 99), p99Bound)
	timing.check(haPercentile(handlerLate, 99) < p99Bound, "group B handler lateness p99 %s >= %s", haPercentile(handlerLate, 99), p99Bound)
	require.Equal(t, len(bs), handled, "group B handled each message once")
	require.EqualValues(t, 1, blocked.Load(), "the blocked group holds its first message")

	require.Len(t, dead, len(fails), "only the failing group's messages are dead")
	deadIDs := map[string]bool{}
	for _, d := range dead {
		require.Equal(t, "natsched.dead.natsched.fire.ha6.afail", d.subject)
		require.Contains(t, d.header.Get(natsched.HeaderError), failure)
		require.Equal(t, "3", d.header.Get(natsched.HeaderDeliveries))
		deadIDs[d.id] = true
	}
	attemptsMu.Lock()
	defer attemptsMu.Unlock()
	for _, s := range fails {
		require.True(t, deadIDs[s.ID], "%s dead-lettered", s.ID)
		require.Equal(t, 3, attempts[s.ID], "%s tried 3 times", s.ID)
	}
	timing.done(t)
}

// TestHATenants: the servers know three users: the scheduler (everything),
// tenant A (publish natsched.api.*.a.>, natsched.api.list.a and
// natsched.in.a.>; subscribe _INBOX.> and a.>) and tenant B (the same for
// b). The scheduler allows a.> IDs to target a.> and b.> IDs b.>. A manages
// its own schedules; NATS refuses A's requests about B's; the scheduler
// refuses A's schedules that target B's subjects, through the API (403)
// and through intake (rejected with Natsched-Error).
func TestHATenants(t *testing.T) {
	haParallel(t, false)
	tenant := func(name, tok string) *server.User {
		return &server.User{Username: name, Password: name + "-pw", Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{
				"natsched.api.*." + tok + ".>", "natsched.api.list." + tok, "natsched.in." + tok + ".>",
			}},
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>", tok + ".>"}},
		}}
	}
	c := natschedtest.RunCluster(t, 3, natschedtest.WithConfig(func(o *server.Options) {
		o.Users = []*server.User{{Username: "sched", Password: "sched-pw"}, tenant("a", "a"), tenant("b", "b")}
	}))
	adminConn := c.Conn(t, nats.UserInfo("sched", "sched-pw"))
	admin, err := js.New(adminConn)
	require.NoError(t, err)
	for name, subj := range map[string]string{"HA7_A": "a.>", "HA7_B": "b.>"} {
		_, err := admin.CreateStream(haCtx(t), js.StreamConfig{Name: name, Subjects: []string{subj}, Replicas: haReplicas})
		require.NoError(t, err)
	}
	rule := func(s string) jetstream.AllowRule {
		r, err := jetstream.ParseAllow(s)
		require.NoError(t, err)
		return r
	}
	sched := haStart(t, c.Conn(t, nats.UserInfo("sched", "sched-pw")), "ha7",
		jetstream.WithAllow(rule("a.>=a.>"), rule("b.>=b.>")))
	natschedtest.Eventually(t, 20*time.Second, sched.s.IsLeader, "leader")

	type client struct {
		nc   *nats.Conn
		mu   sync.Mutex
		errs []string
	}
	connect := func(user string) *client {
		cl := &client{}
		cl.nc = c.Conn(t, nats.UserInfo(user, user+"-pw"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			cl.mu.Lock()
			cl.errs = append(cl.errs, err.Error())
			cl.mu.Unlock()
		}))
		return cl
	}
	a, b := connect("a"), connect("b")
	req := func(cl *client, subject string, v any) *nats.Msg {
		t.Helper()
		m, err := cl.nc.Request(subject, haBody(t, v), haOpTimeout)
		require.NoError(t, err, "request to %s", subject)
		return m
	}
	// denied checks that NATS refuses cl's publish to subject: the request
	// gets no reply and the server reports a permissions violation.
	denied := func(cl *client, subject string, v any) {
		t.Helper()
		_, err := cl.nc.Request(subject, haBody(t, v), 500*time.Millisecond)
		require.Error(t, err, "request to %s must fail", subject)
		require.True(t, errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrPermissionViolation),
			"request to %s: %v", subject, err)
		want := fmt.Sprintf("Permissions Violation for Publish to %q", subject)
		natschedtest.Eventually(t, 5*time.Second, func() bool {
			cl.mu.Lock()
			defer cl.mu.Unlock()
			return slices.ContainsFunc(cl.errs, func(e string) bool { return strings.Contains(e, want) })
		}, "the server reports %s", want)
		t.Logf("%s: request error %q; async error %q", subject, err, want)
	}
	sch := func(subject string) map[string]any {
		return map[string]any{"subject": subject, "at": "2099-01-01T00:00:00Z", "text": "tenant"}
	}

	// Each tenant manages its own.
	haOK(t, req(a, "natsched.api.put.a.x", sch("a.inbox")), nil)
	haOK(t, req(a, "natsched.api.put.a.y", sch("a.inbox")), nil)
	haOK(t, req(b, "natsched.api.put.b.x", sch("b.inbox")), nil)
	var one struct{ ID, Subject string }
	haOK(t, req(a, "natsched.api.get.a.x", nil), &one)
	require.Equal(t, "a.x", one.ID)
	require.Equal(t, "a.inbox", one.Subject)
	var page struct{ Schedules []struct{ ID string } }
	haOK(t, req(a, "natsched.api.list.a", nil), &page)
	require.Len(t, page.Schedules, 2)
	require.Equal(t, "a.x", page.Schedules[0].ID)
	require.Equal(t, "a.y", page.Schedules[1].ID)
	haOK(t, req(a, "natsched.api.cancel.a.y", nil), &one)
	require.Equal(t, "a.y", one.ID)
	haErr(t, req(a, "natsched.api.get.a.y", nil), 404)
	bBefore, err := sched.s.Get(haCtx(t), "b.x")
	require.NoError(t, err)

	// NATS keeps A away from B's schedules, and from the unscoped list.
	denied(a, "natsched.api.get.b.x", nil)
	denied(a, "natsched.api.put.b.x", sch("b.inbox"))
	denied(a, "natsched.api.put.b.z", sch("b.inbox"))
	denied(a, "natsched.api.cancel.b.x", nil)
	denied(a, "natsched.api.pause.b.x", nil)
	denied(a, "natsched.api.list.b", nil)
	denied(a, "natsched.api.list", nil)
	denied(a, "natsched.in.b.z", nil)
	denied(b, "natsched.api.get.a.x", nil)
	bAfter, err := sched.s.Get(haCtx(t), "b.x")
	require.NoError(t, err)
	require.Equal(t, bBefore.Revision, bAfter.Revision, "B's schedule is untouched")
	require.Equal(t, "b.inbox", bAfter.Subject)
	_, err = sched.s.Get(haCtx(t), "b.z")
	require.ErrorIs(t, err, natsched.ErrNotFound)

	// The scheduler keeps A's schedules away from B's subjects.
	m := req(a, "natsched.api.put.a.evil", sch("b.inbox"))
	t.Logf("API put a.evil -> b.inbox: %s %s", m.Header.Get("Nats-Service-Error-Code"), m.Header.Get("Nats-Service-Error"))
	haErr(t, m, 403)
	haErr(t, req(a, "natsched.api.get.a.evil", nil), 404)

	rejected := haChan(t, adminConn, "natsched.rejected.>")
	tenantA, err := js.New(a.nc)
	require.NoError(t, err)
	_, err = tenantA.PublishMsg(haCtx(t), &nats.Msg{Subject: "natsched.in.a.evil", Data: []byte("evil"), Header: nats.Header{
		jetstream.HeaderSchedule: []string{"@in 100ms"}, jetstream.HeaderTarget: []string{"b.inbox"},
	}})
	require.NoError(t, err)
	// A schedule A may make goes through intake and reaches A.
	inbox := haChan(t, a.nc, "a.inbox")
	_, err = tenantA.PublishMsg(haCtx(t), &nats.Msg{Subject: "natsched.in.a.good", Data: []byte("good"), Header: nats.Header{
		jetstream.HeaderSchedule: []string{"@in 100ms"}, jetstream.HeaderTarget: []string{"a.inbox"},
	}})
	require.NoError(t, err)
	r := haNext(t, rejected, "rejected intake message")
	require.Equal(t, "natsched.rejected.a.evil", r.Subject)
	require.NotEmpty(t, r.Header.Get(natsched.HeaderError))
	require.Equal(t, "evil", string(r.Data))
	t.Logf("intake a.evil -> b.inbox rejected: %s", r.Header.Get(natsched.HeaderError))
	fired := haNext(t, inbox, "a.good fired to a.inbox")
	require.Equal(t, "a.good", fired.Header.Get(natsched.HeaderID))
	require.Equal(t, "good", string(fired.Data))
	_, err = sched.s.Get(haCtx(t), "a.evil")
	require.ErrorIs(t, err, natsched.ErrNotFound, "the rejected intake stored nothing")
	require.Zero(t, haStreamMsgs(admin, "HA7_B"), "nothing reached B's stream")
}
