package schedulertest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/natsched/natsched"
	"github.com/stretchr/testify/require"
)

// Run runs the conformance suite; newHarness makes a fresh scheduler for
// each test.
func Run(t *testing.T, newHarness func(t *testing.T) *Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *Harness)
	}{
		{"PutGet", testPutGet},
		{"Validation", testValidation},
		{"CompareAndSet", testCompareAndSet},
		{"NotFound", testNotFound},
		{"OneShotAt", testOneShotAt},
		{"OneShotIn", testOneShotIn},
		{"OneShotPastFiresLateOnce", testOneShotPast},
		{"Every", testEvery},
		{"EveryStartInPast", testEveryStartInPast},
		{"CronSecondsFirst", testCronSecondsFirst},
		{"CronTimeZone", testCronTimeZone},
		{"CronDSTGap", testCronDSTGap},
		{"MaxRuns", testMaxRuns},
		{"End", testEnd},
		{"PauseResumeRecurring", testPauseResumeRecurring},
		{"PausedOneShotFiresOnResume", testPausedOneShot},
		{"Trigger", testTrigger},
		{"TriggerMaxRuns", testTriggerMaxRuns},
		{"Jitter", testJitter},
		{"ReplaceNewGeneration", testReplace},
		{"Cancel", testCancel},
		{"List", testList},
		{"Headers", testHeaders},
		{"DoneRetention", testRetention},
		{"TooLarge", testTooLarge},
		{"MisfireSkip", testMisfire(natsched.MisfireSkip)},
		{"MisfireOnce", testMisfire(natsched.MisfireOnce)},
		{"MisfireAll", testMisfire(natsched.MisfireAll)},
		{"MisfireAllCatchup", testMisfireCatchup},
		{"FallingBehind", testFallingBehind},
		{"JitterBelowInterval", testJitterBelowInterval},
		{"ManyExactlyOnce", testManyExactlyOnce},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			require.Equal(t, Start, h.Clock.Now(), "harness clock must start at schedulertest.Start")
			tc.fn(t, h)
		})
	}
}

var ctx = context.Background()

func (h *Harness) put(t *testing.T, s *natsched.Schedule) *natsched.Schedule {
	t.Helper()
	if s.Subject == "" {
		s.Subject = h.Subject + "." + s.ID
	}
	got, err := h.Scheduler.Put(ctx, s)
	require.NoError(t, err)
	return got
}

func (h *Harness) get(t *testing.T, id string) *natsched.Schedule {
	t.Helper()
	s, err := h.Scheduler.Get(ctx, id)
	require.NoError(t, err)
	return s
}

// checkFire asserts one fire's headers and timing.
func (h *Harness) checkFire(t *testing.T, f Fire, id string, planned time.Time, run int) {
	t.Helper()
	require.Equal(t, id, f.Msg.ScheduleID())
	require.Equal(t, planned.UTC(), f.Planned(), "Natsched-Planned of %s run %d", id, run)
	require.Equal(t, strconv.Itoa(run), f.Run(), "Natsched-Run of %s", id)
	require.NotEmpty(t, f.Msg.Header.Get(natsched.HeaderMsgID))
	fireAt := planned
	if j := f.Msg.Header.Get(natsched.HeaderJitter); j != "" {
		d, err := time.ParseDuration(j)
		require.NoError(t, err)
		fireAt = planned.Add(d)
	}
	if h.Exact {
		require.Equal(t, fireAt.UTC(), f.At.UTC(), "%s run %d arrived at the wrong instant", id, run)
	} else {
		require.False(t, f.At.Before(fireAt), "%s run %d arrived early: %s < %s", id, run, f.At, fireAt)
	}
}

// none asserts that id has fired exactly n times so far.
func (h *Harness) count(t *testing.T, id string, n int) {
	t.Helper()
	require.Len(t, h.Recorder.For(id), n, "fires of %s", id)
}

