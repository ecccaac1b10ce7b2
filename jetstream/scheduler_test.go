package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/clock"
	"github.com/natsched/natsched/natschedtest"
)

var bg = context.Background()

// fireStreamCounts reads the whole fire stream and counts messages per
// schedule ID, with their planned times.
func fireStreamCounts(t *testing.T, jsc js.JetStream, stream string) map[string][]time.Time {
	t.Helper()
	oc, err := jsc.OrderedConsumer(bg, stream, js.OrderedConsumerConfig{})
	require.NoError(t, err)
	info, err := jsc.Stream(bg, stream)
	require.NoError(t, err)
	total := info.CachedInfo().State.Msgs
	out := map[string][]time.Time{}
	for n := uint64(0); n < total; {
		batch, err := oc.Fetch(int(min(total-n, 1000)), js.FetchMaxWait(5*time.Second))
		require.NoError(t, err)
		got := 0
		for m := range batch.Messages() {
			got++
			m := &natsched.Message{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}
			out[m.ScheduleID()] = append(out[m.ScheduleID()], m.Planned())
		}
		require.NoError(t, batch.Error())
		require.NotZero(t, got, "fire stream read stalled at %d of %d", n, total)
		n += uint64(got)
	}
	return out
}

func streamMsgs(t *testing.T, jsc js.JetStream, stream string) uint64 {
	t.Helper()
	s, err := jsc.Stream(bg, stream)
	require.NoError(t, err)
	return s.CachedInfo().State.Msgs
}

// TestRestartKeepsSchedules: stop the scheduler and the server, restart both
// on the same store after five minutes: every schedule is back, the late
// one-shot fires, and the misfire policies hold for what was missed.
func TestRestartKeepsSchedules(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	c := clock.NewFake(time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC))
	t0 := c.Now()
	s1, err := New(srv.JetStream(t), WithName("first"), WithLeaseTTL(time.Second), WithClock(c))
	require.NoError(t, err)
	require.NoError(t, s1.Start(bg))
	waitLeader(t, s1)
	for _, sch := range []*natsched.Schedule{
		{ID: "once", Subject: "natsched.fire.r", At: t0.Add(time.Minute)},
		{ID: "every.once", Subject: "natsched.fire.r", Every: 30 * time.Second, Misfire: natsched.MisfireOnce},
		{ID: "every.skip", Subject: "natsched.fire.r", Every: 30 * time.Second, Misfire: natsched.MisfireSkip},
		{ID: "every.all", Subject: "natsched.fire.r", Every: 30 * time.Second, Misfire: natsched.MisfireAll},
	} {
		_, err := s1.Put(bg, sch)
		require.NoError(t, err)
	}
	require.NoError(t, s1.Close(bg))
	srv = srv.Restart(t)

	c.Advance(5 * time.Minute) // down from t0 to t0+5m
	s2 := testScheduler(t, srv, "second", WithClock(c))
	waitLeader(t, s2)
	settled(t, s2, c)

	for _, id := range []string{"once", "every.once", "every.skip", "every.all"} {
		_, err := s2.Get(bg, id)
		require.NoError(t, err, "%s survived the restart", id)
	}
	got := fireStreamCounts(t, srv.JetStream(t), s2.Names().FireStream)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	// Occurrences every 30s from 0:30; the new leader starts at 5:00, so
	// 0:30 to 4:30 were missed and 5:00 is on time.
	require.Equal(t, []time.Time{at(time.Minute)}, got["once"], "a late one-shot fires once")
	require.Equal(t, []time.Time{at(4*time.Minute + 30*time.Second), at(5 * time.Minute)}, got["every.once"], "once: the latest missed")
	require.Equal(t, []time.Time{at(5 * time.Minute)}, got["every.skip"], "skip: nothing missed fires")
	require.Len(t, got["every.all"], 10, "all: every missed occurrence, 0:30 to 4:30, then 5:00")
	require.Equal(t, at(30*time.Second), got["every.all"][0])

	// The cadence resumes after the restart.
	c.Advance(30 * time.Second)
	settled(t, s2, c)
	got = fireStreamCounts(t, srv.JetStream(t), s2.Names().FireStream)
	require.Equal(t, at(5*time.Minute+30*time.Second), got["every.skip"][1])
}

