package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/client"
	"github.com/natsched/natsched/jetstream"
	"github.com/natsched/natsched/natschedtest"
)

// wait bounds every wait of these tests.
const wait = 15 * time.Second

// daemon is an embedded server with one scheduler instance serving the API
// (the in-process equivalent of `natsched server`).
type daemon struct {
	srv   *natschedtest.Server
	sched *jetstream.Scheduler
}

func startDaemon(t *testing.T, srvOpts []natschedtest.Option, opts ...jetstream.Option) *daemon {
	t.Helper()
	srv := natschedtest.RunServer(t, srvOpts...)
	opts = append([]jetstream.Option{
		jetstream.WithName("daemon"), jetstream.WithLeaseTTL(time.Second),
		jetstream.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	}, opts...)
	s, err := jetstream.New(srv.JetStream(t), opts...)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, s.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		require.NoError(t, s.Close(ctx))
	})
	return &daemon{srv: srv, sched: s}
}

// client connects a new connection to the daemon's server.
func (d *daemon) client(t *testing.T, opts ...client.Option) client.Scheduler {
	t.Helper()
	c, err := client.New(d.srv.Conn(t), opts...)
	require.NoError(t, err)
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

type SendEmail struct{ To string }
type DailyReport struct{ Day string }

// The typed helpers work against a remote daemon: the client encodes with
// the registry it was given, the daemon stores and fires, and a consumer in
// the client's process hands the fires to typed handlers.
func TestTypedHelpers(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, nil)
	ctx := ctxT(t)
	reg := natsched.NewRegistry()
	require.NoError(t, natsched.Register[SendEmail](reg, "email.send"))
	require.NoError(t, natsched.Register[DailyReport](reg, "report.daily"))
	router := natsched.NewRouter(reg)
	var mu sync.Mutex
	var got []SendEmail
	require.NoError(t, natsched.Handle(router, func(_ context.Context, m SendEmail) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m)
		return nil
	}))
	require.NoError(t, natsched.Handle(router, func(context.Context, DailyReport) error { return nil }))
	cons, err := jetstream.NewConsumer(d.srv.JetStream(t), router, jetstream.ConsumerConfig{Group: "mailer"})
	require.NoError(t, err)
	require.NoError(t, cons.Start(ctx))
	t.Cleanup(func() { require.NoError(t, cons.Close(context.Background())) })

	s := d.client(t, client.WithRegistry(reg))
	require.Same(t, reg, s.Registry())

	id, err := natsched.ScheduleIn(ctx, s, SendEmail{To: "a@b"}, 200*time.Millisecond)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(id, "email.send."), id)
	natschedtest.Eventually(t, wait, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1
	}, "the handler receives the typed message")
	require.Equal(t, SendEmail{To: "a@b"}, got[0])

	at := time.Now().Add(time.Hour).Truncate(time.Millisecond).UTC()
	atID, err := natsched.ScheduleAt(ctx, s, SendEmail{To: "c@d"}, at, natsched.WithID("mail.later"))
	require.NoError(t, err)
	later, err := s.Get(ctx, atID)
	require.NoError(t, err)
	require.Equal(t, at, later.At)
	require.Equal(t, "email.send", later.Type)
	require.Equal(t, "natsched.fire.email.send", later.Subject)

	cronID, err := natsched.ScheduleCron(ctx, s, DailyReport{Day: "mon"}, "0 9 * * MON-FRI",
		natsched.InZone("Europe/Berlin"), natsched.WithID("report.weekdays"), natsched.WithJitter(time.Minute))
	require.NoError(t, err)
	cron, err := s.Get(ctx, cronID)
	require.NoError(t, err)
	require.Equal(t, "Europe/Berlin", cron.TZ)
	require.Equal(t, 9, cron.NextRun.In(mustZone(t, "Europe/Berlin")).Hour())
	require.Equal(t, time.Minute, cron.Jitter)

	everyID, err := natsched.ScheduleEvery(ctx, s, DailyReport{}, 48*time.Hour, natsched.StartPaused(),
		natsched.WithMaxRuns(3), natsched.WithMisfire(natsched.MisfireSkip))
	require.NoError(t, err)
	every, err := s.Get(ctx, everyID)
	require.NoError(t, err)
	require.Equal(t, natsched.StatusPaused, every.Status)
	require.EqualValues(t, 3, every.MaxRuns)

	require.NoError(t, natsched.Cancel(ctx, s, atID))
	require.ErrorIs(t, natsched.Cancel(ctx, s, atID), natsched.ErrNotFound)

	// Without a registry the helpers say so, before sending anything.
	_, err = natsched.ScheduleIn(ctx, d.client(t), SendEmail{}, time.Minute)
	require.ErrorIs(t, err, natsched.ErrUnknownType)
	// A registry per call does as well as one per client.
	_, err = natsched.ScheduleIn(ctx, d.client(t), SendEmail{}, time.Hour, natsched.WithRegistry(reg))
	require.NoError(t, err)
}