func testPutGet(t *testing.T, h *Harness) {
	now := h.Clock.Now()
	in := &natsched.Schedule{
		ID: "billing.invoice.42", Subject: h.Subject + ".billing", Every: time.Minute,
		Header: nats.Header{"X-Trace": {"abc"}}, Data: []byte("hello"), Jitter: 0,
	}
	got := h.put(t, in)
	require.Equal(t, natsched.StatusActive, got.Status)
	require.NotZero(t, got.Revision)
	require.NotZero(t, got.Generation)
	require.Equal(t, now.Add(time.Minute), got.NextRun)
	require.Equal(t, now, got.Created)
	require.Equal(t, natsched.MisfireOnce, got.Misfire, "recurring schedules show the default misfire")
	require.Equal(t, []string{"abc"}, got.Header["X-Trace"])
	require.Equal(t, "hello", string(got.Data))

	again := h.get(t, in.ID)
	require.Equal(t, got.Revision, again.Revision)
	require.Equal(t, got.NextRun, again.NextRun)
	require.Equal(t, "hello", string(again.Data))
	require.Equal(t, in.Subject, again.Subject)

	// The caller's copy is not aliased.
	got.Data[0] = 'j'
	require.Equal(t, "hello", string(h.get(t, in.ID).Data))
}

func testValidation(t *testing.T, h *Harness) {
	now := h.Clock.Now()
	subj := h.Subject + ".v"
	for _, tc := range []struct {
		field string
		s     natsched.Schedule
	}{
		{"id", natsched.Schedule{ID: "bad id", Subject: subj, In: time.Second}},
		{"id", natsched.Schedule{ID: "a..b", Subject: subj, In: time.Second}},
		{"id", natsched.Schedule{ID: "a.*", Subject: subj, In: time.Second}},
		{"subject", natsched.Schedule{ID: "v", Subject: "a.*", In: time.Second}},
		{"subject", natsched.Schedule{ID: "v", Subject: "a b", In: time.Second}},
		{"subject", natsched.Schedule{ID: "v", In: time.Second}},
		{"at", natsched.Schedule{ID: "v", Subject: subj}},
		{"cron", natsched.Schedule{ID: "v", Subject: subj, Cron: "* * * * * * * *"}},
		{"cron", natsched.Schedule{ID: "v", Subject: subj, Cron: "61 * * * *"}},
		{"cron", natsched.Schedule{ID: "v", Subject: subj, Cron: "0 0 30 2 *"}},
		{"cron", natsched.Schedule{ID: "v", Subject: subj, Cron: "@every 5m", Every: time.Minute}},
		{"tz", natsched.Schedule{ID: "v", Subject: subj, Cron: "0 9 * * *", TZ: "Mars/Olympus"}},
		{"every", natsched.Schedule{ID: "v", Subject: subj, Every: time.Microsecond}},
		{"end", natsched.Schedule{ID: "v", Subject: subj, Every: time.Second, Start: now.Add(time.Hour), End: now}},
		{"misfire", natsched.Schedule{ID: "v", Subject: subj, Every: time.Second, Misfire: "sometimes"}},
		{"header", natsched.Schedule{ID: "v", Subject: subj, In: time.Second, Header: nats.Header{"Nats-Msg-Id": {"x"}}}},
		{"header", natsched.Schedule{ID: "v", Subject: subj, In: time.Second, Header: nats.Header{"natsched-id": {"x"}}}},
		{"max_runs", natsched.Schedule{ID: "v", Subject: subj, Every: time.Second, MaxRuns: -1}},
		{"jitter", natsched.Schedule{ID: "v", Subject: subj, Every: time.Second, Jitter: -time.Second}},
	} {
		s := tc.s
		_, err := h.Scheduler.Put(ctx, &s)
		require.ErrorIs(t, err, natsched.ErrInvalid, "%+v", tc)
		var fe *natsched.FieldError
		require.ErrorAs(t, err, &fe)
		require.Equal(t, tc.field, fe.Field, "error %q", err)
	}
	_, err := h.Scheduler.Get(ctx, "v")
	require.ErrorIs(t, err, natsched.ErrNotFound, "nothing invalid was stored")
}

func testCompareAndSet(t *testing.T, h *Harness) {
	a := h.put(t, &natsched.Schedule{ID: "cas", Every: time.Minute})
	b := a.Clone()
	b.Every = 2 * time.Minute
	b2, err := h.Scheduler.Put(ctx, b)
	require.NoError(t, err)
	require.Greater(t, b2.Revision, a.Revision)

	stale := a.Clone()
	stale.Every = 3 * time.Minute
	_, err = h.Scheduler.Put(ctx, stale)
	require.ErrorIs(t, err, natsched.ErrConflict)
	require.Equal(t, 2*time.Minute, h.get(t, "cas").Every, "a lost compare-and-set changes nothing")

	_, err = h.Scheduler.Put(ctx, &natsched.Schedule{ID: "cas.none", Subject: h.Subject + ".x", Every: time.Minute, Revision: 99999})
	require.ErrorIs(t, err, natsched.ErrConflict, "compare-and-set on a missing schedule")

	// Revision 0 replaces unconditionally.
	c := h.put(t, &natsched.Schedule{ID: "cas", Every: 5 * time.Minute})
	require.Equal(t, 5*time.Minute, c.Every)
}