// TestCrashBetweenPublishAndStateWrite: the leader publishes an occurrence,
// then dies before recording it. The next attempt (here a second leader)
// publishes the same occurrence ID, JetStream drops it, and the stream holds
// one message.
func TestCrashBetweenPublishAndStateWrite(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	c := clock.NewFake(time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC))

	// The first leader "crashes" after every publish: it abandons the fire
	// and its connection dies with it.
	nc1 := srv.Conn(t)
	js1, err := js.New(nc1)
	require.NoError(t, err)
	s1, err := New(js1, WithName("crashy"), WithLeaseTTL(time.Second), WithClock(c))
	require.NoError(t, err)
	crashed := make(chan struct{})
	var once sync.Once
	s1.faults.afterPublish = func(id string) bool {
		once.Do(func() { close(crashed) })
		return true
	}
	require.NoError(t, s1.Start(bg))
	t.Cleanup(func() { _ = s1.Close(bg) })
	waitLeader(t, s1)

	_, err = s1.Put(bg, &natsched.Schedule{ID: "crash", Subject: "natsched.fire.crash", At: c.Now().Add(time.Second)})
	require.NoError(t, err)
	c.Advance(time.Second)
	select {
	case <-crashed:
	case <-time.After(10 * time.Second):
		t.Fatal("the leader never published")
	}
	nc1.Close() // hard stop: no graceful release of the lease

	s2 := testScheduler(t, srv, "survivor", WithClock(c))
	waitLeader(t, s2) // after the dead leader's lease expired
	settled(t, s2, c)

	sch, err := s2.Get(bg, "crash")
	require.NoError(t, err)
	require.Equal(t, natsched.StatusDone, sch.Status, "the survivor recorded the fire")
	require.EqualValues(t, 1, sch.Runs)
	require.EqualValues(t, 1, streamMsgs(t, srv.JetStream(t), s2.Names().FireStream), "delivered once")
	require.EqualValues(t, 1, s2.stats.duplicates.Load(), "the survivor's publish was a duplicate")
}

