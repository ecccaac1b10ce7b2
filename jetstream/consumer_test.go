package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/natschedtest"
)

// ctWait bounds every wait in these tests.
const ctWait = 10 * time.Second

// ctSetup starts a server with the fire and dead-letter streams.
func ctSetup(t *testing.T) (*natschedtest.Server, js.JetStream) {
	t.Helper()
	srv := natschedtest.RunServer(t)
	jsc := srv.JetStream(t)
	ctx := ctContext(t)
	_, err := jsc.CreateStream(ctx, js.StreamConfig{
		Name:       "NATSCHED_FIRE",
		Subjects:   []string{"natsched.fire.>"},
		Storage:    js.FileStorage,
		Duplicates: 2 * time.Minute,
	})
	require.NoError(t, err)
	require.NoError(t, EnsureDeadStream(ctx, jsc, 1))
	return srv, jsc
}

func ctContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), ctWait)
	t.Cleanup(cancel)
	return ctx
}

// ctEverything filters on every fired message, for dispatchers that
// cannot say what they handle.
var ctEverything = []string{"natsched.fire.>"}

// ctStart starts a consumer of d, closed in t.Cleanup. Retries are fast
// unless cfg says otherwise; a dispatcher other than a router takes every
// fired message unless cfg says otherwise.
func ctStart(t *testing.T, jsc js.JetStream, d natsched.Dispatcher, cfg ConsumerConfig) *Consumer {
	t.Helper()
	if cfg.Group == "" {
		cfg.Group = "test"
	}
	if _, ok := d.(*natsched.Router); !ok && cfg.Subjects == nil {
		cfg.Subjects = ctEverything
	}
	if cfg.Backoff == nil {
		cfg.Backoff = []time.Duration{10 * time.Millisecond}
	}
	if cfg.Logger == nil {
		cfg.Logger = ctLogger(t)
	}
	c, err := NewConsumer(jsc, d, cfg)
	require.NoError(t, err)
	require.NoError(t, c.Start(ctContext(t)))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ctWait)
		defer cancel()
		require.NoError(t, c.Close(ctx))
	})
	return c
}

// ctPublish stores a fired message and returns its stream sequence.
func ctPublish(t *testing.T, jsc js.JetStream, subject string, h nats.Header, data string) uint64 {
	t.Helper()
	m := &nats.Msg{Subject: subject, Header: h, Data: []byte(data)}
	ack, err := jsc.PublishMsg(ctContext(t), m)
	require.NoError(t, err)
	return ack.Sequence
}

func ctHeader(id string, kv ...string) nats.Header {
	h := nats.Header{}
	h.Set(natsched.HeaderMsgID, id+"@1")
	h.Set(natsched.HeaderID, id)
	h.Set(natsched.HeaderPlanned, "2026-11-27T21:00:00.25Z")
	h.Set(natsched.HeaderRun, "1")
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// ctWaitStats waits until cond holds for c's stats.
func ctWaitStats(t *testing.T, c *Consumer, what string, cond func(ConsumerStats) bool) {
	t.Helper()
	natschedtest.Eventually(t, ctWait, func() bool { return cond(c.Stats()) },
		"%s; stats %+v", what, ctLazy(func() string { return fmt.Sprintf("%+v", c.Stats()) }))
}

// ctLogger logs to the test's output, shown when it fails or with -v.
func ctLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type ctLazy func() string

func (f ctLazy) String() string { return f() }

// ctSettled waits until the durable has every message up to seq
// acknowledged or terminated, and nothing is pending or awaiting an ack.
func ctSettled(t *testing.T, jsc js.JetStream, group string, seq uint64) *js.ConsumerInfo {
	t.Helper()
	var info *js.ConsumerInfo
	natschedtest.Eventually(t, ctWait, func() bool {
		cons, err := jsc.Consumer(ctContext(t), "NATSCHED_FIRE", "natsched_"+group)
		if err != nil {
			return false
		}
		info, err = cons.Info(ctContext(t))
		return err == nil && info.AckFloor.Stream >= seq && info.NumAckPending == 0 && info.NumPending == 0
	}, "consumer natsched_%s settled up to %d; last info %s", group, seq, ctLazy(func() string {
		if info == nil {
			return "none"
		}
		return fmt.Sprintf("delivered %+v ack floor %+v ack pending %d redelivered %d waiting %d pending %d",
			info.Delivered, info.AckFloor, info.NumAckPending, info.NumRedelivered, info.NumWaiting, info.NumPending)
	}))
	return info
}

// ctDead returns the dead letters stored on subject, oldest first.
func ctDead(t *testing.T, jsc js.JetStream, subject string) []*js.RawStreamMsg {
	t.Helper()
	ctx := ctContext(t)
	s, err := jsc.Stream(ctx, "NATSCHED_DEAD")
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	var out []*js.RawStreamMsg
	for seq := info.State.FirstSeq; seq != 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, js.ErrMsgNotFound) {
			continue
		}
		require.NoError(t, err)
		if m.Subject == subject {
			out = append(out, m)
		}
	}
	return out
}

func ctDeadCount(t *testing.T, jsc js.JetStream) uint64 {
	t.Helper()
	s, err := jsc.Stream(ctContext(t), "NATSCHED_DEAD")
	require.NoError(t, err)
	info, err := s.Info(ctContext(t))
	require.NoError(t, err)
	return info.State.Msgs
}