func testNotFound(t *testing.T, h *Harness) {
	for name, f := range map[string]func(context.Context, string) (*natsched.Schedule, error){
		"get": h.Scheduler.Get, "cancel": h.Scheduler.Cancel, "pause": h.Scheduler.Pause,
		"resume": h.Scheduler.Resume, "trigger": h.Scheduler.Trigger,
	} {
		_, err := f(ctx, "no.such.schedule")
		require.ErrorIs(t, err, natsched.ErrNotFound, name)
	}
}

func testOneShotAt(t *testing.T, h *Harness) {
	planned := h.Clock.Now().Add(1500 * time.Millisecond)
	h.put(t, &natsched.Schedule{ID: "once", At: planned, Data: []byte("payload")})
	h.advance(t, time.Second)
	h.count(t, "once", 0)
	h.Clock.Advance(500 * time.Millisecond)
	f := h.Recorder.WaitFor(t, "once", 1)[0]
	h.checkFire(t, f, "once", planned, 1)
	require.Equal(t, "payload", string(f.Msg.Data))
	require.Equal(t, h.Subject+".once", f.Msg.Subject)

	h.advance(t, time.Minute)
	h.count(t, "once", 1)
	s := h.get(t, "once")
	require.Equal(t, natsched.StatusDone, s.Status)
	require.EqualValues(t, 1, s.Runs)
	require.Equal(t, planned, s.LastRun)
	require.True(t, s.NextRun.IsZero())
}

func testOneShotIn(t *testing.T, h *Harness) {
	now := h.Clock.Now()
	s := h.put(t, &natsched.Schedule{ID: "in", In: 90 * time.Second})
	require.Equal(t, now.Add(90*time.Second), s.At, "in is stored as at")
	require.Zero(t, s.In)
	h.Clock.Advance(90 * time.Second)
	h.checkFire(t, h.Recorder.WaitFor(t, "in", 1)[0], "in", now.Add(90*time.Second), 1)
}

func testOneShotPast(t *testing.T, h *Harness) {
	planned := h.Clock.Now().Add(-time.Hour)
	h.put(t, &natsched.Schedule{ID: "late", At: planned, Misfire: natsched.MisfireSkip})
	f := h.Recorder.WaitFor(t, "late", 1)[0]
	require.Equal(t, planned, f.Planned(), "a late one-shot fires, late, whatever its misfire policy")
	h.advance(t, time.Minute)
	h.count(t, "late", 1)
}

func testEvery(t *testing.T, h *Harness) {
	now := h.Clock.Now()
	h.put(t, &natsched.Schedule{ID: "tick", Every: 10 * time.Second})
	for i := 1; i <= 3; i++ {
		h.Clock.Advance(10 * time.Second)
		fires := h.Recorder.WaitFor(t, "tick", i)
		h.checkFire(t, fires[i-1], "tick", now.Add(time.Duration(i)*10*time.Second), i)
	}
	h.settle(t)
	fires := h.Recorder.For("tick")
	require.Len(t, fires, 3)
	seen := map[string]bool{}
	for _, f := range fires {
		id := f.Msg.Header.Get(natsched.HeaderMsgID)
		require.False(t, seen[id], "occurrence IDs are distinct")
		seen[id] = true
	}
	s := h.get(t, "tick")
	require.EqualValues(t, 3, s.Runs)
	require.Equal(t, now.Add(40*time.Second), s.NextRun)
}

func testEveryStartInPast(t *testing.T, h *Harness) {
	now := h.Clock.Now()
	s := h.put(t, &natsched.Schedule{ID: "grid", Every: 10 * time.Second, Start: now.Add(-25 * time.Second)})
	require.Equal(t, now.Add(5*time.Second), s.NextRun, "first occurrence after acceptance on the start's grid")
	h.Clock.Advance(5 * time.Second)
	h.checkFire(t, h.Recorder.WaitFor(t, "grid", 1)[0], "grid", now.Add(5*time.Second), 1)

	future := h.put(t, &natsched.Schedule{ID: "grid.future", Every: 10 * time.Second, Start: now.Add(time.Hour)})
	require.Equal(t, now.Add(time.Hour), future.NextRun, "a future start is the first fire")
}