func mustZone(t *testing.T, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

// Put with each schedule kind, and every verb's reply mapped into a
// Schedule.
func TestVerbs(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, nil)
	ctx := ctxT(t)
	s := d.client(t)
	start := time.Now().Add(time.Hour).Truncate(time.Second).UTC()

	for _, in := range []*natsched.Schedule{
		{ID: "kind.at", At: start, Data: []byte("at")},
		{ID: "kind.in", In: 2 * time.Hour, Header: nats.Header{"X-Trace": {"abc"}}},
		{ID: "kind.every", Every: 36 * time.Hour, Start: start, End: start.Add(30 * 24 * time.Hour), Catchup: 2 * time.Hour,
			Misfire: natsched.MisfireAll, MaxRuns: 5, Jitter: time.Second},
		{ID: "kind.cron", Cron: "0 0 9 * * MON-FRI", TZ: "America/New_York", Paused: true},
	} {
		in.Subject = "natsched.fire.kinds"
		before := time.Now()
		got, err := s.Put(ctx, in)
		require.NoError(t, err, in.ID)
		require.Equal(t, in.ID, got.ID)
		require.NotZero(t, got.Revision)
		require.NotZero(t, got.Created)
		switch in.ID {
		case "kind.at":
			require.Equal(t, start, got.At)
			require.Equal(t, "at", string(got.Data))
			require.Equal(t, start, got.NextRun)
		case "kind.in":
			require.Zero(t, got.In, "in is stored as at")
			require.WithinDuration(t, before.Add(2*time.Hour), got.At, 5*time.Second)
			require.Equal(t, []string{"abc"}, got.Header["X-Trace"])
		case "kind.every":
			require.Equal(t, 36*time.Hour, got.Every)
			require.Equal(t, start, got.NextRun)
			require.Equal(t, natsched.MisfireAll, got.Misfire)
			require.Equal(t, 2*time.Hour, got.Catchup)
		case "kind.cron":
			require.Equal(t, natsched.StatusPaused, got.Status)
			require.Equal(t, 9, got.NextRun.In(mustZone(t, "America/New_York")).Hour())
		}
		again, err := s.Get(ctx, in.ID)
		require.NoError(t, err)
		require.Equal(t, got.Revision, again.Revision)
	}

	// The creator's trace context travels as the request's headers.
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traced, err := s.Put(ctx, &natsched.Schedule{ID: "kind.traced", Subject: "natsched.fire.kinds", In: time.Hour,
		TraceParent: tp, TraceState: "vendor=1"})
	require.NoError(t, err)
	require.Equal(t, tp, traced.TraceParent)
	require.Equal(t, "vendor=1", traced.TraceState)
	_, err = s.Cancel(ctx, "kind.traced")
	require.NoError(t, err)

	p, err := s.Pause(ctx, "kind.every")
	require.NoError(t, err)
	require.Equal(t, natsched.StatusPaused, p.Status)
	r, err := s.Resume(ctx, "kind.every")
	require.NoError(t, err)
	require.Equal(t, natsched.StatusActive, r.Status)

	// Trigger fires one now; the consumer of the fire stream sees it.
	fired := subscribeFire(t, d, "natsched.fire.kinds")
	tr, err := s.Trigger(ctx, "kind.cron")
	require.NoError(t, err)
	require.EqualValues(t, 0, tr.Runs, "the schedule as it stood when accepted")
	m := next(t, fired)
	require.Equal(t, "kind.cron", m.Headers().Get(natsched.HeaderID))
	require.Equal(t, "1", m.Headers().Get(natsched.HeaderRun))

	c, err := s.Cancel(ctx, "kind.at")
	require.NoError(t, err)
	require.Equal(t, "at", string(c.Data), "cancel returns the schedule as it was")
	_, err = s.Get(ctx, "kind.at")
	require.ErrorIs(t, err, natsched.ErrNotFound)

	page, err := s.List(ctx, natsched.ListOptions{Prefix: "kind", Limit: 2})
	require.NoError(t, err)
	require.Equal(t, []string{"kind.cron", "kind.every"}, ids(page))
	require.Equal(t, "kind.every", page.Next)
	page, err = s.List(ctx, natsched.ListOptions{Prefix: "kind", After: page.Next})
	require.NoError(t, err)
	require.Equal(t, []string{"kind.in"}, ids(page))
	require.Empty(t, page.Next)
	page, err = s.List(ctx, natsched.ListOptions{Status: natsched.StatusPaused})
	require.NoError(t, err)
	require.Equal(t, []string{"kind.cron"}, ids(page))
	page, err = s.List(ctx, natsched.ListOptions{Prefix: "none"})
	require.NoError(t, err)
	require.NotNil(t, page.Schedules)
	require.Empty(t, page.Schedules)

	st, err := s.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, "daemon", st.Instance)
	require.Equal(t, "daemon", st.Leader)
	require.True(t, st.IsLeader)
	require.Equal(t, 3, st.Pending)
	require.EqualValues(t, 1, st.Fired)
	require.NotEmpty(t, st.Version)
	started, err := time.Parse(time.RFC3339Nano, st.Started)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), started, time.Minute)
}

