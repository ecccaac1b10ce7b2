// Package clock is the time source every natsched component takes, so that
// cron, DST, misfire and lease logic can run in simulated time.
package clock

import "time"

// Clock tells the time and runs functions after a delay.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d, like time.AfterFunc.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is the handle AfterFunc returns; its methods behave like those of
// *time.Timer created by time.AfterFunc.
type Timer interface {
	Stop() bool
	Reset(d time.Duration) bool
}

type real struct{}

// Real returns the wall clock.
func Real() Clock { return real{} }

func (real) Now() time.Time { return time.Now() }

func (real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// After returns a channel that receives once d has passed on c, and a
// function that stops it (reporting whether it stopped it first), like
// time.After with a Stop.
func After(c Clock, d time.Duration) (<-chan struct{}, func() bool) {
	ch := make(chan struct{}, 1)
	t := c.AfterFunc(d, func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	return ch, t.Stop
}