func testCronSecondsFirst(t *testing.T, h *Harness) {
	now := h.Clock.Now() // 00:00:00
	s := h.put(t, &natsched.Schedule{ID: "sec", Cron: "*/15 * * * * *"})
	require.Equal(t, now.Add(15*time.Second), s.NextRun, "six fields read seconds first")
	daily := h.put(t, &natsched.Schedule{ID: "daily", Cron: "30 0 9 * * *"})
	require.Equal(t, now.Add(9*time.Hour+30*time.Second), daily.NextRun)
	h.walk(t, time.Minute)
	fires := h.Recorder.WaitFor(t, "sec", 4)
	for i, f := range fires {
		h.checkFire(t, f, "sec", now.Add(time.Duration(i+1)*15*time.Second), i+1)
	}
}

func testCronTimeZone(t *testing.T, h *Harness) {
	// 09:00 in New York in January is 14:00 UTC.
	s := h.put(t, &natsched.Schedule{ID: "ny", Cron: "0 9 * * MON-FRI", TZ: "America/New_York"})
	want := time.Date(2026, 1, 5, 14, 0, 0, 0, time.UTC)
	require.Equal(t, want, s.NextRun)
	h.Clock.Set(want)
	h.checkFire(t, h.Recorder.WaitFor(t, "ny", 1)[0], "ny", want, 1)
	h.settle(t) // state is written after the fire is published
	require.Equal(t, want.Add(24*time.Hour), h.get(t, "ny").NextRun)
}

func testCronDSTGap(t *testing.T, h *Harness) {
	// Berlin springs forward on 29 March 2026 at 02:00 CET: 02:30 does not
	// exist, and a fixed-time job fires once, at 03:00 CEST (01:00 UTC).
	h.Clock.Set(time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC))
	h.put(t, &natsched.Schedule{ID: "dst", Cron: "30 2 * * *", TZ: "Europe/Berlin"})
	// Reach each occurrence as a running scheduler would, not in one jump.
	for _, at := range []time.Time{time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC), time.Date(2026, 3, 30, 0, 30, 0, 0, time.UTC)} {
		h.Clock.Set(at.Add(-walkStep))
		h.walk(t, walkStep)
	}
	h.Clock.Set(time.Date(2026, 3, 30, 12, 0, 0, 0, time.UTC))
	fires := h.Recorder.WaitFor(t, "dst", 2)
	h.settle(t)
	fires = h.Recorder.For("dst")
	require.Len(t, fires, 2)
	h.checkFire(t, fires[0], "dst", time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC), 1)
	h.checkFire(t, fires[1], "dst", time.Date(2026, 3, 30, 0, 30, 0, 0, time.UTC), 2)
}

func testMaxRuns(t *testing.T, h *Harness) {
	h.put(t, &natsched.Schedule{ID: "max", Every: time.Second, MaxRuns: 3})
	h.walk(t, 10*time.Second)
	h.count(t, "max", 3)
	s := h.get(t, "max")
	require.Equal(t, natsched.StatusDone, s.Status)
	require.True(t, s.NextRun.IsZero())
	require.EqualValues(t, 3, s.Runs)
}

func testEnd(t *testing.T, h *Harness) {
	now := h.Clock.Now()
	h.put(t, &natsched.Schedule{ID: "end", Every: 10 * time.Second, End: now.Add(25 * time.Second)})
	h.walk(t, time.Minute)
	h.count(t, "end", 2)
	require.Equal(t, natsched.StatusDone, h.get(t, "end").Status)
}

func testPauseResumeRecurring(t *testing.T, h *Harness) {
	now := h.Clock.Now()
	h.put(t, &natsched.Schedule{ID: "p", Every: 10 * time.Second})
	h.advance(t, 10*time.Second)
	h.count(t, "p", 1)

	s, err := h.Scheduler.Pause(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, natsched.StatusPaused, s.Status)
	require.True(t, s.Paused)
	h.advance(t, 35*time.Second) // t+45s: occurrences at 20, 30, 40 are skipped
	h.count(t, "p", 1)

	s, err = h.Scheduler.Resume(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, natsched.StatusActive, s.Status)
	require.Equal(t, now.Add(50*time.Second), s.NextRun, "next fire is the first occurrence after the resume")
	h.Clock.Advance(5 * time.Second)
	fires := h.Recorder.WaitFor(t, "p", 2)
	h.checkFire(t, fires[1], "p", now.Add(50*time.Second), 2)
}

