package clock

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)

func TestFakeRunsTimersInDeadlineOrderAtTheirDeadlines(t *testing.T) {
	c := NewFake(t0)
	var got []string
	var at []time.Time
	record := func(name string) func() {
		return func() { got = append(got, name); at = append(at, c.Now()) }
	}
	c.AfterFunc(3*time.Second, record("c"))
	c.AfterFunc(time.Second, record("a"))
	c.AfterFunc(2*time.Second, record("b1"))
	c.AfterFunc(2*time.Second, record("b2")) // same deadline: armed order
	c.AfterFunc(time.Hour, record("late"))
	c.Advance(3 * time.Second)
	require.Equal(t, []string{"a", "b1", "b2", "c"}, got)
	require.Equal(t, []time.Time{t0.Add(time.Second), t0.Add(2 * time.Second), t0.Add(2 * time.Second), t0.Add(3 * time.Second)}, at)
	require.Equal(t, t0.Add(3*time.Second), c.Now())
	require.Equal(t, 1, c.Pending())
}

func TestFakeTimerArmedByATimerRunsInTheSameAdvance(t *testing.T) {
	c := NewFake(t0)
	n := 0
	var tick func()
	tick = func() {
		n++
		c.AfterFunc(time.Second, tick)
	}
	c.AfterFunc(time.Second, tick)
	c.Advance(10 * time.Second)
	require.Equal(t, 10, n)
}

func TestFakeStopAndReset(t *testing.T) {
	c := NewFake(t0)
	fired := 0
	tm := c.AfterFunc(time.Second, func() { fired++ })
	require.True(t, tm.Stop())
	require.False(t, tm.Stop(), "already stopped")
	c.Advance(2 * time.Second)
	require.Zero(t, fired)
	require.False(t, tm.Reset(time.Second), "was not active")
	require.True(t, tm.Reset(5*time.Second), "active: reset moves it")
	c.Advance(time.Second)
	require.Zero(t, fired)
	c.Advance(4 * time.Second)
	require.Equal(t, 1, fired)
}

func TestFakeSetNeverGoesBack(t *testing.T) {
	c := NewFake(t0)
	c.Set(t0.Add(-time.Hour))
	require.Equal(t, t0, c.Now())
	c.Set(t0.Add(time.Hour))
	require.Equal(t, t0.Add(time.Hour), c.Now())
}

func TestFakeNonPositiveDelayRunsAtOnce(t *testing.T) {
	c := NewFake(t0)
	done := make(chan struct{})
	c.AfterFunc(0, func() { close(done) })
	c.Wait()
	<-done
	require.Equal(t, t0, c.Now())
}

func TestAfter(t *testing.T) {
	c := NewFake(t0)
	ch, stop := After(c, time.Second)
	c.Advance(time.Second)
	select {
	case <-ch:
	default:
		t.Fatal("After did not fire at its deadline")
	}
	ch, stop = After(c, time.Second)
	require.True(t, stop())
	c.Advance(time.Second)
	select {
	case <-ch:
		t.Fatal("a stopped After fired")
	default:
	}
}

func TestFakeJumpRunsTimersAtTheEnd(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFake(start)
	var saw []time.Time
	f.AfterFunc(time.Second, func() { saw = append(saw, f.Now()) })
	f.AfterFunc(2*time.Second, func() { saw = append(saw, f.Now()) })
	f.Jump(30 * time.Second)
	end := start.Add(30 * time.Second)
	if len(saw) != 2 || !saw[0].Equal(end) || !saw[1].Equal(end) {
		t.Fatalf("timers saw %v, want both at %v", saw, end)
	}
}
