package jetstream

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	js "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/clock"
	"github.com/natsched/natsched/natschedtest"
)

// startWithFaults starts a scheduler named name (lease TTL 1s, then
// opts) whose faults are set by set before it starts (the firing path
// reads them without a lock), and waits until it leads.
func startWithFaults(t *testing.T, srv *natschedtest.Server, name string, set func(*faults), opts ...Option) *Scheduler {
	t.Helper()
	s, err := New(srv.JetStream(t), append([]Option{WithName(name), WithLeaseTTL(time.Second)}, opts...)...)
	require.NoError(t, err)
	set(&s.faults)
	require.NoError(t, s.Start(bg))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(bg, 10*time.Second)
		defer cancel()
		require.NoError(t, s.Close(ctx))
	})
	waitLeader(t, s)
	return s
}

func putOneShots(t *testing.T, s *Scheduler, prefix string, n int, at time.Time) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s.%04d", prefix, i)
		_, err := s.Put(bg, &natsched.Schedule{ID: ids[i], Subject: "natsched.fire." + prefix, At: at})
		require.NoError(t, err)
	}
	return ids
}

// TestBatchStateWriteStopsAtAConflict: a user replaces one schedule of a
// batch between its publish and its state write. The batch's fast-batch
// state write stops at that key's lost compare-and-set: the writes before
// it are recorded, the replaced schedule keeps the user's state (the
// careful path re-reads it), and the writes after it are made one by one.
// Every occurrence is stored once.
func TestBatchStateWriteStopsAtAConflict(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	c := clock.NewFake(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	at := c.Now().Add(time.Second)
	later := at.Add(time.Hour)
	var replaced sync.Once
	var s *Scheduler
	s = startWithFaults(t, srv, "faulty", func(f *faults) {
		f.afterPublish = func(id string) bool {
			if id == "b.0100" {
				replaced.Do(func() {
					_, err := s.Put(bg, &natsched.Schedule{ID: id, Subject: "natsched.fire.b", At: later})
					require.NoError(t, err)
				})
			}
			return false
		}
	}, WithClock(c))
	cfg, err := srv.JetStream(t).Stream(bg, s.Names().SchedulesStream())
	require.NoError(t, err)
	require.True(t, cfg.CachedInfo().Config.AllowBatchPublish, "the schedules bucket takes fast batches")

	ids := putOneShots(t, s, "b", 300, at)
	settled(t, s, c)
	c.Advance(time.Second)
	settled(t, s, c)

	for _, id := range ids {
		sch, err := s.Get(bg, id)
		require.NoError(t, err)
		if id == "b.0100" {
			require.Equal(t, natsched.StatusActive, sch.Status, "the user's replace wins over the fire's state")
			require.True(t, sch.At.Equal(later), "at %s", sch.At)
			continue
		}
		require.Equal(t, natsched.StatusDone, sch.Status, id)
		require.EqualValues(t, 1, sch.Runs, id)
	}
	counts := fireStreamCounts(t, srv.JetStream(t), s.Names().FireStream)
	require.Len(t, counts, 300)
	for id, planned := range counts {
		require.Len(t, planned, 1, "%s stored once", id)
	}
	require.Zero(t, s.stats.duplicates.Load(), "nothing was published twice")
}

// TestCancelDuringBurstIsNotFired: while a burst of 3,000 one-shots is in
// flight, 300 schedules of a second burst due a millisecond later are
// cancelled, each cancel acknowledged before their fire time, and the
// index is kept from seeing the cancels (the watch is held) so that it
// hands the second burst over with stale copies. None of the cancelled
// fires; every other occurrence is stored exactly once.
func TestCancelDuringBurstIsNotFired(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	c := clock.NewFake(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	t1 := c.Now().Add(time.Second)
	t2 := t1.Add(time.Millisecond)
	var held atomic.Bool
	s := startWithFaults(t, srv, "faulty", func(f *faults) { f.holdWatch = held.Load }, WithClock(c))
	a := putOneShots(t, s, "a", 3000, t1)
	b := putOneShots(t, s, "b", 3000, t2)
	settled(t, s, c)

	held.Store(true)
	c.Advance(time.Second) // t1: burst a
	cancelled := map[string]bool{}
	for i := 0; i < len(b); i += 10 {
		_, err := s.Cancel(bg, b[i])
		require.NoError(t, err)
		cancelled[b[i]] = true
	}
	c.Advance(time.Millisecond) // t2: burst b, with the index unaware of the cancels
	natschedtest.Eventually(t, 30*time.Second, func() bool {
		sn, ok := snap(s)
		return ok && sn.busy == 0 && (sn.nextDue == 0 || sn.nextDue > c.Now().UnixNano())
	}, "burst b never finished")
	held.Store(false)
	s.loop.poke()
	settled(t, s, c)

	counts := fireStreamCounts(t, srv.JetStream(t), s.Names().FireStream)
	for id := range cancelled {
		require.NotContains(t, counts, id, "cancelled before its fire time, yet fired")
	}
	for _, id := range append(a, b...) {
		if !cancelled[id] {
			require.Len(t, counts[id], 1, "%s stored once", id)
		}
	}
	require.Len(t, counts, len(a)+len(b)-len(cancelled))
}

// TestExistingBucketTakesFastBatches: a schedules bucket made before
// natsched used fast batches (no allow_batched) gets the flag at start,
// keeps what it stores, and a burst records its states in batches.
func TestExistingBucketTakesFastBatches(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	jsc := srv.JetStream(t)
	n := NamesFor("natsched")
	kv, err := jsc.CreateKeyValue(bg, js.KeyValueConfig{Bucket: n.SchedulesBucket, History: 1})
	require.NoError(t, err)
	_, err = kv.Put(bg, "not.a.schedule", []byte("kept"))
	require.NoError(t, err)
	st, err := jsc.Stream(bg, n.SchedulesStream())
	require.NoError(t, err)
	require.False(t, st.CachedInfo().Config.AllowBatchPublish)

	c := clock.NewFake(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	s := startWithFaults(t, srv, "faulty", func(*faults) {}, WithClock(c))
	st, err = jsc.Stream(bg, n.SchedulesStream())
	require.NoError(t, err)
	require.True(t, st.CachedInfo().Config.AllowBatchPublish, "turned on at start")
	e, err := kv.Get(bg, "not.a.schedule")
	require.NoError(t, err)
	require.Equal(t, "kept", string(e.Value()))

	ids := putOneShots(t, s, "e", 50, c.Now().Add(time.Second))
	settled(t, s, c)
	c.Advance(time.Second)
	settled(t, s, c)
	for _, id := range ids {
		sch, err := s.Get(bg, id)
		require.NoError(t, err)
		require.Equal(t, natsched.StatusDone, sch.Status, id)
	}
	require.EqualValues(t, 50, streamMsgs(t, jsc, s.Names().FireStream))
}

// TestCloseDuringFreshnessCheck: Close while a batch is about to ask the
// firing loop whether its copies are fresh. The loop stops answering
// before it waits for the batch, and the batch must not wait for an answer
// that never comes (it did, for the whole 30s fire timeout): Close
// returns well within its bound.
func TestCloseDuringFreshnessCheck(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	asking := make(chan struct{})
	var once sync.Once
	var loop atomic.Pointer[firer]
	s := startWithFaults(t, srv, "closing", func(f *faults) {
		f.beforeFresh = func() {
			once.Do(func() { close(asking) })
			select { // until Close has stopped the loop answering
			case <-loop.Load().exiting:
			case <-time.After(20 * time.Second):
			}
		}
	})
	loop.Store(s.loop)
	putOneShots(t, s, "closing", 10, time.Now().Add(200*time.Millisecond))
	select {
	case <-asking:
	case <-time.After(20 * time.Second):
		t.Fatal("no batch asked for freshness")
	}
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	require.NoError(t, s.Close(ctx))
}