func testPausedOneShot(t *testing.T, h *Harness) {
	planned := h.Clock.Now().Add(10 * time.Second)
	h.put(t, &natsched.Schedule{ID: "po", At: planned, Paused: true})
	require.Equal(t, natsched.StatusPaused, h.get(t, "po").Status)
	h.advance(t, time.Minute)
	h.count(t, "po", 0)
	_, err := h.Scheduler.Resume(ctx, "po")
	require.NoError(t, err)
	f := h.Recorder.WaitFor(t, "po", 1)[0]
	require.Equal(t, planned, f.Planned(), "fires late, never dropped")
	h.advance(t, time.Minute)
	h.count(t, "po", 1)
}

func testTrigger(t *testing.T, h *Harness) {
	now := h.Clock.Now()
	h.put(t, &natsched.Schedule{ID: "trig", Every: time.Hour})
	before := h.get(t, "trig")
	s, err := h.Scheduler.Trigger(ctx, "trig")
	require.NoError(t, err)
	require.EqualValues(t, 0, s.Runs, "the reply is the schedule as it stood when accepted")
	f := h.Recorder.WaitFor(t, "trig", 1)[0]
	require.Equal(t, now, f.Planned(), "planned at the moment the trigger was accepted")
	require.Equal(t, "1", f.Run())
	h.settle(t)
	after := h.get(t, "trig")
	require.Equal(t, before.NextRun, after.NextRun, "trigger leaves next_run alone")
	require.EqualValues(t, 1, after.Runs)

	// The scheduled occurrence still fires, numbered after the trigger.
	h.Clock.Advance(time.Hour)
	fires := h.Recorder.WaitFor(t, "trig", 2)
	h.checkFire(t, fires[1], "trig", now.Add(time.Hour), 2)
	require.NotEqual(t, fires[0].Msg.Header.Get(natsched.HeaderMsgID), fires[1].Msg.Header.Get(natsched.HeaderMsgID))

	// Works while paused, which it stays.
	_, err = h.Scheduler.Pause(ctx, "trig")
	require.NoError(t, err)
	_, err = h.Scheduler.Trigger(ctx, "trig")
	require.NoError(t, err)
	h.Recorder.WaitFor(t, "trig", 3)
	h.settle(t)
	require.Equal(t, natsched.StatusPaused, h.get(t, "trig").Status)

	// A done schedule cannot be triggered.
	h.put(t, &natsched.Schedule{ID: "trig.done", At: h.Clock.Now()})
	h.Recorder.WaitFor(t, "trig.done", 1)
	Eventually(t, func() bool { return h.get(t, "trig.done").Status == natsched.StatusDone }, "trig.done done")
	_, err = h.Scheduler.Trigger(ctx, "trig.done")
	require.ErrorIs(t, err, natsched.ErrConflict)
}

func testTriggerMaxRuns(t *testing.T, h *Harness) {
	h.put(t, &natsched.Schedule{ID: "tm", Every: time.Hour, MaxRuns: 2, Paused: true})
	_, err := h.Scheduler.Trigger(ctx, "tm")
	require.NoError(t, err)
	_, err = h.Scheduler.Trigger(ctx, "tm")
	require.NoError(t, err)
	_, err = h.Scheduler.Trigger(ctx, "tm")
	require.ErrorIs(t, err, natsched.ErrConflict, "pending triggers already reach max_runs")
	h.Recorder.WaitFor(t, "tm", 2)
	Eventually(t, func() bool { return h.get(t, "tm").Status == natsched.StatusDone },
		"reaching max_runs by triggers makes the schedule done, paused or not")
	h.advance(t, 3*time.Hour)
	h.count(t, "tm", 2)
}

func testJitter(t *testing.T, h *Harness) {
	now := h.Clock.Now()
	h.put(t, &natsched.Schedule{ID: "jit", Every: 10 * time.Second, Jitter: 5 * time.Second})
	h.walk(t, 200*time.Second)
	fires := h.Recorder.For("jit")
	require.GreaterOrEqual(t, len(fires), 19)
	distinct := map[string]bool{}
	for i, f := range fires[:19] {
		j, err := time.ParseDuration(f.Msg.Header.Get(natsched.HeaderJitter))
		require.NoError(t, err, "Natsched-Jitter header")
		require.GreaterOrEqual(t, j, time.Duration(0))
		require.LessOrEqual(t, j, 5*time.Second)
		distinct[j.String()] = true
		h.checkFire(t, f, "jit", now.Add(time.Duration(i+1)*10*time.Second), i+1)
	}
	require.Greater(t, len(distinct), 5, "jitter varies between occurrences")
}

