package natsched_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
)

// ParseCron remembers what it parsed; the one *Cron is then shared by
// every schedule with that expression and zone, and stepped from many
// goroutines at once (run with -race).
func TestParsedCronIsSharedSafely(t *testing.T) {
	a, err := natsched.ParseCron("0 9 1-7 * MON", "Europe/Berlin")
	require.NoError(t, err)
	b, err := natsched.ParseCron("0 9 1-7 * MON", "Europe/Berlin")
	require.NoError(t, err)
	require.Same(t, a, b, "parsed once")
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	want := a.Next(from)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for t, n := from, 0; n < 200; n++ {
				t = a.Next(t)
			}
		})
	}
	wg.Wait()
	require.Equal(t, want, a.Next(from), "stepping does not change the expression")
	_, err = natsched.ParseCron("61 * * * *", "")
	require.Error(t, err, "errors are not remembered as successes")
}