// ctRecorder is a dispatcher that records calls and answers with fn.
type ctRecorder struct {
	mu    sync.Mutex
	calls []*natsched.Message
	fn    func(ctx context.Context, m *natsched.Message, call int) error
}

func (r *ctRecorder) Dispatch(ctx context.Context, m *natsched.Message) error {
	r.mu.Lock()
	r.calls = append(r.calls, m)
	n := len(r.calls)
	r.mu.Unlock()
	if r.fn == nil {
		return nil
	}
	return r.fn(ctx, m, n)
}

func (r *ctRecorder) call(i int) *natsched.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[i]
}

func (r *ctRecorder) count(subject string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.calls {
		if subject == "" || m.Subject == subject {
			n++
		}
	}
	return n
}

func TestConsumerAcksSuccess(t *testing.T) {
	t.Parallel()
	_, jsc := ctSetup(t)
	var deadline atomic.Pointer[time.Time]
	rec := &ctRecorder{fn: func(ctx context.Context, _ *natsched.Message, _ int) error {
		if d, ok := ctx.Deadline(); ok {
			deadline.Store(&d)
		}
		return nil
	}}
	const ackWait = 7 * time.Second
	c := ctStart(t, jsc, rec, ConsumerConfig{AckWait: ackWait})
	before := time.Now()
	seq := ctPublish(t, jsc, "natsched.fire.billing", ctHeader("billing.42", "X-Trace", "abc"), "hello")

	ctWaitStats(t, c, "acked", func(s ConsumerStats) bool { return s.Acked == 1 })
	info := ctSettled(t, jsc, "test", seq)
	require.Zero(t, info.NumRedelivered)
	require.Equal(t, ConsumerStats{Delivered: 1, Acked: 1}, c.Stats())
	require.Equal(t, 1, rec.count(""))
	m := rec.call(0)
	require.Equal(t, "natsched.fire.billing", m.Subject)
	require.Equal(t, "hello", string(m.Data))
	require.Equal(t, "billing.42", m.ScheduleID())
	require.Equal(t, "abc", m.Header.Get("X-Trace"))
	require.Equal(t, time.Date(2026, 11, 27, 21, 0, 0, 250e6, time.UTC), m.Planned())
	d := deadline.Load()
	require.NotNil(t, d, "handler context has no deadline")
	require.WithinRange(t, *d, before.Add(ackWait-time.Second), time.Now().Add(ackWait))
	require.Zero(t, ctDeadCount(t, jsc))
}

func TestConsumerRetriesThenSucceeds(t *testing.T) {
	t.Parallel()
	_, jsc := ctSetup(t)
	rec := &ctRecorder{fn: func(_ context.Context, _ *natsched.Message, call int) error {
		if call <= 2 {
			return fmt.Errorf("transient failure %d", call)
		}
		return nil
	}}
	c := ctStart(t, jsc, rec, ConsumerConfig{MaxDeliver: 5})
	seq := ctPublish(t, jsc, "natsched.fire.retry", ctHeader("retry"), "x")

	ctWaitStats(t, c, "acked", func(s ConsumerStats) bool { return s.Acked == 1 })
	info := ctSettled(t, jsc, "test", seq)
	require.Equal(t, ConsumerStats{Delivered: 3, Acked: 1, Naked: 2}, c.Stats())
	require.Equal(t, 3, rec.count("natsched.fire.retry"))
	require.Equal(t, uint64(3), info.Delivered.Consumer)
	require.Zero(t, ctDeadCount(t, jsc))
}

func TestConsumerDeadLettersAfterMaxDeliver(t *testing.T) {
	t.Parallel()
	_, jsc := ctSetup(t)
	rec := &ctRecorder{fn: func(_ context.Context, m *natsched.Message, _ int) error {
		if m.Subject == "natsched.fire.ok" {
			return nil
		}
		return errors.New("smtp refused\n\tline two")
	}}
	c := ctStart(t, jsc, rec, ConsumerConfig{MaxDeliver: 3})
	h := ctHeader("mail.7", "X-Trace", "t1", "Nats-Expected-Stream", "NATSCHED_FIRE")
	seq := ctPublish(t, jsc, "natsched.fire.mail", h, "payload")

	ctWaitStats(t, c, "dead-lettered", func(s ConsumerStats) bool { return s.DeadLettered == 1 })
	dead := ctDead(t, jsc, "natsched.dead.natsched.fire.mail")
	require.Len(t, dead, 1)
	dl := dead[0]
	require.Equal(t, "payload", string(dl.Data))
	require.Equal(t, "smtp refused line two", dl.Header.Get("Natsched-Error"))
	require.Equal(t, "3", dl.Header.Get("Natsched-Deliveries"))
	require.Equal(t, "mail.7", dl.Header.Get(natsched.HeaderID))
	require.Equal(t, h.Get(natsched.HeaderPlanned), dl.Header.Get(natsched.HeaderPlanned))
	require.Equal(t, "t1", dl.Header.Get("X-Trace"))
	require.Empty(t, dl.Header.Get("Nats-Expected-Stream"))
	require.NotEqual(t, h.Get(natsched.HeaderMsgID), dl.Header.Get(natsched.HeaderMsgID))

	// Terminated: the ack floor passes it and a later message, and nothing
	// awaits redelivery.
	okSeq := ctPublish(t, jsc, "natsched.fire.ok", ctHeader("ok"), "")
	ctWaitStats(t, c, "later message acked", func(s ConsumerStats) bool { return s.Acked == 1 })
	info := ctSettled(t, jsc, "test", okSeq)
	require.Greater(t, okSeq, seq)
	require.Equal(t, 3, rec.count("natsched.fire.mail"))
	require.Equal(t, uint64(4), info.Delivered.Consumer)
	require.Equal(t, ConsumerStats{Delivered: 4, Acked: 1, Naked: 2, DeadLettered: 1}, c.Stats())
	require.Equal(t, uint64(1), ctDeadCount(t, jsc))
}

