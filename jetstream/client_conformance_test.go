package jetstream

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched/client"
	"github.com/natsched/natsched/schedulertest"
)

// TestClientConformance runs the whole conformance suite through package
// client against the API of an in-process scheduler: every call is a
// request on natsched.api.*, answered by the scheduler, which runs on the
// suite's fake clock (the API reads the same clock, so "in" and triggers
// are accepted in simulated time). Outages restart the scheduler; the
// client, on a connection of its own, carries on with the next instance.
//
// Not parallel: it runs before the package's parallel tests rather than
// adding a third scheduler's load to their timing-sensitive ones.
func TestClientConformance(t *testing.T) {
	schedulertest.Run(t, func(t *testing.T) *schedulertest.Harness {
		h, srv := conformanceHarness(t)
		c, err := client.New(srv.Conn(t), client.WithTimeout(15*time.Second))
		require.NoError(t, err)
		h.Scheduler = c
		outage := h.Outage
		h.Outage = func(t *testing.T, d time.Duration) {
			outage(t, d)
			h.Scheduler = c
		}
		return h
	})
}
