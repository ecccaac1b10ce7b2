package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
)

var t0 = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

func every(t *testing.T, d time.Duration, misfire natsched.Misfire) *natsched.Schedule {
	t.Helper()
	s := &natsched.Schedule{ID: "s", Subject: "x", Every: d, Misfire: misfire}
	require.NoError(t, Accept(s, nil, t0, t0, 1))
	return s
}

func planned(occs []natsched.Occurrence) []time.Duration {
	var out []time.Duration
	for _, o := range occs {
		out = append(out, o.Planned.Sub(t0))
	}
	return out
}

// A scheduler that finds a schedule behind fires at most MaxFiresPerStep
// scheduled occurrences per step, and what is more than the threshold late
// follows the misfire policy.
func TestStepBudgetAndFallingBehind(t *testing.T) {
	o := Options{}.WithDefaults()
	for _, tc := range []struct {
		misfire natsched.Misfire
		now     time.Duration
		steps   [][]time.Duration // planned times (from t0) fired by each step
	}{
		// Within the threshold: one per step, then nothing due.
		{natsched.MisfireOnce, 2500 * time.Millisecond, [][]time.Duration{{2 * time.Second}, nil}},
		// 10s late: once fires the latest missed (8s), then the cadence (9s, 10s).
		{natsched.MisfireOnce, 10 * time.Second, [][]time.Duration{{8 * time.Second}, {9 * time.Second}, {10 * time.Second}, nil}},
		{natsched.MisfireSkip, 10 * time.Second, [][]time.Duration{{9 * time.Second}, {10 * time.Second}, nil}},
		// all: every missed one, oldest first, up to catchupPerStep a step.
		{natsched.MisfireAll, 4 * time.Second, [][]time.Duration{{time.Second, 2 * time.Second}, {3 * time.Second}, {4 * time.Second}, nil}},
	} {
		s := every(t, time.Second, tc.misfire)
		if tc.now < 9*time.Second && tc.misfire == natsched.MisfireOnce {
			// Start from an occurrence already fired on time.
			s.NextRun = t0.Add(2 * time.Second)
		}
		now := t0.Add(tc.now)
		for i, want := range tc.steps {
			occs, expired, err := Step(s, now, o)
			require.NoError(t, err)
			require.False(t, expired)
			require.Equal(t, want, planned(occs), "%s step %d", tc.misfire, i)
			due := Due(s, o)
			if want == nil {
				require.True(t, due.After(now), "%s: caught up", tc.misfire)
			} else if !due.After(now) {
				require.Equal(t, now, Requeue(due, now), "a backlog queues at now")
			}
		}
	}
}

func TestRequeue(t *testing.T) {
	now := t0.Add(time.Minute)
	require.Equal(t, now, Requeue(t0, now), "still due: behind what is due")
	require.Equal(t, now.Add(time.Second), Requeue(now.Add(time.Second), now), "due later: unchanged")
	require.True(t, Requeue(time.Time{}, now).IsZero(), "never due: unchanged")
}