func TestConsumerPanicIsAFailure(t *testing.T) {
	t.Parallel()
	_, jsc := ctSetup(t)
	rec := &ctRecorder{fn: func(_ context.Context, m *natsched.Message, _ int) error {
		if m.Subject == "natsched.fire.panic" {
			panic("nil map in handler")
		}
		return nil
	}}
	c := ctStart(t, jsc, rec, ConsumerConfig{MaxDeliver: 2})
	ctPublish(t, jsc, "natsched.fire.panic", ctHeader("p"), "")
	nextSeq := ctPublish(t, jsc, "natsched.fire.next", ctHeader("n"), "")

	ctWaitStats(t, c, "next handled and panic dead-lettered", func(s ConsumerStats) bool {
		return s.Acked == 1 && s.DeadLettered == 1
	})
	ctSettled(t, jsc, "test", nextSeq)
	require.Equal(t, 2, rec.count("natsched.fire.panic"))
	require.Equal(t, 1, rec.count("natsched.fire.next"))
	dead := ctDead(t, jsc, "natsched.dead.natsched.fire.panic")
	require.Len(t, dead, 1)
	require.Contains(t, dead[0].Header.Get("Natsched-Error"), natsched.ErrHandlerPanic.Error())
	require.Contains(t, dead[0].Header.Get("Natsched-Error"), "nil map in handler")
	require.Equal(t, "2", dead[0].Header.Get("Natsched-Deliveries"))
}

type ctReminder struct {
	Text string `json:"text"`
}

// ctRouter returns a router with a handler for ctReminder, type
// "reminder", at natsched.fire.reminder, and for each subject pattern;
// handled counts the calls of them all.
func ctRouter(t *testing.T, handled *atomic.Int32, patterns ...string) *natsched.Router {
	t.Helper()
	router := natsched.NewRouter(nil)
	require.NoError(t, natsched.Register[ctReminder](router.Registry(), "reminder"))
	require.NoError(t, natsched.Handle(router, func(context.Context, ctReminder) error {
		handled.Add(1)
		return nil
	}))
	for _, p := range patterns {
		require.NoError(t, router.HandleSubject(p, func(context.Context, *natsched.Message) error {
			handled.Add(1)
			return nil
		}))
	}
	return router
}

func TestConsumerDeadLettersUndecodableAtOnce(t *testing.T) {
	t.Parallel()
	_, jsc := ctSetup(t)
	var handled atomic.Int32
	c := ctStart(t, jsc, ctRouter(t, &handled), ConsumerConfig{MaxDeliver: 5})
	const data = `{"text": 42`
	seq := ctPublish(t, jsc, "natsched.fire.reminder", ctHeader("typed", natsched.HeaderType, "reminder"), data)

	ctWaitStats(t, c, "dead-lettered", func(s ConsumerStats) bool { return s.DeadLettered == 1 })
	ctSettled(t, jsc, "test", seq)
	require.Equal(t, ConsumerStats{Delivered: 1, DeadLettered: 1}, c.Stats())
	require.Zero(t, handled.Load())
	dead := ctDead(t, jsc, "natsched.dead.natsched.fire.reminder")
	require.Len(t, dead, 1)
	require.Equal(t, "1", dead[0].Header.Get("Natsched-Deliveries"))
	require.Contains(t, dead[0].Header.Get("Natsched-Error"), natsched.ErrDecode.Error())
	require.Equal(t, "reminder", dead[0].Header.Get(natsched.HeaderType))
	require.Equal(t, data, string(dead[0].Data))
}

