package jetstream

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/clock"
	"github.com/natsched/natsched/natschedtest"
)

func TestFenceClosesAtItsDeadline(t *testing.T) {
	c := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	f := newFence(c)
	require.False(t, f.ok(), "closed until the lease opens it")
	f.open(c.Now().Add(time.Second))
	require.True(t, f.ok())
	c.Advance(999 * time.Millisecond)
	require.True(t, f.ok())
	c.Advance(time.Millisecond)
	require.False(t, f.ok(), "closed at the deadline")
	f.open(c.Now().Add(time.Second))
	f.close()
	require.False(t, f.ok(), "closed by the end of the term")
}

// TestFrozenBatchPublishesNothingAfterItsLease: a batch stalls between
// taking its schedules and publishing them (where a GC pause, SIGSTOP or
// a suspended VM would freeze it) while its instance loses the lease and
// another takes over; a schedule is cancelled meanwhile. When the batch
// resumes it publishes nothing: the new leader fires every schedule once
// and the cancelled one never.
func TestFrozenBatchPublishesNothingAfterItsLease(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	var armed atomic.Bool
	stalled, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	a := startWithFaults(t, srv, "frozen", func(f *faults) {
		f.beforePublish = func() {
			if armed.Load() {
				once.Do(func() { close(stalled); <-release })
			}
		}
	})

	at := time.Now().Add(300 * time.Millisecond)
	var ids []string
	for i := range 20 {
		id := fmt.Sprintf("frozen.%02d", i)
		ids = append(ids, id)
		_, err := a.Put(bg, &natsched.Schedule{ID: id, Subject: "natsched.fire.frozen", At: at})
		require.NoError(t, err)
	}
	_, err := a.Put(bg, &natsched.Schedule{ID: "frozen.victim", Subject: "natsched.fire.frozen", At: at})
	require.NoError(t, err)
	armed.Store(true)
	select {
	case <-stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("no batch reached its publishes")
	}

	// While it is frozen: the schedule is cancelled, the lease lapses (as
	// it would on the server after a TTL without renewals) and another
	// instance takes over.
	_, err = a.Cancel(bg, "frozen.victim")
	require.NoError(t, err)
	require.NoError(t, a.leaseKV.Delete(bg, LeaderKey))
	b := testScheduler(t, srv, "successor")
	waitLeader(t, b)
	natschedtest.Eventually(t, 10*time.Second, func() bool { return !a.IsLeader() }, "the frozen instance stepped down")
	close(release)

	jsc := srv.JetStream(t)
	natschedtest.Eventually(t, 10*time.Second, func() bool {
		return streamMsgs(t, jsc, "NATSCHED_FIRE") >= uint64(len(ids))
	}, "the successor fired them")
	settled(t, b, clock.Real())
	got := fireStreamCounts(t, jsc, "NATSCHED_FIRE")
	for _, id := range ids {
		require.Len(t, got[id], 1, "%s fired once", id)
	}
	require.Empty(t, got["frozen.victim"], "a schedule cancelled during the freeze must not fire")
	st, err := a.Status(bg)
	require.NoError(t, err)
	require.Positive(t, st.Fenced, "the resumed batch held its fires back")
}