func testReplace(t *testing.T, h *Harness) {
	now := h.Clock.Now()
	a := h.put(t, &natsched.Schedule{ID: "rep", At: now.Add(10 * time.Second)})
	b := h.put(t, &natsched.Schedule{ID: "rep", At: now.Add(20 * time.Second), Data: []byte("v2")})
	require.NotEqual(t, a.Generation, b.Generation, "a replaced schedule gets a new generation")
	require.Equal(t, a.Created, b.Created)
	h.advance(t, 15*time.Second)
	h.count(t, "rep", 0)
	h.Clock.Advance(5 * time.Second)
	f := h.Recorder.WaitFor(t, "rep", 1)[0]
	require.Equal(t, "v2", string(f.Msg.Data))
	h.checkFire(t, f, "rep", now.Add(20*time.Second), 1)

	// Same definition, put again after firing: a new occurrence ID.
	c := h.put(t, &natsched.Schedule{ID: "rep", At: now.Add(20 * time.Second), Data: []byte("v2")})
	require.NotEqual(t, b.Generation, c.Generation)
	fires := h.Recorder.WaitFor(t, "rep", 2)
	require.NotEqual(t, fires[0].Msg.Header.Get(natsched.HeaderMsgID), fires[1].Msg.Header.Get(natsched.HeaderMsgID))
}

func testCancel(t *testing.T, h *Harness) {
	h.put(t, &natsched.Schedule{ID: "c", Every: 10 * time.Second})
	h.advance(t, 10*time.Second)
	got, err := h.Scheduler.Cancel(ctx, "c")
	require.NoError(t, err)
	require.Equal(t, "c", got.ID)
	require.EqualValues(t, 1, got.Runs, "cancel returns the schedule as it was")
	_, err = h.Scheduler.Get(ctx, "c")
	require.ErrorIs(t, err, natsched.ErrNotFound)
	h.advance(t, time.Minute)
	h.count(t, "c", 1)
	_, err = h.Scheduler.Cancel(ctx, "c")
	require.ErrorIs(t, err, natsched.ErrNotFound)
}