func ids(p *natsched.ListPage) []string {
	var out []string
	for _, s := range p.Schedules {
		out = append(out, s.ID)
	}
	return out
}

func subscribeFire(t *testing.T, d *daemon, subject string) <-chan js.Msg {
	t.Helper()
	ctx := ctxT(t)
	oc, err := d.srv.JetStream(t).OrderedConsumer(ctx, "NATSCHED_FIRE", js.OrderedConsumerConfig{
		FilterSubjects: []string{subject}, DeliverPolicy: js.DeliverNewPolicy})
	require.NoError(t, err)
	ch := make(chan js.Msg, 16)
	cc, err := oc.Consume(func(m js.Msg) { ch <- m })
	require.NoError(t, err)
	t.Cleanup(cc.Stop)
	return ch
}

func next[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(wait):
		t.Fatalf("nothing received within %s", wait)
	}
	var zero T
	return zero
}

// Each error code of a real daemon maps to its sentinel, the message kept.
func TestErrorsFromTheDaemon(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, nil, jetstream.WithAllow(
		jetstream.AllowRule{IDPattern: "err.>", SubjectPattern: "natsched.fire.err.>"},
		jetstream.AllowRule{IDPattern: "bad", SubjectPattern: ">"},
	))
	ctx := ctxT(t)
	s := d.client(t)
	subj := "natsched.fire.err.x"

	// 400: a *FieldError with the field the message names.
	_, err := s.Put(ctx, &natsched.Schedule{ID: "err.cron", Subject: subj, Cron: "* * * * * * * *"})
	var fe *natsched.FieldError
	require.ErrorAs(t, err, &fe)
	require.ErrorIs(t, err, natsched.ErrInvalid)
	require.Equal(t, "cron", fe.Field)
	require.Equal(t, "cron: expected 5, 6 or 7 fields, got 8", err.Error())
	_, err = s.Put(ctx, &natsched.Schedule{ID: "err.every", Subject: subj, Every: 0, Header: nats.Header{"Nats-Msg-Id": {"x"}}, At: time.Now()})
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "header", fe.Field)
	_, err = s.List(ctx, natsched.ListOptions{Status: "cancelled"})
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "status", fe.Field)
	// An ID that cannot name a subject is refused before sending.
	for _, id := range []string{"", "a b", "a.*", "a.>", "a..b"} {
		_, err = s.Get(ctx, id)
		require.ErrorAs(t, err, &fe, id)
		require.Equal(t, "id", fe.Field, id)
	}
	_, err = s.List(ctx, natsched.ListOptions{Prefix: "a b"})
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "prefix", fe.Field)

	// 403.
	var ce *client.Error
	_, err = s.Put(ctx, &natsched.Schedule{ID: "err.forbidden", Subject: "natsched.fire.other", In: time.Hour})
	require.ErrorIs(t, err, natsched.ErrForbidden)
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 403, ce.Code)
	require.Contains(t, err.Error(), "natsched.fire.other")

	// 404.
	_, err = s.Get(ctx, "err.none")
	require.ErrorIs(t, err, natsched.ErrNotFound)
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 404, ce.Code)
	require.Equal(t, "schedule err.none not found", err.Error())

	// 409: a lost compare-and-set, a trigger on a done schedule.
	a, err := s.Put(ctx, &natsched.Schedule{ID: "err.cas", Subject: subj, Every: time.Hour})
	require.NoError(t, err)
	_, err = s.Put(ctx, a)
	require.NoError(t, err)
	_, err = s.Put(ctx, a)
	require.ErrorIs(t, err, natsched.ErrConflict)
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 409, ce.Code)
	_, err = s.Put(ctx, &natsched.Schedule{ID: "err.done", Subject: subj, At: time.Now()})
	require.NoError(t, err)
	natschedtest.Eventually(t, wait, func() bool {
		got, err := s.Get(ctx, "err.done")
		return err == nil && got.Status == natsched.StatusDone
	}, "err.done fires")
	_, err = s.Trigger(ctx, "err.done")
	require.ErrorIs(t, err, natsched.ErrConflict)

	// 413: from the daemon (headers over JetStream's limit), and one too
	// large to send at all.
	_, err = s.Put(ctx, &natsched.Schedule{ID: "err.big", Subject: subj, In: time.Hour,
		Header: nats.Header{"X-Big": {strings.Repeat("x", 70<<10)}}})
	require.ErrorIs(t, err, natsched.ErrTooLarge)
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 413, ce.Code)
	require.True(t, strings.HasPrefix(err.Error(), "header: "), err.Error())
	_, err = s.Put(ctx, &natsched.Schedule{ID: "err.huge", Subject: subj, In: time.Hour, Data: make([]byte, 1<<20)})
	require.ErrorIs(t, err, natsched.ErrTooLarge)
	require.ErrorIs(t, err, nats.ErrMaxPayload)
	require.Contains(t, err.Error(), "over the server's max payload of 1048576 bytes")

	// 422: a value in the bucket that is not a schedule; list skips it,
	// cancel deletes it.
	kv, err := d.srv.JetStream(t).KeyValue(ctx, "natsched_schedules")
	require.NoError(t, err)
	_, err = kv.Put(ctx, "bad", []byte("not json"))
	require.NoError(t, err)
	_, err = s.Get(ctx, "bad")
	require.ErrorIs(t, err, natsched.ErrUnreadable)
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 422, ce.Code)
	require.True(t, strings.HasPrefix(err.Error(), "stored: "), err.Error())
	page, err := s.List(ctx, natsched.ListOptions{Prefix: "bad"})
	require.NoError(t, err)
	require.Empty(t, page.Schedules)
	require.Equal(t, 1, page.Skipped)
	_, err = s.Cancel(ctx, "bad")
	require.NoError(t, err)

	// 503: nobody serves the prefix.
	_, err = d.client(t, client.WithPrefix("nobody")).Get(ctx, "x")
	require.ErrorIs(t, err, natsched.ErrUnavailable)
	require.ErrorIs(t, err, nats.ErrNoResponders)
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 503, ce.Code)
	require.Contains(t, err.Error(), "nobody.api.get.x")
}

