package jetstream

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/clock"
	"github.com/natsched/natsched/natschedtest"
	"github.com/natsched/natsched/schedulertest"
)

// testScheduler starts a scheduler on srv with test-friendly settings.
func testScheduler(t *testing.T, srv *natschedtest.Server, name string, opts ...Option) *Scheduler {
	t.Helper()
	opts = append([]Option{WithName(name), WithLeaseTTL(time.Second), WithWorkers(16)}, opts...)
	s, err := New(srv.JetStream(t), opts...)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, s.Close(ctx))
	})
	return s
}

// snap asks s's loop for its state, or reports false.
func snap(s *Scheduler) (snapshot, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.loop.snap(ctx)
}

// waitLeader waits until s leads with its index loaded.
func waitLeader(t *testing.T, s *Scheduler) {
	t.Helper()
	natschedtest.Eventually(t, 15*time.Second, func() bool {
		sn, ok := snap(s)
		return ok && sn.leading && sn.ready
	}, "%s never led", s.Name())
}

// settled waits until s leads, has seen every write to the bucket, has
// nothing due at the clock's time and no fire in flight.
func settled(t *testing.T, s *Scheduler, c clock.Clock) {
	t.Helper()
	ctx := context.Background()
	natschedtest.Eventually(t, 15*time.Second, func() bool {
		st, err := s.kv.Status(ctx)
		if err != nil {
			return false
		}
		last := st.(*js.KeyValueBucketStatus).StreamInfo().State.LastSeq
		sn, ok := snap(s)
		return ok && sn.leading && sn.ready && sn.busy == 0 && sn.lastRev >= last &&
			(sn.nextDue == 0 || sn.nextDue > c.Now().UnixNano())
	}, "leader never settled")
}

func newConformanceHarness(t *testing.T) *schedulertest.Harness {
	h, _ := conformanceHarness(t)
	return h
}

// conformanceHarness is one scheduler on its own server, which it returns
// too, for clients of the scheduler's API.
func conformanceHarness(t *testing.T) (*schedulertest.Harness, *natschedtest.Server) {
	srv := natschedtest.RunServer(t)
	c := clock.NewFake(schedulertest.Start)
	rec := schedulertest.NewRecorder(c)
	opts := []Option{WithClock(c), WithRetention(time.Hour)}
	cur := testScheduler(t, srv, "conformance-1", opts...)
	waitLeader(t, cur)

	// Record what the fire stream stored, so that a republish JetStream
	// dropped as a duplicate is not counted.
	subject := "natsched.fire.test"
	jsc := srv.JetStream(t)
	oc, err := jsc.OrderedConsumer(context.Background(), cur.Names().FireStream,
		js.OrderedConsumerConfig{FilterSubjects: []string{subject + ".>"}})
	require.NoError(t, err)
	cc, err := oc.Consume(func(m js.Msg) {
		rec.Record(&natsched.Message{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
	})
	require.NoError(t, err)
	t.Cleanup(cc.Stop)

	h := &schedulertest.Harness{
		Clock: c, Recorder: rec, Subject: subject,
		Retention: time.Hour, MaxPayload: 1 << 20,
	}
	h.Scheduler = cur
	n := 0
	h.Settle = func(t *testing.T) {
		settled(t, cur, c)
		// Fired messages were stored (PubAck) before the leader settled, so
		// the server delivered them to the subscriber before this one.
		n++
		marker := &nats.Msg{Subject: subject + ".settle", Header: nats.Header{natsched.HeaderID: {"settle"}},
			Data: []byte{byte(n)}}
		_, err := jsc.PublishMsg(context.Background(), marker)
		require.NoError(t, err)
		schedulertest.Eventually(t, func() bool {
			fs := rec.For("settle")
			return len(fs) > 0 && len(fs[len(fs)-1].Msg.Data) == 1 && fs[len(fs)-1].Msg.Data[0] == byte(n)
		}, "settle marker")
	}
	h.Outage = func(t *testing.T, d time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, cur.Close(ctx))
		c.Advance(d)
		n := testScheduler(t, srv, "conformance-2", opts...)
		waitLeader(t, n)
		cur = n
		h.Scheduler = n
	}
	return h, srv
}

func TestConformance(t *testing.T) {
	t.Parallel()
	schedulertest.Run(t, newConformanceHarness)
}