// TestConsumerSkipsWhatNoHandlerTakes: a message on the group's filter
// that no handler of the group was registered for is terminated once and
// never dead-lettered; the group goes on with its own messages.
func TestConsumerSkipsWhatNoHandlerTakes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		patterns []string // subject handlers besides the typed one
		subjects []string // ConsumerConfig.Subjects
		subject  string   // of the message nobody handles
		typ      string   // its Natsched-Type
	}{
		{"untyped on a type's subject", nil, nil, "natsched.fire.reminder", ""},
		{"typed without a handler on a subject pattern", []string{"natsched.fire.orders.>"}, nil, "natsched.fire.orders.new", "invoice"},
		{"untyped under explicit subjects wider than the handlers", nil, ctEverything, "natsched.fire.demo", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, jsc := ctSetup(t)
			var handled atomic.Int32
			c := ctStart(t, jsc, ctRouter(t, &handled, tc.patterns...), ConsumerConfig{Subjects: tc.subjects, MaxDeliver: 2})
			h := ctHeader("stray")
			if tc.typ != "" {
				h.Set(natsched.HeaderType, tc.typ)
			}
			ctPublish(t, jsc, tc.subject, h, `{}`)
			seq := ctPublish(t, jsc, "natsched.fire.reminder", ctHeader("mine", natsched.HeaderType, "reminder"), `{"text":"hi"}`)

			ctWaitStats(t, c, "skipped and handled", func(s ConsumerStats) bool { return s.Skipped == 1 && s.Acked == 1 })
			info := ctSettled(t, jsc, "test", seq)
			require.Equal(t, ConsumerStats{Delivered: 2, Acked: 1, Skipped: 1}, c.Stats())
			require.Zero(t, info.NumRedelivered)
			require.EqualValues(t, 1, handled.Load())
			require.Zero(t, ctDeadCount(t, jsc), "a message the group has no handler for was dead-lettered")
		})
	}
}

func TestConsumerGroupSharesWork(t *testing.T) {
	t.Parallel()
	srv, jsc := ctSetup(t)
	const n = 40
	var mu sync.Mutex
	seen := map[string]int{}
	var byB atomic.Int32
	record := func(m *natsched.Message) {
		mu.Lock()
		seen[m.ScheduleID()]++
		mu.Unlock()
	}
	// A holds its first message until B has handled one, so both must work.
	a := ctRecorder{fn: func(ctx context.Context, m *natsched.Message, call int) error {
		if call == 1 {
			for byB.Load() == 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(natschedtest.PollInterval):
				}
			}
		}
		record(m)
		return nil
	}}
	b := ctRecorder{fn: func(_ context.Context, m *natsched.Message, _ int) error {
		record(m)
		byB.Add(1)
		return nil
	}}
	ca := ctStart(t, jsc, &a, ConsumerConfig{Group: "shared"})
	cb := ctStart(t, srv.JetStream(t), &b, ConsumerConfig{Group: "shared"})
	var last uint64
	for i := range n {
		last = ctPublish(t, jsc, fmt.Sprintf("natsched.fire.s%d", i), ctHeader(fmt.Sprintf("s%d", i)), "")
	}

	natschedtest.Eventually(t, ctWait, func() bool {
		return ca.Stats().Acked+cb.Stats().Acked == n
	}, "all acked")
	ctSettled(t, jsc, "shared", last)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, n)
	for id, k := range seen {
		require.Equal(t, 1, k, "message %s handled %d times", id, k)
	}
	require.NotZero(t, ca.Stats().Acked)
	require.NotZero(t, cb.Stats().Acked)
	require.Equal(t, uint64(n), ca.Stats().Delivered+cb.Stats().Delivered)
}

func TestConsumerCloseWaitsForHandler(t *testing.T) {
	t.Parallel()
	_, jsc := ctSetup(t)
	started := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	rec := &ctRecorder{fn: func(context.Context, *natsched.Message, int) error {
		close(started)
		<-release
		finished.Store(true)
		return nil
	}}
	c, err := NewConsumer(jsc, rec, ConsumerConfig{Group: "closing", Subjects: ctEverything, Logger: ctLogger(t)})
	require.NoError(t, err)
	require.NoError(t, c.Start(ctContext(t)))
	seq := ctPublish(t, jsc, "natsched.fire.slow", ctHeader("slow"), "")
	select {
	case <-started:
	case <-time.After(ctWait):
		t.Fatal("handler not called")
	}

	closed := make(chan error, 1)
	go func() { closed <- c.Close(ctContext(t)) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v while a handler was running", err)
	default:
	}
	close(release)
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(ctWait):
		t.Fatal("Close did not return after the handler did")
	}
	require.True(t, finished.Load(), "Close returned before the handler")
	require.Equal(t, uint64(1), c.Stats().Acked)
	ctSettled(t, jsc, "closing", seq)

	require.NoError(t, c.Close(ctContext(t)), "second Close")
	require.ErrorIs(t, c.Start(ctContext(t)), natsched.ErrClosed)

	never, err := NewConsumer(jsc, rec, ConsumerConfig{Group: "never", Subjects: ctEverything})
	require.NoError(t, err)
	require.NoError(t, never.Close(ctContext(t)), "Close before Start")
	require.NoError(t, never.Close(ctContext(t)))
	require.ErrorIs(t, never.Start(ctContext(t)), natsched.ErrClosed)
}