// fakeService answers <prefix>.api.> with the given code and message, as
// micro does (headers and body), or with the body alone.
func fakeService(t *testing.T, nc *nats.Conn, prefix string, code int, text string, headers bool) {
	t.Helper()
	sub, err := nc.Subscribe(prefix+".api.>", func(m *nats.Msg) {
		r := nats.NewMsg(m.Reply)
		if headers {
			r.Header.Set("Nats-Service-Error-Code", strconv.Itoa(code))
			r.Header.Set("Nats-Service-Error", text)
		}
		r.Data = []byte(`{"error":{"code":` + strconv.Itoa(code) + `,"message":` + strconv.Quote(text) + `}}`)
		_ = m.RespondMsg(r)
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(t, nc.Flush())
}

// Every code the contract has, from headers or from the body alone.
func TestErrorCodes(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	nc := srv.Conn(t)
	ctx := ctxT(t)
	for i, tc := range []struct {
		code     int
		text     string
		sentinel error
	}{
		{400, "cron: expected 5, 6 or 7 fields, got 8", natsched.ErrInvalid},
		{403, "target natsched.fire.x is not allowed for schedule a", natsched.ErrForbidden},
		{404, "schedule a not found", natsched.ErrNotFound},
		{409, "revision 3 is not the stored revision 4", natsched.ErrConflict},
		{413, "data: the schedule takes 2000000 bytes stored", natsched.ErrTooLarge},
		{422, "stored: invalid character 'x'", natsched.ErrUnreadable},
		{503, "natsched: not ready", natsched.ErrUnavailable},
	} {
		for _, headers := range []bool{true, false} {
			prefix := "fake" + strconv.Itoa(i)
			if !headers {
				prefix += "b"
			}
			fakeService(t, nc, prefix, tc.code, tc.text, headers)
			s, err := client.New(nc, client.WithPrefix(prefix))
			require.NoError(t, err)
			_, err = s.Get(ctx, "a")
			require.ErrorIs(t, err, tc.sentinel, "%d headers=%v", tc.code, headers)
			require.Equal(t, tc.text, err.Error(), "the message is kept")
			for _, other := range []error{natsched.ErrInvalid, natsched.ErrForbidden, natsched.ErrNotFound,
				natsched.ErrConflict, natsched.ErrTooLarge, natsched.ErrUnreadable, natsched.ErrUnavailable} {
				if other != tc.sentinel {
					require.NotErrorIs(t, err, other, "%d", tc.code)
				}
			}
			var ce *client.Error
			var fe *natsched.FieldError
			if tc.code == 400 {
				require.ErrorAs(t, err, &fe)
				require.Equal(t, "cron", fe.Field)
				require.Equal(t, "expected 5, 6 or 7 fields, got 8", fe.Reason)
				require.False(t, errors.As(err, &ce))
			} else {
				require.ErrorAs(t, err, &ce)
				require.Equal(t, tc.code, ce.Code)
			}
		}
	}

	// A code outside the contract keeps its code and wraps no sentinel.
	fakeService(t, nc, "fake500", 500, "boom", true)
	s, err := client.New(nc, client.WithPrefix("fake500"))
	require.NoError(t, err)
	_, err = s.Status(ctx)
	var ce *client.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 500, ce.Code)
	require.NotErrorIs(t, err, natsched.ErrUnavailable)

	// A 400 without a field is about the body.
	fakeService(t, nc, "fakebody", 400, "no field here", true)
	s, err = client.New(nc, client.WithPrefix("fakebody"))
	require.NoError(t, err)
	_, err = s.List(ctx, natsched.ListOptions{})
	var fe *natsched.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "body", fe.Field)
}

