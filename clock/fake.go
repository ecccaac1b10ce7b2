package clock

import (
	"sync"
	"time"
)

// Fake is a Clock that only moves when told to. Timers whose deadline is
// reached by Advance or Set run synchronously in the caller's goroutine, in
// deadline order, with Now() equal to their deadline while they run; so a
// component driven by a Fake sees each timer fire exactly on time. A timer
// armed with a delay <= 0 runs at once in a new goroutine, as with the
// real clock.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	timers  map[*fakeTimer]struct{}
	seq     uint64
	advance sync.Mutex // one Advance at a time
	wg      sync.WaitGroup
}

// NewFake returns a Fake clock reading t.
func NewFake(t time.Time) *Fake {
	return &Fake{now: t, timers: make(map[*fakeTimer]struct{})}
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// AfterFunc arms f to run when the fake time reaches Now()+d.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	t := &fakeTimer{clock: f, fn: fn}
	t.Reset(d)
	return t
}

// Advance moves the clock forward by d, running every timer that falls due
// on the way, each at its own deadline.
func (f *Fake) Advance(d time.Duration) {
	f.Set(f.Now().Add(d))
}

// Jump moves the clock forward by d at once, as a frozen process or a
// suspended VM sees time when it resumes: every timer that fell due on the
// way runs, in deadline order, with the clock already at the end (Advance
// runs each at its own deadline instead).
func (f *Fake) Jump(d time.Duration) {
	f.advance.Lock()
	f.mu.Lock()
	f.now = f.now.Add(d)
	target := f.now
	f.mu.Unlock()
	f.advance.Unlock()
	f.Set(target)
}

// Set moves the clock to t (never backwards: an earlier t only runs timers
// already due), running due timers in deadline order.
func (f *Fake) Set(target time.Time) {
	f.advance.Lock()
	defer f.advance.Unlock()
	for {
		f.mu.Lock()
		var next *fakeTimer
		for t := range f.timers {
			if !t.when.After(target) && (next == nil || t.when.Before(next.when) ||
				(t.when.Equal(next.when) && t.seq < next.seq)) {
				next = t
			}
		}
		if next == nil {
			if target.After(f.now) {
				f.now = target
			}
			f.mu.Unlock()
			return
		}
		delete(f.timers, next)
		if next.when.After(f.now) {
			f.now = next.when
		}
		fn := next.fn
		f.mu.Unlock()
		fn()
	}
}

// Pending reports how many timers are armed.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// Wait waits for the goroutines of timers armed with a delay <= 0.
func (f *Fake) Wait() { f.wg.Wait() }

type fakeTimer struct {
	clock *Fake
	fn    func()
	when  time.Time
	seq   uint64
}

func (t *fakeTimer) Stop() bool {
	f := t.clock
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.timers[t]
	delete(f.timers, t)
	return ok
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	f := t.clock
	f.mu.Lock()
	_, active := f.timers[t]
	delete(f.timers, t)
	if d <= 0 {
		f.wg.Add(1)
		f.mu.Unlock()
		go func() {
			defer f.wg.Done()
			t.fn()
		}()
		return active
	}
	f.seq++
	t.seq = f.seq
	t.when = f.now.Add(d)
	f.timers[t] = struct{}{}
	f.mu.Unlock()
	return active
}