func TestAccept(t *testing.T) {
	acc := t0.Add(10 * time.Second) // an intake message's timestamp
	now := t0.Add(12 * time.Second) // when it was applied
	prev := &natsched.Schedule{Created: t0.Add(-time.Hour)}
	for _, tc := range []struct {
		name  string
		in    natsched.Schedule
		prev  *natsched.Schedule
		check func(t *testing.T, s *natsched.Schedule)
	}{
		{"in counts from acceptance", natsched.Schedule{In: time.Minute}, nil, func(t *testing.T, s *natsched.Schedule) {
			require.Equal(t, acc.Add(time.Minute), s.At)
			require.Zero(t, s.In)
			require.Equal(t, s.At, s.NextRun)
			require.Equal(t, natsched.StatusActive, s.Status)
			require.Equal(t, now, s.Created)
		}},
		{"every anchors one interval after acceptance", natsched.Schedule{Every: 30 * time.Second}, nil, func(t *testing.T, s *natsched.Schedule) {
			require.Equal(t, acc.Add(30*time.Second), s.Anchor)
			require.Equal(t, acc.Add(30*time.Second), s.NextRun)
			require.Equal(t, natsched.DefaultMisfire, s.Misfire)
		}},
		{"every on the grid of a past start", natsched.Schedule{Every: 30 * time.Second, Start: t0.Add(-25 * time.Second)}, nil, func(t *testing.T, s *natsched.Schedule) {
			require.Equal(t, t0.Add(35*time.Second), s.NextRun, "first occurrence after acceptance")
		}},
		{"cron from acceptance", natsched.Schedule{Cron: "0 * * * *"}, nil, func(t *testing.T, s *natsched.Schedule) {
			require.Equal(t, t0.Add(time.Hour), s.NextRun)
		}},
		{"paused", natsched.Schedule{In: time.Minute, Paused: true}, nil, func(t *testing.T, s *natsched.Schedule) {
			require.Equal(t, natsched.StatusPaused, s.Status)
		}},
		{"a replacement keeps created and resets state", natsched.Schedule{In: time.Minute, Runs: 5, LastError: "x"}, prev, func(t *testing.T, s *natsched.Schedule) {
			require.Equal(t, prev.Created, s.Created)
			require.Zero(t, s.Runs)
			require.Empty(t, s.LastError)
			require.EqualValues(t, 7, s.Generation)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.in
			s.ID, s.Subject = "a", "x"
			require.NoError(t, Accept(&s, tc.prev, acc, now, 7))
			tc.check(t, &s)
		})
	}
	bad := natsched.Schedule{ID: "a", Subject: "x"}
	require.ErrorIs(t, Accept(&bad, nil, acc, now, 1), natsched.ErrInvalid, "Accept validates")
}

func TestDue(t *testing.T) {
	o := Options{Retention: time.Hour}.WithDefaults()
	at := t0.Add(time.Minute)
	for _, tc := range []struct {
		name string
		s    natsched.Schedule
		want time.Time
	}{
		{"next run", natsched.Schedule{NextRun: at, Status: natsched.StatusActive}, at},
		{"paused: not due", natsched.Schedule{NextRun: at, Paused: true, Status: natsched.StatusPaused}, time.Time{}},
		{"a trigger is due at once, paused or not", natsched.Schedule{NextRun: at, Paused: true, Triggers: []time.Time{at}}, time.Unix(0, 1)},
		{"done: due when its retention ends", natsched.Schedule{Status: natsched.StatusDone, Updated: t0}, t0.Add(time.Hour)},
		{"jitter moves it", natsched.Schedule{ID: "j", Generation: 3, NextRun: at, Jitter: time.Second, Status: natsched.StatusActive},
			at.Add(natsched.JitterFor("j", 3, at, time.Second))},
		{"nothing left", natsched.Schedule{Status: natsched.StatusActive}, time.Time{}},
	} {
		require.Equal(t, tc.want, Due(&tc.s, o), tc.name)
	}
}

func TestMissedAreCounted(t *testing.T) {
	for _, tc := range []struct {
		misfire natsched.Misfire
		catchup time.Duration
		want    int
	}{
		{natsched.MisfireSkip, 0, 8},              // 1s..8s skipped (9s and 10s fire)
		{natsched.MisfireOnce, 0, 7},              // 1s..7s collapsed into 8s
		{natsched.MisfireAll, 0, 0},               // every one fires
		{natsched.MisfireAll, 3 * time.Second, 6}, // 1s..6s are older than catchup
	} {
		var got int
		o := Options{OnMissed: func(p natsched.Misfire, n int) {
			require.Equal(t, tc.misfire, p)
			got += n
		}}.WithDefaults()
		s := every(t, time.Second, tc.misfire)
		s.Catchup = tc.catchup
		for range 20 {
			if _, _, err := Step(s, t0.Add(10*time.Second), o); err != nil {
				t.Fatal(err)
			}
		}
		require.Equal(t, tc.want, got, "%s catchup %s", tc.misfire, tc.catchup)
	}
}
