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

// ctStart starts a consumer of d, closed in t.Cleanup. Retries are fast
// unless cfg says otherwise.
func ctStart(t *testing.T, jsc js.JetStream, d natsched.Dispatcher, cfg ConsumerConfig) *Consumer {
	t.Helper()
	if cfg.Group == "" {
		cfg.Group = "test"
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

func TestConsumerDeadLettersUnprocessableAtOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, typ, data, wantErr string
	}{
		{"undecodable", "reminder", `{"text": 42`, natsched.ErrDecode.Error()},
		{"no handler", "invoice", `{}`, natsched.ErrNoHandler.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, jsc := ctSetup(t)
			router := natsched.NewRouter(nil)
			require.NoError(t, natsched.Register[ctReminder](router.Registry(), "reminder"))
			var handled atomic.Int32
			require.NoError(t, natsched.Handle(router, func(context.Context, ctReminder) error {
				handled.Add(1)
				return nil
			}))
			c := ctStart(t, jsc, router, ConsumerConfig{MaxDeliver: 5})
			seq := ctPublish(t, jsc, "natsched.fire.typed", ctHeader("typed", natsched.HeaderType, tc.typ), tc.data)

			ctWaitStats(t, c, "dead-lettered", func(s ConsumerStats) bool { return s.DeadLettered == 1 })
			ctSettled(t, jsc, "test", seq)
			require.Equal(t, ConsumerStats{Delivered: 1, DeadLettered: 1}, c.Stats())
			require.Zero(t, handled.Load())
			dead := ctDead(t, jsc, "natsched.dead.natsched.fire.typed")
			require.Len(t, dead, 1)
			require.Equal(t, "1", dead[0].Header.Get("Natsched-Deliveries"))
			require.Contains(t, dead[0].Header.Get("Natsched-Error"), tc.wantErr)
			require.Equal(t, tc.typ, dead[0].Header.Get(natsched.HeaderType))
			require.Equal(t, tc.data, string(dead[0].Data))
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
	c, err := NewConsumer(jsc, rec, ConsumerConfig{Group: "closing", Logger: ctLogger(t)})
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

	never, err := NewConsumer(jsc, rec, ConsumerConfig{Group: "never"})
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
	c, err := NewConsumer(jsc, rec, ConsumerConfig{Group: "stuck", MaxDeliver: 1, Logger: ctLogger(t)})
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
	c, err := NewConsumer(jsc, rec, ConsumerConfig{Group: "restart", Logger: ctLogger(t)})
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
	// The recreated durable starts from the beginning of the stream again:
	// at-least-once, so "one" comes back too.
	natschedtest.Eventually(t, ctWait, func() bool { return c.Stats().Acked >= 2 && rec.count("natsched.fire.two") == 1 },
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
}

func TestConsumerConfigValidation(t *testing.T) {
	t.Parallel()
	d := natsched.DispatcherFunc(func(context.Context, *natsched.Message) error { return nil })
	jsc := natschedtest.RunServer(t).JetStream(t)
	for _, tc := range []struct {
		name string
		cfg  ConsumerConfig
	}{
		{"no group", ConsumerConfig{}},
		{"dotted group", ConsumerConfig{Group: "a.b"}},
		{"wildcard group", ConsumerConfig{Group: "a*"}},
		{"dotted prefix", ConsumerConfig{Group: "g", Prefix: "a.b"}},
		{"long prefix", ConsumerConfig{Group: "g", Prefix: strings.Repeat("p", 33)}},
		{"negative max deliver", ConsumerConfig{Group: "g", MaxDeliver: -1}},
		{"negative backoff", ConsumerConfig{Group: "g", Backoff: []time.Duration{-time.Second}}},
		{"negative ack wait", ConsumerConfig{Group: "g", AckWait: -time.Second}},
		{"negative concurrency", ConsumerConfig{Group: "g", Concurrency: -1}},
		{"wildcard dead prefix", ConsumerConfig{Group: "g", DeadPrefix: "dead.*"}},
		{"bad subject", ConsumerConfig{Group: "g", Subjects: []string{"a..b"}}},
		{"bad stream", ConsumerConfig{Group: "g", Stream: "A.B"}},
	} {
		_, err := NewConsumer(jsc, d, tc.cfg)
		require.ErrorIs(t, err, natsched.ErrInvalid, tc.name)
	}
	_, err := NewConsumer(nil, d, ConsumerConfig{Group: "g"})
	require.ErrorIs(t, err, natsched.ErrInvalid)
	_, err = NewConsumer(jsc, nil, ConsumerConfig{Group: "g"})
	require.ErrorIs(t, err, natsched.ErrInvalid)
	_, err = NewConsumer(jsc, (*natsched.Router)(nil), ConsumerConfig{Group: "g"})
	require.ErrorIs(t, err, natsched.ErrInvalid)

	c, err := NewConsumer(jsc, d, ConsumerConfig{Group: "g-1_x"})
	require.NoError(t, err)
	require.Equal(t, "natsched_g-1_x", c.Name())
	require.Equal(t, ConsumerConfig{
		Group: "g-1_x", Prefix: "natsched", Stream: "NATSCHED_FIRE", Subjects: []string{"natsched.fire.>"},
		MaxDeliver: 5, Backoff: []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute},
		AckWait: 30 * time.Second, Concurrency: 1, DeadPrefix: "natsched.dead", Logger: c.cfg.Logger,
	}, c.cfg)
	require.NotNil(t, c.cfg.Logger)
	require.Equal(t, []time.Duration{time.Second, time.Second, 5 * time.Second, 2 * time.Minute, 2 * time.Minute},
		[]time.Duration{c.backoff(0), c.backoff(1), c.backoff(2), c.backoff(4), c.backoff(9)})

	c, err = NewConsumer(jsc, d, ConsumerConfig{Group: "g", Prefix: "acme"})
	require.NoError(t, err)
	require.Equal(t, "acme_g", c.Name())
	require.Equal(t, "ACME_FIRE", c.cfg.Stream)
	require.Equal(t, []string{"acme.fire.>"}, c.cfg.Subjects)
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
