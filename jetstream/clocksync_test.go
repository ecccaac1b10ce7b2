package jetstream

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/clock"
	"github.com/natsched/natsched/natschedtest"
)

// skewedClock is the real clock read with an error, as a host whose clock
// is set wrong: durations are right, readings are off by d.
type skewedClock struct{ d time.Duration }

func (c skewedClock) Now() time.Time { return time.Now().Add(c.d) }
func (c skewedClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	return time.AfterFunc(d, f)
}

func TestSkewEstimateIsALowerBound(t *testing.T) {
	var k skew
	base := time.Unix(1000, 0)
	// The server is 5s ahead; deliveries took 1ms, 40ms and 3ms.
	for _, delay := range []time.Duration{time.Millisecond, 40 * time.Millisecond, 3 * time.Millisecond} {
		stored := base.Add(5 * time.Second)
		k.observe(stored, base.Add(delay))
		base = base.Add(time.Second)
	}
	require.Equal(t, 5*time.Second-time.Millisecond, k.get(), "the tightest lower bound")
}

// TestFiresByServerClock: an instance whose clock is 5s ahead or behind
// still fires on time by the server's clock, and never early.
func TestFiresByServerClock(t *testing.T) {
	t.Parallel()
	for _, skewBy := range []time.Duration{5 * time.Second, -5 * time.Second} {
		t.Run(fmt.Sprint(skewBy), func(t *testing.T) {
			t.Parallel()
			srv := natschedtest.RunServer(t)
			s := testScheduler(t, srv, "skewed", WithClock(skewedClock{skewBy}), WithClockSync(true))
			waitLeader(t, s)
			natschedtest.Eventually(t, 10*time.Second, func() bool {
				_, known := s.ClockOffset()
				return known
			}, "no clock offset estimate")
			off, _ := s.ClockOffset()
			require.InDelta(t, float64(-skewBy), float64(off), float64(100*time.Millisecond), "offset %s", off)

			var mu sync.Mutex
			var lateness []time.Duration
			nc := srv.Conn(t)
			_, err := nc.Subscribe("natsched.fire.skew", func(m *nats.Msg) {
				now := time.Now()
				planned := (&natsched.Message{Header: m.Header}).Planned()
				mu.Lock()
				lateness = append(lateness, now.Sub(planned))
				mu.Unlock()
			})
			require.NoError(t, err)
			require.NoError(t, nc.Flush())

			// Planned by the server's (here: the real) clock.
			const n = 20
			base := time.Now().Add(time.Second)
			for i := range n {
				_, err := s.Put(bg, &natsched.Schedule{ID: fmt.Sprintf("skew.%02d", i), Subject: "natsched.fire.skew",
					At: base.Add(time.Duration(i) * 50 * time.Millisecond)})
				require.NoError(t, err)
			}
			natschedtest.Eventually(t, 20*time.Second, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(lateness) >= n
			}, "all fired")
			mu.Lock()
			defer mu.Unlock()
			slices.Sort(lateness)
			t.Logf("host clock %s off: lateness min %s, max %s", skewBy, lateness[0], lateness[len(lateness)-1])
			require.GreaterOrEqual(t, lateness[0], time.Duration(0), "fired early")
			require.Less(t, lateness[len(lateness)-1], 500*time.Millisecond, "fired late")
		})
	}
}
