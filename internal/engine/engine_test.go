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
		// all: every missed one, one per step, oldest first.
		{natsched.MisfireAll, 4 * time.Second, [][]time.Duration{{time.Second}, {2 * time.Second}, {3 * time.Second}, {4 * time.Second}, nil}},
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
