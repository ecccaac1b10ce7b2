package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/natsched/natsched/clock"
	"github.com/natsched/natsched/memory"
	"github.com/natsched/natsched/schedulertest"
	"github.com/stretchr/testify/require"
)

func newHarness(t *testing.T) *schedulertest.Harness {
	c := clock.NewFake(schedulertest.Start)
	rec := schedulertest.NewRecorder(c)
	s, err := memory.New(memory.WithClock(c), memory.WithDispatcher(rec),
		memory.WithRetention(time.Hour), memory.WithMaxPayload(64<<10))
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, s.Close(context.Background()))
		c.Wait()
	})
	return &schedulertest.Harness{
		Scheduler: s, Clock: c, Recorder: rec, Subject: "natsched.fire.test",
		Retention: time.Hour, MaxPayload: 64 << 10, Exact: true,
		Outage: func(t *testing.T, d time.Duration) {
			s.StepDown()
			c.Advance(d)
			s.TakeOver()
		},
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	schedulertest.Run(t, newHarness)
}