func TestConsumerCloseTimeoutCancelsHandler(t *testing.T) {
	t.Parallel()
	_, jsc := ctSetup(t)
	started := make(chan struct{})
	var once sync.Once
	var cancelled atomic.Bool
	rec := &ctRecorder{fn: func(ctx context.Context, _ *natsched.Message, _ int) error {
		once.Do(func() { close(started) })
		<-ctx.Done()
		cancelled.Store(true)
		return ctx.Err()
	}}
	c, err := NewConsumer(jsc, rec, ConsumerConfig{Group: "stuck", Subjects: ctEverything, MaxDeliver: 1, Logger: ctLogger(t)})
	require.NoError(t, err)
	require.NoError(t, c.Start(ctContext(t)))
	ctPublish(t, jsc, "natsched.fire.stuck", ctHeader("stuck"), "")
	select {
	case <-started:
	case <-time.After(ctWait):
		t.Fatal("handler not called")
	}

	ctx, cancel := context.WithTimeout(ctContext(t), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, c.Close(ctx), context.DeadlineExceeded)
	require.NoError(t, c.Close(ctContext(t)), "Close after the handler gave up")
	require.True(t, cancelled.Load())
	// Cut short by Close, not the message's fault: nak'ed for redelivery,
	// not dead-lettered, even though MaxDeliver is 1.
	st := c.Stats()
	require.NotZero(t, st.Naked)
	require.Zero(t, st.Acked)
	require.Zero(t, st.DeadLettered)
	require.Zero(t, ctDeadCount(t, jsc))
}

func TestConsumerSurvivesServerRestart(t *testing.T) {
	t.Parallel()
	srv, jsc := ctSetup(t)
	rec := &ctRecorder{}
	c, err := NewConsumer(jsc, rec, ConsumerConfig{Group: "restart", Subjects: ctEverything, Logger: ctLogger(t)})
	require.NoError(t, err)
	require.NoError(t, c.Start(ctContext(t)))
	first := ctPublish(t, jsc, "natsched.fire.before", ctHeader("before"), "")
	ctWaitStats(t, c, "acked before restart", func(s ConsumerStats) bool { return s.Acked == 1 })
	ctSettled(t, jsc, "restart", first)

	srv.Restart(t)
	var seq uint64
	natschedtest.Eventually(t, ctWait, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		m := &nats.Msg{Subject: "natsched.fire.after", Header: ctHeader("after"), Data: []byte("x")}
		ack, err := jsc.PublishMsg(ctx, m) // Nats-Msg-Id makes retries safe
		if err != nil {
			return false
		}
		seq = ack.Sequence
		return true
	}, "publish after restart")
	ctWaitStats(t, c, "acked after restart", func(s ConsumerStats) bool { return s.Acked == 2 })
	ctSettled(t, jsc, "restart", seq)
	require.Equal(t, 1, rec.count("natsched.fire.after"))
	require.NoError(t, c.Close(ctContext(t)))
}

func TestConsumerResumesWhenDurableDeleted(t *testing.T) {
	t.Parallel()
	_, jsc := ctSetup(t)
	rec := &ctRecorder{}
	c := ctStart(t, jsc, rec, ConsumerConfig{Group: "phoenix"})
	first := ctPublish(t, jsc, "natsched.fire.one", ctHeader("one"), "")
	ctWaitStats(t, c, "first acked", func(s ConsumerStats) bool { return s.Acked == 1 })
	// Delete while a pull request waits, so that the server tells the
	// client (a request racing the deletion is dropped, and only noticed
	// when heartbeats go missing, after 30s).
	natschedtest.Eventually(t, ctWait, func() bool {
		info := ctSettled(t, jsc, "phoenix", first)
		return info.NumWaiting > 0
	}, "pull request waiting")

	require.NoError(t, jsc.DeleteConsumer(ctContext(t), "NATSCHED_FIRE", "natsched_phoenix"))
	seq := ctPublish(t, jsc, "natsched.fire.two", ctHeader("two"), "")
	// The recreated durable starts after the last message this instance
	// received, so "two", fired while there was no durable, still arrives,
	// and "one" does not come back.
	natschedtest.Eventually(t, ctWait, func() bool { return c.Stats().Acked == 2 && rec.count("natsched.fire.two") == 1 },
		"second acked; stats %v; durable %v", ctLazy(func() string { return fmt.Sprintf("%+v", c.Stats()) }),
		ctLazy(func() string {
			cons, err := jsc.Consumer(context.Background(), "NATSCHED_FIRE", "natsched_phoenix")
			if err != nil {
				return err.Error()
			}
			info, err := cons.Info(context.Background())
			if err != nil {
				return err.Error()
			}
			return fmt.Sprintf("%+v waiting %d", info.Delivered, info.NumWaiting)
		}))
	ctSettled(t, jsc, "phoenix", seq)
	require.Equal(t, 1, rec.count("natsched.fire.one"))
}

