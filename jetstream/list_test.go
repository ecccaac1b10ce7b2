package jetstream

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/natschedtest"
)

// storeRaw writes n stored schedules (value(i) under key(i)) straight into
// s's bucket with asynchronous publishes, as a bulk loader or an attacker
// with write access to the bucket would, and waits until s's index has
// seen every one of them.
func storeRaw(tb testing.TB, jsc js.JetStream, s *Scheduler, n int, key func(int) string, value func(int) []byte) {
	tb.Helper()
	prefix := "$KV." + s.names.SchedulesBucket + "."
	for i := range n {
		_, err := jsc.PublishMsgAsync(&nats.Msg{Subject: prefix + key(i), Data: value(i)},
			js.WithStallWait(10*time.Second))
		require.NoError(tb, err)
	}
	select {
	case <-jsc.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		tb.Fatalf("%d bucket writes not acknowledged within a minute", jsc.PublishAsyncPending())
	}
	waitIndexed(tb, s)
}

// waitIndexed waits until s's index has seen every write to its bucket.
func waitIndexed(tb testing.TB, s *Scheduler) {
	tb.Helper()
	natschedtest.Eventually(tb, 60*time.Second, func() bool {
		st, err := s.kv.Status(bg)
		if err != nil {
			return false
		}
		last := st.(*js.KeyValueBucketStatus).StreamInfo().State.LastSeq
		sn, ok := snap(s)
		return ok && sn.ready && sn.lastRev >= last
	}, "%s never indexed the bucket", s.Name())
}

// stored renders a one-shot due at at as the scheduler stores it, with
// status st.
func stored(tb testing.TB, id string, at time.Time, st natsched.Status) []byte {
	tb.Helper()
	now := time.Now().UTC()
	sch := natsched.Schedule{ID: id, Subject: "natsched.fire.list", At: at.UTC(), NextRun: at.UTC(),
		Status: st, Paused: st == natsched.StatusPaused, Created: now, Updated: now, Generation: 1}
	if st == natsched.StatusDone {
		sch.NextRun, sch.LastRun, sch.Runs = time.Time{}, now, 1
	}
	b, err := json.Marshal(sch)
	require.NoError(tb, err)
	return b
}

// TestIndexCandidates: the index finds a status's IDs by whole-token
// prefix and cursor, merged with those whose status it cannot tell.
func TestIndexCandidates(t *testing.T) {
	t.Parallel()
	x := newIndex()
	for i, id := range []string{"b", "b.a", "b.c.d", "b-x", "b0", "bx", "a", "c.b"} {
		x.set(id, uint64(i+1), 0, statusPaused, nil)
	}
	x.set("b.b", 20, 0, statusActive, nil)
	x.set("b.z", 21, 0, statusOther, nil)
	for _, tc := range []struct {
		prefix, after string
		n             int
		want          []string
	}{
		{"", "", 100, []string{"a", "b", "b-x", "b.a", "b.c.d", "b.z", "b0", "bx", "c.b"}},
		{"b", "", 100, []string{"b", "b.a", "b.c.d", "b.z"}},
		{"b", "", 2, []string{"b", "b.a"}},
		{"b", "b", 100, []string{"b.a", "b.c.d", "b.z"}},
		{"b", "b-x", 100, []string{"b.a", "b.c.d", "b.z"}},
		{"b", "b.a", 1, []string{"b.c.d"}},
		{"b", "b.c.d", 100, []string{"b.z"}},
		{"b.c", "", 100, []string{"b.c.d"}},
		{"b", "bx", 100, nil},
		{"z", "", 100, nil},
	} {
		require.Equal(t, tc.want, x.candidates(statusPaused, tc.prefix, tc.after, tc.n), "%+v", tc)
	}
	require.Equal(t, []string{"b.b", "b.z"}, x.candidates(statusActive, "b", "", 100))

	// An entry a worker holds, with news from the watch, is a candidate
	// of every status until the worker is done.
	e := x.byID["b.b"]
	e.busy = true
	x.postpone(e, &pendingOp{rev: 30})
	require.Equal(t, []string{"b.b", "b.z"}, x.candidates(statusDone, "b", "", 100))
	x.finish(result{e: e, rev: 31, status: natsched.StatusDone})
	require.Equal(t, []string{"b.b", "b.z"}, x.candidates(statusDone, "b", "", 100))
	require.Equal(t, []string{"b.z"}, x.candidates(statusActive, "b", "", 100))
	require.Equal(t, 8, x.pending, "the paused ones; done and unreadable are not pending")

	x.remove("b.b", 40)
	require.Equal(t, []string{"b.z"}, x.candidates(statusDone, "b", "", 100))
	require.Equal(t, x.byStatus.Len(), len(x.byID))
}
