// Package integration_test runs natsched end to end over embedded servers:
// the typed Go API, the JetStream scheduler, durable consumers and
// handlers.
package integration_test

import (
	"context"
	"errors"
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

// TestTypedEndToEnd: ScheduleIn through the JetStream scheduler reaches a
// typed handler via the durable consumer; a handler that keeps failing
// ends in the dead letter stream with the error and delivery count.
func TestTypedEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natschedtest.RunServer(t)

	reg := natsched.NewRegistry()
	require.NoError(t, natsched.Register[SendEmail](reg, "email.send"))
	require.NoError(t, natsched.Register[Flaky](reg, "flaky"))
	router := natsched.NewRouter(reg)

	got := make(chan SendEmail, 1)
	require.NoError(t, natsched.Handle(router, func(ctx context.Context, m SendEmail) error {
		got <- m
		return nil
	}))
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