func TestConsumerConfigValidation(t *testing.T) {
	t.Parallel()
	d := natsched.DispatcherFunc(func(context.Context, *natsched.Message) error { return nil })
	router := natsched.NewRouter(nil) // reports its subjects, so only cfg is at fault below
	jsc := natschedtest.RunServer(t).JetStream(t)
	for _, tc := range []struct {
		name, want string
		cfg        ConsumerConfig
	}{
		{"no group", "group", ConsumerConfig{}},
		{"dotted group", "group", ConsumerConfig{Group: "a.b"}},
		{"wildcard group", "group", ConsumerConfig{Group: "a*"}},
		{"dotted prefix", "prefix", ConsumerConfig{Group: "g", Prefix: "a.b"}},
		{"long prefix", "prefix", ConsumerConfig{Group: "g", Prefix: strings.Repeat("p", 33)}},
		{"negative max deliver", "max deliver", ConsumerConfig{Group: "g", MaxDeliver: -1}},
		{"negative backoff", "backoff", ConsumerConfig{Group: "g", Backoff: []time.Duration{-time.Second}}},
		{"negative ack wait", "ack wait", ConsumerConfig{Group: "g", AckWait: -time.Second}},
		{"negative concurrency", "concurrency", ConsumerConfig{Group: "g", Concurrency: -1}},
		{"wildcard dead prefix", "dead prefix", ConsumerConfig{Group: "g", DeadPrefix: "dead.*"}},
		{"bad subject", "subject", ConsumerConfig{Group: "g", Subjects: []string{"a..b"}}},
		{"bad stream", "stream", ConsumerConfig{Group: "g", Stream: "A.B"}},
	} {
		_, err := NewConsumer(jsc, router, tc.cfg)
		require.ErrorIs(t, err, ErrInvalidOption, tc.name)
		require.ErrorContains(t, err, tc.want, tc.name)
	}
	_, err := NewConsumer(nil, d, ConsumerConfig{Group: "g", Subjects: ctEverything})
	require.ErrorIs(t, err, ErrInvalidOption)
	_, err = NewConsumer(jsc, nil, ConsumerConfig{Group: "g"})
	require.ErrorIs(t, err, ErrInvalidOption)
	_, err = NewConsumer(jsc, (*natsched.Router)(nil), ConsumerConfig{Group: "g"})
	require.ErrorIs(t, err, ErrInvalidOption)
	// A dispatcher that cannot say what it handles needs Subjects, rather
	// than taking everything.
	_, err = NewConsumer(jsc, d, ConsumerConfig{Group: "g"})
	require.ErrorIs(t, err, ErrInvalidOption)
	require.ErrorContains(t, err, "set ConsumerConfig.Subjects")

	c, err := NewConsumer(jsc, router, ConsumerConfig{Group: "g-1_x"})
	require.NoError(t, err)
	require.Equal(t, "natsched_g-1_x", c.Name())
	require.Equal(t, ConsumerConfig{
		Group: "g-1_x", Prefix: "natsched", Stream: "NATSCHED_FIRE",
		MaxDeliver: 5, Backoff: []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute},
		AckWait: 30 * time.Second, Concurrency: 1, DeadPrefix: "natsched.dead", Logger: c.cfg.Logger,
	}, c.cfg)
	require.NotNil(t, c.cfg.Logger)
	require.Equal(t, []time.Duration{time.Second, time.Second, 5 * time.Second, 2 * time.Minute, 2 * time.Minute},
		[]time.Duration{c.backoff(0), c.backoff(1), c.backoff(2), c.backoff(4), c.backoff(9)})

	c, err = NewConsumer(jsc, d, ConsumerConfig{Group: "g", Prefix: "acme", Subjects: []string{"acme.fire.x"}})
	require.NoError(t, err)
	require.Equal(t, "acme_g", c.Name())
	require.Equal(t, "ACME_FIRE", c.cfg.Stream)
	require.Equal(t, "acme.dead", c.cfg.DeadPrefix)
}

func TestDeadLetterErrorText(t *testing.T) {
	t.Parallel()
	require.Equal(t, "a b c", oneLine("a\r\n\tb  c\n", MaxDeadErrorLen))
	long := strings.Repeat("é", 600) // 1200 bytes
	got := oneLine(long, MaxDeadErrorLen)
	require.LessOrEqual(t, len(got), MaxDeadErrorLen)
	require.Equal(t, MaxDeadErrorLen, len(got)) // é is 2 bytes: cut falls on a boundary
	require.True(t, utf8.ValidString(got))
	got = oneLine("x"+long, MaxDeadErrorLen)
	require.Equal(t, MaxDeadErrorLen-1, len(got))
	require.True(t, utf8.ValidString(got))
}

func TestDeadLetterStreamUnavailableNaks(t *testing.T) {
	t.Parallel()
	_, jsc := ctSetup(t)
	rec := &ctRecorder{fn: func(context.Context, *natsched.Message, int) error { return errors.New("always") }}
	// No stream captures this prefix: the publish fails, the message stays.
	c := ctStart(t, jsc, rec, ConsumerConfig{MaxDeliver: 1, DeadPrefix: "nowhere"})
	ctPublish(t, jsc, "natsched.fire.kept", ctHeader("kept"), "")
	ctWaitStats(t, c, "nak'ed after failed dead letters", func(s ConsumerStats) bool { return s.Naked >= 2 })
	require.Zero(t, c.Stats().DeadLettered)
	require.Zero(t, c.Stats().Acked)
	cons, err := jsc.Consumer(ctContext(t), "NATSCHED_FIRE", "natsched_test")
	require.NoError(t, err)
	info, err := cons.Info(ctContext(t))
	require.NoError(t, err)
	require.Zero(t, info.AckFloor.Stream, "message terminated without a dead letter")
	// Only the first delivery reached the handler; later ones retried the
	// dead letter.
	require.Equal(t, 1, rec.count(""))
}

func TestEnsureDeadStream(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	jsc := srv.JetStream(t)
	ctx := ctContext(t)
	require.NoError(t, EnsureDeadStream(ctx, jsc, 0))
	require.NoError(t, EnsureDeadStream(ctx, jsc, 1), "idempotent")
	s, err := jsc.Stream(ctx, "NATSCHED_DEAD")
	require.NoError(t, err)
	cfg := s.CachedInfo().Config
	require.ElementsMatch(t, []string{"natsched.dead.>", "natsched.rejected.>"}, cfg.Subjects)
	require.Equal(t, js.FileStorage, cfg.Storage)
	require.Equal(t, 1, cfg.Replicas)
	require.ErrorIs(t, EnsureDeadStream(ctx, jsc, -1), natsched.ErrInvalid)
}

