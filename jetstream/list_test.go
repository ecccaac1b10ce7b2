package jetstream

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
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

// listAll follows List's pages to the end and returns the IDs and the
// skipped values it reported.
func listAll(t *testing.T, s *Scheduler, o natsched.ListOptions) ([]string, int) {
	t.Helper()
	var ids []string
	skipped := 0
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10_000, "paging does not end")
		page, err := s.List(bg, o)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page.Schedules), max(o.Limit, 1))
		for _, sch := range page.Schedules {
			if o.Status != "" {
				require.Equal(t, o.Status, sch.Status, "%s", sch.ID)
			}
			ids = append(ids, sch.ID)
		}
		skipped += page.Skipped
		if page.Next == "" {
			return ids, skipped
		}
		require.Greater(t, page.Next, o.After, "the cursor moves on")
		o.After = page.Next
	}
}

// bruteList reads every value in the bucket and filters them as List
// must: the IDs of o's status in o's prefix, in byte order, and how many
// unreadable values a list could not rule out (with a status filter, an
// unreadable value whose status field names another status is ruled out).
func bruteList(t *testing.T, s *Scheduler, o natsched.ListOptions) ([]string, int) {
	t.Helper()
	lister, err := s.kv.ListKeys(bg)
	require.NoError(t, err)
	var ids []string
	unreadable := 0
	for k := range lister.Keys() {
		if !natsched.MatchPrefix(k, o.Prefix) {
			continue
		}
		e, err := s.kv.Get(bg, k)
		require.NoError(t, err)
		var sch natsched.Schedule
		if json.Unmarshal(e.Value(), &sch) != nil {
			var f struct {
				Status natsched.Status `json:"status"`
			}
			switch err := json.Unmarshal(e.Value(), &f); {
			case o.Status == "", err != nil, f.Status == o.Status,
				!slices.Contains([]natsched.Status{natsched.StatusActive, natsched.StatusPaused, natsched.StatusDone}, f.Status):
				unreadable++
			}
			continue
		}
		if o.Status == "" || sch.Status == o.Status {
			ids = append(ids, k)
		}
	}
	slices.Sort(ids)
	return ids, unreadable
}

// TestListByStatus: status-filtered lists (answered from the index) and
// unfiltered ones (from the key listing), for every status, whole-token
// prefixes and page size, page through exactly what a brute-force filter of
// the bucket finds; unreadable values are counted, once, and never fail a
// list.
func TestListByStatus(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	s := testScheduler(t, srv, "list-status")
	waitLeader(t, s)

	far := time.Now().Add(time.Hour)
	statuses := []natsched.Status{natsched.StatusActive, natsched.StatusPaused, natsched.StatusDone}
	var keys []string
	for _, base := range []string{"billing", "billing.x", "billing.x.y", "billingx", "billing-a", "billing_b",
		"bill", "other.billing", "billing.a.b", "billing.A", "billing.9"} {
		keys = append(keys, base)
	}
	for i := range 300 {
		keys = append(keys, fmt.Sprintf("billing.k%d", i), fmt.Sprintf("ops.k%d", i))
	}
	storeRaw(t, srv.JetStream(t), s, len(keys), func(i int) string { return keys[i] }, func(i int) []byte {
		return stored(t, keys[i], far, statuses[(i*7)%len(statuses)])
	})
	// Through the API as well, and two values no decoder reads.
	for _, id := range []string{"billing.api", "billing.zzz", "ops.api"} {
		_, err := s.Put(bg, &natsched.Schedule{ID: id, Subject: "natsched.fire.list", At: far})
		require.NoError(t, err)
	}
	_, err := s.Pause(bg, "billing.zzz")
	require.NoError(t, err)
	_, err = s.kv.Put(bg, "billing.corrupt", []byte("not json"))
	require.NoError(t, err)
	_, err = s.kv.Put(bg, "ops.corrupt", []byte(`{"status":"paused","at":5}`))
	require.NoError(t, err)

	for _, st := range []natsched.Status{"", natsched.StatusActive, natsched.StatusPaused, natsched.StatusDone} {
		for _, prefix := range []string{"", "billing", "billing.x", "bil", "ops", "other", "nothing.here"} {
			want, unreadable := bruteList(t, s, natsched.ListOptions{Status: st, Prefix: prefix})
			for _, limit := range []int{1, 7, 1000} {
				o := natsched.ListOptions{Status: st, Prefix: prefix, Limit: limit}
				got, skipped := listAll(t, s, o)
				require.Equal(t, want, got, "%+v", o)
				require.Equal(t, unreadable, skipped, "%+v", o)
			}
			// A cursor in the middle, and one that is not an ID listed.
			if len(want) > 2 {
				got, _ := listAll(t, s, natsched.ListOptions{Status: st, Prefix: prefix, Limit: 5, After: want[1]})
				require.Equal(t, want[2:], got)
			}
		}
	}
}

// TestListReadsOwnWrites: a list right after an acknowledged write sees
// it, even through another instance whose index learns of the write only
// from its watch: a put is listed as active, a pause as paused, a resume
// as active again, and a cancelled schedule is gone.
func TestListReadsOwnWrites(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	writer := testScheduler(t, srv, "list-writer")
	reader := testScheduler(t, srv, "list-reader")
	listed := func(s *Scheduler, st natsched.Status, id string) bool {
		t.Helper()
		page, err := s.List(bg, natsched.ListOptions{Status: st, Prefix: "own", Limit: 1000})
		require.NoError(t, err)
		return slices.ContainsFunc(page.Schedules, func(sch *natsched.Schedule) bool { return sch.ID == id })
	}
	put := func(ctx context.Context, id string) (*natsched.Schedule, error) {
		return writer.Put(ctx, &natsched.Schedule{ID: id, Subject: "natsched.fire.list", At: time.Now().Add(time.Hour)})
	}
	steps := []struct {
		name string
		op   func(context.Context, string) (*natsched.Schedule, error)
		then natsched.Status // listed under it afterwards ("": under none)
	}{
		{"put", put, natsched.StatusActive},
		{"pause", writer.Pause, natsched.StatusPaused},
		{"resume", writer.Resume, natsched.StatusActive},
		{"pause", writer.Pause, natsched.StatusPaused},
		{"cancel", writer.Cancel, ""},
	}
	for i := range 30 {
		id := fmt.Sprintf("own.k%d", i)
		s := []*Scheduler{writer, reader}[i%2] // the list on the same or the other instance
		for _, step := range steps {
			_, err := step.op(bg, id)
			require.NoError(t, err)
			for _, st := range []natsched.Status{natsched.StatusActive, natsched.StatusPaused} {
				require.Equal(t, st == step.then, listed(s, st, id), "%s listed as %s after its %s", id, st, step.name)
			}
		}
	}
}

// TestListWaitsForTheIndex: a list waits for the index to reach the
// sequence it needs, gives up with its context, and leaves the loop
// serving the next one.
func TestListWaitsForTheIndex(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	s := testScheduler(t, srv, "list-wait")
	ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
	defer cancel()
	_, err := s.loop.candidates(ctx, listReq{last: math.MaxUint64, status: statusPaused, n: 1})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	_, err = s.List(bg, natsched.ListOptions{Status: natsched.StatusPaused})
	require.NoError(t, err)
}

// TestIndexCandidates: the index finds a status's IDs by whole-token
// prefix and cursor, merged with those whose status it cannot tell.
func TestIndexCandidates(t *testing.T) {
	t.Parallel()
	x := newIndex(1)
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
