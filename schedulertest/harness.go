// Package schedulertest is the conformance suite every natsched.Scheduler
// passes: the same behavioural tests, in simulated time, against the memory
// and the JetStream schedulers.
//
//	func TestConformance(t *testing.T) {
//		schedulertest.Run(t, func(t *testing.T) *schedulertest.Harness { ... })
//	}
package schedulertest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/clock"
	"github.com/natsched/natsched/natschedtest"
	"github.com/stretchr/testify/require"
)

// Start is where every harness clock must start: a Monday in winter, before
// the 2026 DST changes the suite crosses.
var Start = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// WaitTimeout bounds every wait of the suite.
var WaitTimeout = 15 * time.Second

// Harness is one scheduler under test, fresh for each test.
type Harness struct {
	Scheduler natsched.Scheduler
	// Clock drives the scheduler; it reads Start when the harness is made.
	Clock *clock.Fake
	// Recorder must receive every fired message (as the scheduler's
	// dispatcher, or from a subscription on Subject's stream).
	Recorder *Recorder
	// Subject prefix that test schedules publish to; the harness makes sure
	// a stream captures Subject + ".>" where one is needed.
	Subject string
	// Retention of done schedules as the scheduler was configured (0: the
	// retention test is skipped).
	Retention time.Duration
	// MaxPayload as configured (0: the 413 test is skipped).
	MaxPayload int
	// Outage stops every instance from firing, advances the clock by d and
	// lets a new leader take over (nil: misfire tests are skipped).
	Outage func(t *testing.T, d time.Duration)
	// Settle waits until everything due at Clock.Now() has been delivered
	// to the Recorder. Nil: a sentinel one-shot planned now is put and
	// awaited, which works for any scheduler that fires in due order.
	Settle func(t *testing.T)
	// Exact: the scheduler fires synchronously with the fake clock, so each
	// message arrives with the clock reading its planned time plus jitter.
	// Otherwise the suite only checks that nothing arrives early.
	Exact bool

	syncN atomic.Int64
}

// Fire is a message the Recorder received and the fake time it arrived.
type Fire struct {
	Msg *natsched.Message
	At  time.Time
}

// Planned is the Natsched-Planned header.
func (f Fire) Planned() time.Time { return f.Msg.Planned() }

// Run is the Natsched-Run header.
func (f Fire) Run() string { return f.Msg.Header.Get(natsched.HeaderRun) }

// Recorder collects fired messages. It is a natsched.Dispatcher.
type Recorder struct {
	clock clock.Clock
	mu    sync.Mutex
	fires []Fire
}

// NewRecorder stamps arrivals with c.
func NewRecorder(c clock.Clock) *Recorder { return &Recorder{clock: c} }

// Dispatch records m.
func (r *Recorder) Dispatch(_ context.Context, m *natsched.Message) error {
	r.Record(m)
	return nil
}

// Record records m.
func (r *Recorder) Record(m *natsched.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fires = append(r.fires, Fire{Msg: m, At: r.clock.Now()})
}

// All returns every fire so far.
func (r *Recorder) All() []Fire {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Fire(nil), r.fires...)
}

// For returns the fires of schedule id.
func (r *Recorder) For(id string) []Fire {
	var out []Fire
	for _, f := range r.All() {
		if f.Msg.ScheduleID() == id {
			out = append(out, f)
		}
	}
	return out
}

// WaitFor waits (bounded) until schedule id has at least n fires and
// returns them.
func (r *Recorder) WaitFor(t testing.TB, id string, n int) []Fire {
	t.Helper()
	var got []Fire
	Eventually(t, func() bool { got = r.For(id); return len(got) >= n },
		"schedule %s: want %d fires", id, n)
	return got
}

// Eventually polls cond until it holds or WaitTimeout passes.
func Eventually(t testing.TB, cond func() bool, format string, args ...any) {
	t.Helper()
	natschedtest.Eventually(t, WaitTimeout, cond, append([]any{format}, args...)...)
}

// settle waits until everything due now has been delivered.
func (h *Harness) settle(t *testing.T) {
	t.Helper()
	if h.Settle != nil {
		h.Settle(t)
		return
	}
	id := fmt.Sprintf("zzzz.sync.%d", h.syncN.Add(1))
	_, err := h.Scheduler.Put(context.Background(), &natsched.Schedule{
		ID: id, Subject: h.Subject + ".sync", At: h.Clock.Now(),
	})
	require.NoError(t, err)
	h.Recorder.WaitFor(t, id, 1)
}

// walkStep is how far walk moves the clock at a time: well under the
// default misfire threshold (1s).
const walkStep = 250 * time.Millisecond

// walk moves the clock forward by d in steps of walkStep, waiting after each
// for what fell due, as real time passes for a scheduler that keeps up. A
// single jump over several occurrences is, to a scheduler that does not run
// on the fake clock's timers, a frozen process: what it then finds more than
// the misfire threshold late is missed (testFallingBehind).
func (h *Harness) walk(t *testing.T, d time.Duration) {
	t.Helper()
	end := h.Clock.Now().Add(d)
	for now := h.Clock.Now(); now.Before(end); now = h.Clock.Now() {
		h.Clock.Advance(min(walkStep, end.Sub(now)))
		h.settle(t)
	}
}

// advance moves the clock by d and waits for what fell due.
func (h *Harness) advance(t *testing.T, d time.Duration) {
	t.Helper()
	h.Clock.Advance(d)
	h.settle(t)
}