func testList(t *testing.T, h *Harness) {
	var want []string
	for i := range 25 {
		id := fmt.Sprintf("list.a.%02d", i)
		want = append(want, id)
		h.put(t, &natsched.Schedule{ID: id, Every: time.Hour})
	}
	h.put(t, &natsched.Schedule{ID: "list.a", Every: time.Hour})
	h.put(t, &natsched.Schedule{ID: "list.ab", Every: time.Hour})
	want = append([]string{"list.a"}, want...)

	var got []string
	after := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		page, err := h.Scheduler.List(ctx, natsched.ListOptions{Prefix: "list.a", Limit: 10, After: after})
		require.NoError(t, err)
		require.LessOrEqual(t, len(page.Schedules), 10)
		for _, s := range page.Schedules {
			got = append(got, s.ID)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	require.Equal(t, want, got, "whole-token prefix, byte-wise order, every page")

	_, err := h.Scheduler.Pause(ctx, "list.a.03")
	require.NoError(t, err)
	page, err := h.Scheduler.List(ctx, natsched.ListOptions{Prefix: "list", Status: natsched.StatusPaused})
	require.NoError(t, err)
	require.Len(t, page.Schedules, 1)
	require.Equal(t, "list.a.03", page.Schedules[0].ID)
	require.Empty(t, page.Next)

	page, err = h.Scheduler.List(ctx, natsched.ListOptions{Prefix: "list", Status: natsched.StatusActive})
	require.NoError(t, err)
	require.Len(t, page.Schedules, 26)

	page, err = h.Scheduler.List(ctx, natsched.ListOptions{Prefix: "nothing.here"})
	require.NoError(t, err)
	require.Empty(t, page.Schedules)

	_, err = h.Scheduler.List(ctx, natsched.ListOptions{Prefix: "bad prefix"})
	require.ErrorIs(t, err, natsched.ErrInvalid)
	_, err = h.Scheduler.List(ctx, natsched.ListOptions{Status: "cancelled"})
	require.ErrorIs(t, err, natsched.ErrInvalid)
}

func testHeaders(t *testing.T, h *Harness) {
	h.put(t, &natsched.Schedule{ID: "hdr", In: time.Second, Type: "email.send",
		Header: nats.Header{"X-Trace": {"abc"}, "X-Multi": {"1", "2"}}})
	h.Clock.Advance(time.Second)
	f := h.Recorder.WaitFor(t, "hdr", 1)[0]
	require.Equal(t, "abc", f.Msg.Header.Get("X-Trace"))
	require.Equal(t, []string{"1", "2"}, f.Msg.Header.Values("X-Multi"))
	require.Equal(t, "email.send", f.Msg.Header.Get(natsched.HeaderType))
	require.Equal(t, "hdr", f.Msg.Header.Get(natsched.HeaderID))
	require.Empty(t, f.Msg.Header.Get(natsched.HeaderJitter), "no jitter header without jitter")
}

func testRetention(t *testing.T, h *Harness) {
	if h.Retention == 0 {
		t.Skip("harness does not state its retention")
	}
	h.put(t, &natsched.Schedule{ID: "ret", In: time.Second})
	h.Clock.Advance(time.Second)
	h.Recorder.WaitFor(t, "ret", 1)
	Eventually(t, func() bool { return h.get(t, "ret").Status == natsched.StatusDone }, "done")
	page, err := h.Scheduler.List(ctx, natsched.ListOptions{Prefix: "ret", Status: natsched.StatusDone})
	require.NoError(t, err)
	require.Len(t, page.Schedules, 1, "done schedules are listed")
	h.Clock.Advance(h.Retention - 2*time.Second)
	h.settle(t)
	h.get(t, "ret")
	h.Clock.Advance(2 * time.Second)
	Eventually(t, func() bool {
		_, err := h.Scheduler.Get(ctx, "ret")
		return errors.Is(err, natsched.ErrNotFound)
	}, "done schedule removed after retention")
}

func testTooLarge(t *testing.T, h *Harness) {
	if h.MaxPayload == 0 {
		t.Skip("harness does not state its max payload")
	}
	_, err := h.Scheduler.Put(ctx, &natsched.Schedule{ID: "big", Subject: h.Subject + ".big", In: time.Second,
		Data: make([]byte, h.MaxPayload)})
	require.ErrorIs(t, err, natsched.ErrTooLarge)
	_, err = h.Scheduler.Get(ctx, "big")
	require.ErrorIs(t, err, natsched.ErrNotFound)
}

// testMisfire: every 10s, down from t+5s to t+65s. Missed (planned before
// the new leader started minus the threshold): 10, 20, ..., 60.
func testMisfire(policy natsched.Misfire) func(t *testing.T, h *Harness) {
	return func(t *testing.T, h *Harness) {
		if h.Outage == nil {
			t.Skip("harness cannot simulate downtime")
		}
		now := h.Clock.Now()
		id := "mis." + string(policy)
		h.put(t, &natsched.Schedule{ID: id, Every: 10 * time.Second, Misfire: policy})
		h.Clock.Advance(5 * time.Second)
		h.Outage(t, 60*time.Second)
		h.settle(t)
		fires := h.Recorder.For(id)
		var planned []time.Time
		for _, f := range fires {
			planned = append(planned, f.Planned())
		}
		at := func(s int) time.Time { return now.Add(time.Duration(s) * time.Second) }
		switch policy {
		case natsched.MisfireSkip:
			require.Empty(t, planned)
		case natsched.MisfireOnce:
			require.Equal(t, []time.Time{at(60)}, planned, "one fire, planned at the latest missed occurrence")
		case natsched.MisfireAll:
			require.Equal(t, []time.Time{at(10), at(20), at(30), at(40), at(50), at(60)}, planned, "every missed one, oldest first")
		}
		// Then the cadence resumes.
		h.Clock.Advance(5 * time.Second)
		all := h.Recorder.WaitFor(t, id, len(fires)+1)
		last := all[len(all)-1]
		require.Equal(t, at(70), last.Planned())
		require.Equal(t, strconv.Itoa(len(fires)+1), last.Run())
	}
}

func testMisfireCatchup(t *testing.T, h *Harness) {
	if h.Outage == nil {
		t.Skip("harness cannot simulate downtime")
	}
	now := h.Clock.Now()
	h.put(t, &natsched.Schedule{ID: "catch", Every: time.Minute, Misfire: natsched.MisfireAll, Catchup: 5 * time.Minute})
	h.Outage(t, 3*time.Hour)
	h.settle(t)
	fires := h.Recorder.For("catch")
	// Missed within catchup: 2:55 to 2:59; 3:00 is planned at the takeover
	// itself, so it is not missed and fires as usual.
	require.Len(t, fires, 6, "all goes back no further than catchup")
	for i, f := range fires {
		require.Equal(t, now.Add(3*time.Hour-5*time.Minute+time.Duration(i)*time.Minute), f.Planned())
	}
}

// testFallingBehind: a scheduler that finds a recurring schedule further
// behind than the misfire threshold, with no downtime (a frozen process,
// an overloaded leader: here one jump of the clock), applies the misfire
// policy instead of replaying the backlog. A scheduler driven by the fake
// clock's own timers (Exact) never falls behind.
func testFallingBehind(t *testing.T, h *Harness) {
	if h.Exact {
		t.Skip("the scheduler runs on the fake clock's timers and never falls behind")
	}
	now := h.Clock.Now()
	h.put(t, &natsched.Schedule{ID: "behind.once", Every: time.Second})
	h.put(t, &natsched.Schedule{ID: "behind.skip", Every: time.Second, Misfire: natsched.MisfireSkip})
	h.put(t, &natsched.Schedule{ID: "behind.all", Every: time.Second, Misfire: natsched.MisfireAll})
	// One jump (Advance would run the firer's timer at 1s, and a quick
	// firer would fire on time there): planned 1s ... 30s, all but 30s missed.
	h.Clock.Jump(30*time.Second + 500*time.Millisecond)
	h.settle(t)
	at := func(s int) time.Time { return now.Add(time.Duration(s) * time.Second) }
	planned := func(id string) []time.Time {
		var out []time.Time
		for _, f := range h.Recorder.For(id) {
			out = append(out, f.Planned())
		}
		return out
	}
	require.Equal(t, []time.Time{at(29), at(30)}, planned("behind.once"), "once: the latest missed, then the cadence")
	require.Equal(t, []time.Time{at(30)}, planned("behind.skip"), "skip: only what is within the threshold")
	all := planned("behind.all")
	require.Len(t, all, 30, "all: every missed one, oldest first")
	for i, p := range all {
		require.Equal(t, at(i+1), p)
	}
}

// testJitterBelowInterval: a jitter as long as the gap between occurrences
// would make each wait for the one before; it is refused.
func testJitterBelowInterval(t *testing.T, h *Harness) {
	for _, s := range []*natsched.Schedule{
		{ID: "j.every", Subject: h.Subject + ".j", Every: 100 * time.Millisecond, Jitter: 5 * time.Second},
		{ID: "j.equal", Subject: h.Subject + ".j", Every: time.Second, Jitter: time.Second},
		{ID: "j.cron", Subject: h.Subject + ".j", Cron: "*/10 * * * * *", Jitter: 10 * time.Second},
	} {
		_, err := h.Scheduler.Put(ctx, s)
		var fe *natsched.FieldError
		require.ErrorAs(t, err, &fe, s.ID)
		require.Equal(t, "jitter", fe.Field, s.ID)
	}
	h.put(t, &natsched.Schedule{ID: "j.ok", Every: time.Second, Jitter: 999 * time.Millisecond})
	h.put(t, &natsched.Schedule{ID: "j.cronok", Cron: "0 9 * * *", Jitter: time.Hour})
}

func testManyExactlyOnce(t *testing.T, h *Harness) {
	const n = 500
	now := h.Clock.Now()
	rng := rand.New(rand.NewPCG(1, 2))
	planned := map[string]time.Time{}
	for i := range n {
		id := fmt.Sprintf("many.%03d", i)
		at := now.Add(time.Duration(rng.Int64N(int64(60 * time.Second))))
		planned[id] = at
		h.put(t, &natsched.Schedule{ID: id, Subject: h.Subject + ".many", At: at})
	}
	for h.Clock.Now().Before(now.Add(61 * time.Second)) {
		h.Clock.Advance(time.Duration(rng.Int64N(int64(3 * time.Second))))
	}
	Eventually(t, func() bool {
		c := 0
		for _, f := range h.Recorder.All() {
			if _, ok := planned[f.Msg.ScheduleID()]; ok {
				c++
			}
		}
		return c >= n
	}, "%d fires", n)
	h.settle(t)
	seen := map[string]int{}
	for _, f := range h.Recorder.All() {
		id := f.Msg.ScheduleID()
		if _, ok := planned[id]; !ok {
			continue
		}
		seen[id]++
		h.checkFire(t, f, id, planned[id], 1)
	}
	require.Len(t, seen, n)
	for id, c := range seen {
		require.Equal(t, 1, c, "%s fired %d times", id, c)
	}
}