// TestInstancesFireEachOccurrenceOnce: three instances on one server fire
// 10,000 one-shots spread over a few seconds while the leader is killed
// (its connection dropped, no graceful release) mid-run. Every schedule is
// in the fire stream exactly once, and firing resumes within lease TTL + 1s.
func TestInstancesFireEachOccurrenceOnce(t *testing.T) {
	t.Parallel()
	const (
		n        = 10_000
		leaseTTL = time.Second
		spread   = 6 * time.Second
	)
	srv := natschedtest.RunServer(t)
	type inst struct {
		s  *Scheduler
		nc *nats.Conn
	}
	var insts []inst
	for i := range 3 {
		nc := srv.Conn(t)
		jsc, err := js.New(nc)
		require.NoError(t, err)
		s, err := New(jsc, WithName(fmt.Sprintf("inst-%d", i)), WithLeaseTTL(leaseTTL))
		require.NoError(t, err)
		require.NoError(t, s.Start(bg))
		t.Cleanup(func() { _ = s.Close(bg) })
		insts = append(insts, inst{s, nc})
	}
	leaderOf := func() int {
		for i, in := range insts {
			if in.s.IsLeader() {
				return i
			}
		}
		return -1
	}
	natschedtest.Eventually(t, 10*time.Second, func() bool { return leaderOf() >= 0 }, "no leader")

	// Count fires as they land in the stream, with their arrival times.
	var fired sync.Map // id -> count
	var total atomic.Int64
	var arrivalsMu sync.Mutex
	var arrivals []time.Time
	jsc := srv.JetStream(t)
	oc, err := jsc.OrderedConsumer(bg, "NATSCHED_FIRE", js.OrderedConsumerConfig{})
	require.NoError(t, err)
	cc, err := oc.Consume(func(m js.Msg) {
		id := m.Headers().Get(natsched.HeaderID)
		v, _ := fired.LoadOrStore(id, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		total.Add(1)
		arrivalsMu.Lock()
		arrivals = append(arrivals, time.Now())
		arrivalsMu.Unlock()
	})
	require.NoError(t, err)
	t.Cleanup(cc.Stop)

	start := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			api := insts[w%3].s
			for i := w; i < n; i += 8 {
				at := start.Add(time.Duration(i) * spread / n)
				if _, err := api.Put(bg, &natsched.Schedule{ID: fmt.Sprintf("load.%05d", i),
					Subject: "natsched.fire.load", At: at}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	require.NoError(t, <-errs)

	// Kill the leader once a third has fired.
	natschedtest.Eventually(t, 30*time.Second, func() bool { return total.Load() > n/3 }, "fires started")
	victim := leaderOf()
	require.GreaterOrEqual(t, victim, 0)
	killedAt := time.Now()
	insts[victim].nc.Close()

	natschedtest.Eventually(t, 60*time.Second, func() bool { return total.Load() >= n }, "all %d fired", n)
	// The victim steps down (its timers may run late on a loaded machine;
	// JetStream's dedup covers that window), then count.
	natschedtest.Eventually(t, 10*time.Second, func() bool { return !insts[victim].s.IsLeader() }, "victim stepped down")
	next := leaderOf()
	require.GreaterOrEqual(t, next, 0)
	settled(t, insts[next].s, clock.Real())

	dups, missing := 0, 0
	for i := range n {
		v, ok := fired.Load(fmt.Sprintf("load.%05d", i))
		switch {
		case !ok:
			missing++
		case v.(*atomic.Int64).Load() > 1:
			dups++
		}
	}
	require.Zero(t, missing, "lost occurrences")
	require.Zero(t, dups, "duplicated occurrences")
	require.EqualValues(t, n, streamMsgs(t, jsc, "NATSCHED_FIRE"))

	// The failover gap: the longest pause in arrivals after the kill.
	arrivalsMu.Lock()
	var gap time.Duration
	prev := killedAt
	for _, a := range arrivals {
		if a.Before(killedAt) {
			continue
		}
		gap = max(gap, a.Sub(prev))
		prev = a
	}
	arrivalsMu.Unlock()
	t.Logf("failover gap after killing %s: %s (lease TTL %s)", insts[victim].s.Name(), gap, leaseTTL)
	require.LessOrEqual(t, gap, leaseTTL+time.Second, "failover gap")
}

// TestCloseIsSafe: Close before Start and twice; Start after Close fails.
func TestCloseIsSafe(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	s, err := New(srv.JetStream(t))
	require.NoError(t, err)
	require.NoError(t, s.Close(bg))
	require.NoError(t, s.Close(bg))
	require.ErrorIs(t, s.Start(bg), natsched.ErrClosed)
	_, err = s.Put(bg, &natsched.Schedule{ID: "x", Subject: "natsched.fire.x", In: time.Second})
	require.ErrorIs(t, err, natsched.ErrUnavailable)
}

// TestUncapturedTarget: a target no stream stores is refused at Put.
func TestUncapturedTarget(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	s := testScheduler(t, srv, "t")
	_, err := s.Put(bg, &natsched.Schedule{ID: "lost", Subject: "nobody.listens", In: time.Second})
	var fe *natsched.FieldError
	require.True(t, errors.As(err, &fe), "%v", err)
	require.Equal(t, "subject", fe.Field)
	_, err = s.Get(bg, "lost")
	require.ErrorIs(t, err, natsched.ErrNotFound)
}

// TestSurvivesServerRestart: the server restarts under a running scheduler
// (same store, same port); its connection reconnects, and the watch, the
// lease and firing resume without restarting the scheduler.
func TestSurvivesServerRestart(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	s := testScheduler(t, srv, "restarted")
	waitLeader(t, s)
	before, err := s.Put(bg, &natsched.Schedule{ID: "before", Subject: "natsched.fire.rs", In: 2 * time.Second})
	require.NoError(t, err)

	srv = srv.Restart(t)
	jsc := srv.JetStream(t)

	var after *natsched.Schedule
	natschedtest.Eventually(t, 20*time.Second, func() bool {
		after, err = s.Put(bg, &natsched.Schedule{ID: "after", Subject: "natsched.fire.rs", In: time.Second})
		return err == nil
	}, "API works again after the restart: %v", err)
	natschedtest.Eventually(t, 30*time.Second, func() bool {
		// The stream may not answer yet right after the restart.
		st, err := jsc.Stream(bg, "NATSCHED_FIRE")
		return err == nil && st.CachedInfo().State.Msgs >= 2
	}, "both fired after the restart")
	waitLeader(t, s)
	settled(t, s, clock.Real())
	got := fireStreamCounts(t, jsc, "NATSCHED_FIRE")
	require.Equal(t, []time.Time{before.At}, got["before"])
	require.Equal(t, []time.Time{after.At}, got["after"])
}