// A request nobody answers in time is ErrUnavailable, with the context's
// error.
func TestTimeout(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	nc := srv.Conn(t)
	sub, err := nc.SubscribeSync("silent.api.>") // a responder that never replies
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(t, nc.Flush())

	s, err := client.New(srv.Conn(t), client.WithPrefix("silent"), client.WithTimeout(100*time.Millisecond))
	require.NoError(t, err)
	start := time.Now()
	_, err = s.Get(context.Background(), "x")
	require.ErrorIs(t, err, natsched.ErrUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), wait)

	// The caller's earlier deadline wins over the client's timeout.
	s, err = client.New(srv.Conn(t), client.WithPrefix("silent"), client.WithTimeout(time.Hour))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = s.Get(ctx, "x")
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// A closed connection.
	closed := srv.Conn(t)
	s, err = client.New(closed)
	require.NoError(t, err)
	closed.Close()
	_, err = s.Get(context.Background(), "x")
	require.ErrorIs(t, err, natsched.ErrUnavailable)
	require.ErrorIs(t, err, nats.ErrConnectionClosed)
}

// WithInboxPrefix receives replies on its own subjects.
func TestInboxPrefix(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, nil)
	ctx := ctxT(t)
	spy := d.srv.Conn(t)
	replies, err := spy.SubscribeSync("tenant-a.inbox.>")
	require.NoError(t, err)
	require.NoError(t, spy.Flush())

	s := d.client(t, client.WithInboxPrefix("tenant-a.inbox"))
	_, err = s.Put(ctx, &natsched.Schedule{ID: "inbox.x", Subject: "natsched.fire.x", In: time.Hour})
	require.NoError(t, err)
	got, err := s.Get(ctx, "inbox.x")
	require.NoError(t, err)
	require.Equal(t, "inbox.x", got.ID)
	m, err := replies.NextMsg(wait)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(m.Subject, "tenant-a.inbox."), m.Subject)

	_, err = d.client(t, client.WithInboxPrefix("tenant-a.inbox"), client.WithPrefix("nobody")).Get(ctx, "x")
	require.ErrorIs(t, err, nats.ErrNoResponders)
	require.ErrorIs(t, err, natsched.ErrUnavailable)
}

func TestOptions(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	nc := srv.Conn(t)
	for name, opt := range map[string]client.Option{
		"prefix empty":        client.WithPrefix(""),
		"prefix dotted":       client.WithPrefix("a.b"),
		"prefix long":         client.WithPrefix(strings.Repeat("p", 33)),
		"timeout zero":        client.WithTimeout(0),
		"timeout negative":    client.WithTimeout(-time.Second),
		"inbox wildcard":      client.WithInboxPrefix("a.*"),
		"inbox trailing dot":  client.WithInboxPrefix("a."),
		"inbox space":         client.WithInboxPrefix("a b"),
		"registry nil":        client.WithRegistry(nil),
		"inbox full wildcard": client.WithInboxPrefix(">"),
	} {
		_, err := client.New(nc, opt)
		require.ErrorIs(t, err, client.ErrInvalidOption, name)
	}
	_, err := client.New(nil)
	require.ErrorIs(t, err, client.ErrInvalidOption)
	_, err = client.New(nc, client.WithPrefix("sched-2"), client.WithTimeout(time.Second), client.WithInboxPrefix("_INBOX_a"))
	require.NoError(t, err)
}
