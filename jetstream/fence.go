package jetstream

import (
	"sync/atomic"
	"time"

	"github.com/natsched/natsched/clock"
)

// fence is how long this instance may publish occurrences: until its
// lease, as last confirmed, could lapse. The lease opens it at every
// confirmed renewal and closes it when the term ends; the firing path
// checks it before every publish and state write, not only before a batch,
// so that a process frozen mid-batch (a GC pause, SIGSTOP, a suspended VM)
// publishes nothing after it wakes up past its lease.
//
// Deadlines are kept as offsets from a reading of the lease clock taken at
// start: with the real clock the offsets come from Go's monotonic clock,
// which keeps counting while the process is stopped and never steps with
// the wall clock.
type fence struct {
	clk   clock.Clock
	base  time.Time
	until atomic.Int64 // offset from base; 0: closed
}

func newFence(clk clock.Clock) *fence { return &fence{clk: clk, base: clk.Now()} }

// open lets publishes through until t.
func (f *fence) open(t time.Time) { f.until.Store(max(int64(t.Sub(f.base)), 1)) }

// close stops publishes at once.
func (f *fence) close() { f.until.Store(0) }

// ok reports whether a publish may go out now.
func (f *fence) ok() bool {
	until := f.until.Load()
	return until != 0 && int64(f.clk.Now().Sub(f.base)) < until
}