// ctDurable returns the durable's info.
func ctDurable(t *testing.T, jsc js.JetStream, name string) *js.ConsumerInfo {
	t.Helper()
	cons, err := jsc.Consumer(ctContext(t), "NATSCHED_FIRE", name)
	require.NoError(t, err)
	info, err := cons.Info(ctContext(t))
	require.NoError(t, err)
	return info
}

// ctEarlier publishes what a daemon fired before the group existed: n
// untyped messages on natsched.fire.demo and one typed reminder.
func ctEarlier(t *testing.T, jsc js.JetStream, n int) {
	t.Helper()
	for i := range n {
		ctPublish(t, jsc, "natsched.fire.demo", ctHeader(fmt.Sprintf("hello%d", i)), strings.Repeat("x", 1024))
	}
	ctPublish(t, jsc, "natsched.fire.reminder", ctHeader("early", natsched.HeaderType, "reminder"), `{"text":"early"}`)
}

// TestConsumerNewGroupTakesOnlyNewMessagesOfItsTypes is the user's report:
// a group started next to a daemon that had fired 17 untyped messages
// dead-lettered them all. Now it takes none of them, nor the earlier
// message of its own type, and handles what is fired after it started.
func TestConsumerNewGroupTakesOnlyNewMessagesOfItsTypes(t *testing.T) {
	t.Parallel()
	_, jsc := ctSetup(t)
	ctEarlier(t, jsc, 17)
	var handled atomic.Int32
	c := ctStart(t, jsc, ctRouter(t, &handled), ConsumerConfig{Group: "mailer"})
	info := ctDurable(t, jsc, "natsched_mailer")
	require.Equal(t, js.DeliverNewPolicy, info.Config.DeliverPolicy)
	require.Equal(t, []string{"natsched.fire.reminder"}, info.Config.FilterSubjects)

	seq := ctPublish(t, jsc, "natsched.fire.reminder", ctHeader("late", natsched.HeaderType, "reminder"), `{"text":"late"}`)
	ctWaitStats(t, c, "handled", func(s ConsumerStats) bool { return s.Acked == 1 })
	info = ctSettled(t, jsc, "mailer", seq)
	require.Equal(t, ConsumerStats{Delivered: 1, Acked: 1}, c.Stats())
	require.EqualValues(t, 1, handled.Load())
	require.Equal(t, uint64(1), info.Delivered.Consumer, "the durable delivered earlier messages")
	require.Zero(t, ctDeadCount(t, jsc))
}

func TestConsumerFromStartReadsEarlierMessages(t *testing.T) {
	t.Parallel()
	_, jsc := ctSetup(t)
	ctEarlier(t, jsc, 3)
	var handled atomic.Int32
	c := ctStart(t, jsc, ctRouter(t, &handled), ConsumerConfig{Group: "history", FromStart: true})
	seq := ctPublish(t, jsc, "natsched.fire.reminder", ctHeader("late", natsched.HeaderType, "reminder"), `{"text":"late"}`)

	ctWaitStats(t, c, "both reminders handled", func(s ConsumerStats) bool { return s.Acked == 2 })
	ctSettled(t, jsc, "history", seq)
	require.Equal(t, js.DeliverAllPolicy, ctDurable(t, jsc, "natsched_history").Config.DeliverPolicy)
	// The untyped messages are outside the filter: neither handled nor
	// dead-lettered.
	require.Equal(t, ConsumerStats{Delivered: 2, Acked: 2}, c.Stats())
	require.EqualValues(t, 2, handled.Load())
	require.Zero(t, ctDeadCount(t, jsc))
}

type ctInvoice struct {
	N int `json:"n"`
}

func TestConsumerGroupsTakeTheirOwnTypes(t *testing.T) {
	t.Parallel()
	_, jsc := ctSetup(t)
	reg := natsched.NewRegistry()
	require.NoError(t, natsched.Register[ctReminder](reg, "reminder"))
	require.NoError(t, natsched.Register[ctInvoice](reg, "billing.invoice"))
	var reminders, invoices atomic.Int32
	mailer, billing := natsched.NewRouter(reg), natsched.NewRouter(reg)
	require.NoError(t, natsched.Handle(mailer, func(context.Context, ctReminder) error { reminders.Add(1); return nil }))
	require.NoError(t, natsched.Handle(billing, func(context.Context, ctInvoice) error { invoices.Add(1); return nil }))
	cm := ctStart(t, jsc, mailer, ConsumerConfig{Group: "mailer"})
	cb := ctStart(t, jsc, billing, ConsumerConfig{Group: "billing"})

	var lastReminder, lastInvoice uint64
	for i := range 3 {
		lastReminder = ctPublish(t, jsc, "natsched.fire.reminder", ctHeader(fmt.Sprintf("r%d", i), natsched.HeaderType, "reminder"), `{}`)
		lastInvoice = ctPublish(t, jsc, "natsched.fire.billing.invoice", ctHeader(fmt.Sprintf("i%d", i), natsched.HeaderType, "billing.invoice"), `{}`)
	}
	ctPublish(t, jsc, "natsched.fire.demo", ctHeader("neither"), "")

	ctWaitStats(t, cm, "reminders handled", func(s ConsumerStats) bool { return s.Acked == 3 })
	ctWaitStats(t, cb, "invoices handled", func(s ConsumerStats) bool { return s.Acked == 3 })
	ctSettled(t, jsc, "mailer", lastReminder)
	ctSettled(t, jsc, "billing", lastInvoice)
	require.Equal(t, ConsumerStats{Delivered: 3, Acked: 3}, cm.Stats())
	require.Equal(t, ConsumerStats{Delivered: 3, Acked: 3}, cb.Stats())
	require.EqualValues(t, 3, reminders.Load())
	require.EqualValues(t, 3, invoices.Load())
	require.Equal(t, []string{"natsched.fire.billing.invoice"}, ctDurable(t, jsc, "natsched_billing").Config.FilterSubjects)
	require.Zero(t, ctDeadCount(t, jsc))
}

