// Package integration_test runs natsched end to end over embedded servers:
// the typed Go API, the JetStream scheduler, durable consumers and
// handlers.
package integration_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	js "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/jetstream"
	"github.com/natsched/natsched/natschedtest"
)

type SendEmail struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
}

type Flaky struct{ N int }

// emailRouter returns a router handling SendEmail, type "email.send", by
// sending it to got.
func emailRouter(t *testing.T) (router *natsched.Router, got <-chan SendEmail) {
	t.Helper()
	reg := natsched.NewRegistry()
	require.NoError(t, natsched.Register[SendEmail](reg, "email.send"))
	router = natsched.NewRouter(reg)
	ch := make(chan SendEmail, 1)
	require.NoError(t, natsched.Handle(router, func(ctx context.Context, m SendEmail) error {
		ch <- m
		return nil
	}))
	return router, ch
}

// TestTypedEndToEnd: ScheduleIn through the JetStream scheduler reaches a
// typed handler via the durable consumer; a handler that keeps failing
// ends in the dead letter stream with the error and delivery count.
func TestTypedEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natschedtest.RunServer(t)

	router, got := emailRouter(t)
	require.NoError(t, natsched.Register[Flaky](router.Registry(), "flaky"))
	var attempts atomic.Int32
	require.NoError(t, natsched.Handle(router, func(ctx context.Context, m Flaky) error {
		attempts.Add(1)
		return errors.New("smtp: 451 try again later")
	}))

	s, err := jetstream.New(srv.JetStream(t), jetstream.WithName("e2e"), jetstream.WithLeaseTTL(time.Second),
		jetstream.WithRouter(router, jetstream.ConsumerConfig{Group: "mailer", MaxDeliver: 3,
			Backoff: []time.Duration{10 * time.Millisecond}}))
	require.NoError(t, err)
	require.NoError(t, s.Start(ctx))
	t.Cleanup(func() { require.NoError(t, s.Close(context.Background())) })

	sent := time.Now()
	id, err := natsched.ScheduleIn(ctx, s, SendEmail{To: "a@example.com", Subject: "hi"}, 300*time.Millisecond)
	require.NoError(t, err)
	select {
	case m := <-got:
		require.Equal(t, SendEmail{To: "a@example.com", Subject: "hi"}, m)
		require.GreaterOrEqual(t, time.Since(sent), 300*time.Millisecond, "not before its time")
	case <-time.After(15 * time.Second):
		t.Fatal("the handler never ran")
	}
	sch, err := s.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "email.send", sch.Type)
	require.Equal(t, "natsched.fire.email.send", sch.Subject)

	// Failing handler: three deliveries, then a dead letter.
	_, err = natsched.ScheduleIn(ctx, s, Flaky{N: 1}, time.Millisecond, natsched.WithID("flaky.one"))
	require.NoError(t, err)
	jsc := srv.JetStream(t)
	var dead js.Msg
	natschedtest.Eventually(t, 20*time.Second, func() bool {
		cons, err := jsc.OrderedConsumer(ctx, "NATSCHED_DEAD", js.OrderedConsumerConfig{
			FilterSubjects: []string{"natsched.dead.natsched.fire.flaky"}})
		if err != nil {
			return false
		}
		dead, err = cons.Next(js.FetchMaxWait(time.Second))
		return err == nil
	}, "dead letter")
	require.Equal(t, "flaky.one", dead.Headers().Get(natsched.HeaderID))
	require.Equal(t, "3", dead.Headers().Get(natsched.HeaderDeliveries))
	require.Contains(t, dead.Headers().Get(natsched.HeaderError), "451 try again later")
	require.EqualValues(t, 3, attempts.Load())
}

// typedGroup starts a scheduler instance on srv with router in group,
// closed in t.Cleanup.
func typedGroup(t *testing.T, srv *natschedtest.Server, name string, router *natsched.Router, cfg jetstream.ConsumerConfig, opts ...jetstream.Option) *jetstream.Scheduler {
	t.Helper()
	all := append([]jetstream.Option{jetstream.WithName(name), jetstream.WithLeaseTTL(time.Second),
		jetstream.WithRouter(router, cfg)}, opts...)
	s, err := jetstream.New(srv.JetStream(t), all...)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.Start(ctx))
	t.Cleanup(func() { require.NoError(t, s.Close(context.Background())) })
	return s
}