// TestConsumerRestartUpdatesFilter: a type added to a group's router is in
// its durable's filter after a restart, and the durable keeps its
// position, including one made by an older natsched (deliver all, the
// whole fire stream) whose deliver policy the server will not change.
func TestConsumerRestartUpdatesFilter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		old  func(t *testing.T, jsc js.JetStream) // leaves the durable natsched_test behind
	}{
		{"durable made by this version", func(t *testing.T, jsc js.JetStream) {
			var handled atomic.Int32
			c := ctStart(t, jsc, ctRouter(t, &handled), ConsumerConfig{})
			seq := ctPublish(t, jsc, "natsched.fire.reminder", ctHeader("r1", natsched.HeaderType, "reminder"), `{}`)
			ctWaitStats(t, c, "first reminder handled", func(s ConsumerStats) bool { return s.Acked == 1 })
			ctSettled(t, jsc, "test", seq)
			require.NoError(t, c.Close(ctContext(t)))
		}},
		{"durable made by an older version", func(t *testing.T, jsc js.JetStream) {
			cons, err := jsc.CreateConsumer(ctContext(t), "NATSCHED_FIRE", js.ConsumerConfig{
				Durable: "natsched_test", DeliverPolicy: js.DeliverAllPolicy, AckPolicy: js.AckExplicitPolicy,
				AckWait: DefaultConsumerAckWait, MaxDeliver: -1, FilterSubjects: ctEverything,
			})
			require.NoError(t, err)
			seq := ctPublish(t, jsc, "natsched.fire.reminder", ctHeader("r1", natsched.HeaderType, "reminder"), `{}`)
			m, err := cons.Next(js.FetchMaxWait(ctWait))
			require.NoError(t, err)
			require.NoError(t, m.DoubleAck(ctContext(t)))
			ctSettled(t, jsc, "test", seq)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, jsc := ctSetup(t)
			tc.old(t, jsc)
			before := ctDurable(t, jsc, "natsched_test")
			ctPublish(t, jsc, "natsched.fire.demo", ctHeader("untyped"), "") // on the old filter only

			var handled atomic.Int32
			router := ctRouter(t, &handled)
			require.NoError(t, natsched.Register[ctInvoice](router.Registry(), "billing.invoice"))
			require.NoError(t, natsched.Handle(router, func(context.Context, ctInvoice) error { handled.Add(1); return nil }))
			c := ctStart(t, jsc, router, ConsumerConfig{FromStart: true}) // too late: the durable exists
			after := ctDurable(t, jsc, "natsched_test")
			require.Equal(t, []string{"natsched.fire.billing.invoice", "natsched.fire.reminder"}, after.Config.FilterSubjects)
			require.Equal(t, before.Config.DeliverPolicy, after.Config.DeliverPolicy)

			seq := ctPublish(t, jsc, "natsched.fire.billing.invoice", ctHeader("i1", natsched.HeaderType, "billing.invoice"), `{}`)
			ctWaitStats(t, c, "the new type handled", func(s ConsumerStats) bool { return s.Acked == 1 })
			ctSettled(t, jsc, "test", seq)
			// Neither the reminder handled before the restart nor the
			// untyped message came (back).
			require.Equal(t, ConsumerStats{Delivered: 1, Acked: 1}, c.Stats())
			require.EqualValues(t, 1, handled.Load())
			require.Zero(t, ctDeadCount(t, jsc))
		})
	}
}

func TestConsumerRouterWithoutHandlers(t *testing.T) {
	t.Parallel()
	_, jsc := ctSetup(t)
	c, err := NewConsumer(jsc, natsched.NewRouter(nil), ConsumerConfig{Group: "empty", Logger: ctLogger(t)})
	require.NoError(t, err)
	err = c.Start(ctContext(t))
	require.ErrorIs(t, err, ErrInvalidOption)
	require.ErrorContains(t, err, "no handlers")
	_, err = jsc.Consumer(ctContext(t), "NATSCHED_FIRE", "natsched_empty")
	require.ErrorIs(t, err, js.ErrConsumerNotFound, "a durable without a filter takes everything")
	require.NoError(t, c.Close(ctContext(t)))
}