func streamMsgs(t *testing.T, jsc js.JetStream, stream string) uint64 {
	t.Helper()
	s, err := jsc.Stream(context.Background(), stream)
	require.NoError(t, err)
	return s.CachedInfo().State.Msgs
}

// TestTypedGroupNextToTheDaemon is the report from a user: the README's
// group "mailer", started next to a daemon that had fired 17 untyped
// messages, dead-lettered all of them, and every untyped fire after. Now
// it takes only its own type, fired after it started.
func TestTypedGroupNextToTheDaemon(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "quickstart", nil)
	d.waitLeader(t)
	const earlier = 17
	for i := range earlier {
		ok(t, d.api(t, "put", fmt.Sprintf("hello.%d", i), map[string]any{
			"subject": "natsched.fire.demo", "in": "10ms", "text": strings.Repeat("hello ", 5000)}))
	}
	natschedtest.Eventually(t, fireTimeout, func() bool { return streamMsgs(t, d.js, "NATSCHED_FIRE") == earlier },
		"the daemon fired %d messages", earlier)

	router, got := emailRouter(t)
	s := typedGroup(t, d.srv, "mailer-1", router, jetstream.ConsumerConfig{Group: "mailer"})

	ctx := context.Background()
	_, err := natsched.ScheduleIn(ctx, s, SendEmail{To: "a@example.com"}, 10*time.Millisecond)
	require.NoError(t, err)
	ok(t, d.api(t, "put", "hello.after", map[string]any{"subject": "natsched.fire.demo", "in": "10ms", "text": "later"}))
	select {
	case m := <-got:
		require.Equal(t, "a@example.com", m.To)
	case <-time.After(fireTimeout):
		t.Fatal("the handler never ran")
	}
	natschedtest.Eventually(t, fireTimeout, func() bool { return streamMsgs(t, d.js, "NATSCHED_FIRE") == earlier+2 },
		"both later messages fired")

	cons, err := d.js.Consumer(ctx, "NATSCHED_FIRE", "natsched_mailer")
	require.NoError(t, err)
	info, err := cons.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"natsched.fire.email.send"}, info.Config.FilterSubjects)
	require.Equal(t, uint64(1), info.Delivered.Consumer, "the group was delivered more than its one message")
	require.Zero(t, info.NumPending, "the untyped message fired after the start is on the group's filter")
	require.Zero(t, streamMsgs(t, d.js, "NATSCHED_DEAD"), "dead letters")
}

// TestTypedGroupCustomPrefix: under WithPrefix, a group's durable is
// named after the prefix and reads the prefix's fire stream.
func TestTypedGroupCustomPrefix(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	router := natsched.NewRouter(nil)
	got := make(chan *natsched.Message, 1)
	require.NoError(t, router.HandleSubject("acme.fire.report", func(ctx context.Context, m *natsched.Message) error {
		got <- m
		return nil
	}))
	s := typedGroup(t, srv, "acme-1", router, jetstream.ConsumerConfig{Group: "reports"}, jetstream.WithPrefix("acme"))

	ctx := context.Background()
	_, err := s.Put(ctx, &natsched.Schedule{ID: "report.daily", Subject: "acme.fire.report", In: 10 * time.Millisecond})
	require.NoError(t, err)
	select {
	case m := <-got:
		require.Equal(t, "report.daily", m.ScheduleID())
	case <-time.After(fireTimeout):
		t.Fatal("the handler never ran")
	}
	jsc := srv.JetStream(t)
	cons, err := jsc.Consumer(ctx, "ACME_FIRE", "acme_reports")
	require.NoError(t, err)
	require.Equal(t, []string{"acme.fire.report"}, cons.CachedInfo().Config.FilterSubjects)
	_, err = jsc.Consumer(ctx, "ACME_FIRE", "natsched_reports")
	require.ErrorIs(t, err, js.ErrConsumerNotFound)
}
