package jetstream

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/natschedtest"
)

type traceTick struct{ N int }

// TestTraceContextFromCreatorToHandler: a put carrying a traceparent, a
// recurring schedule firing three times, a typed handler. With a tracer
// provider installed (the SDK's in-memory exporter), there are three fire
// spans and three handler spans in the creator's trace, every span ID
// distinct, each handler span a child of its fire's, each fire a child of
// the creator's span; the handler's context says which fire it runs for.
func TestTraceContextFromCreatorToHandler(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter)))
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })

	reg := natsched.NewRegistry()
	require.NoError(t, natsched.Register[traceTick](reg, "trace.tick"))
	router := natsched.NewRouter(reg)
	var mu sync.Mutex
	var fired []natsched.Fired
	var handlerSpans []trace.SpanContext
	require.NoError(t, natsched.Handle(router, func(ctx context.Context, _ traceTick) error {
		f, ok := natsched.FiredFrom(ctx)
		require.True(t, ok)
		mu.Lock()
		defer mu.Unlock()
		fired = append(fired, f)
		handlerSpans = append(handlerSpans, trace.SpanContextFromContext(ctx))
		return nil
	}))
	srv := natschedtest.RunServer(t)
	s := testScheduler(t, srv, "traced", WithRouter(router, ConsumerConfig{Group: "trace"}))
	waitLeader(t, s)

	const creatorTrace, creatorSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	data, _ := json.Marshal(traceTick{N: 1})
	req := nats.NewMsg("natsched.api.put.trace.tick.1")
	req.Header.Set("traceparent", "00-"+creatorTrace+"-"+creatorSpan+"-01")
	req.Header.Set("tracestate", "vendor=x")
	req.Data, _ = json.Marshal(map[string]any{"subject": "natsched.fire.trace.tick", "type": "trace.tick",
		"every": "200ms", "max_runs": 3, "data": base64.StdEncoding.EncodeToString(data)})
	nc := srv.Conn(t)
	reply, err := nc.RequestMsg(req, 5*time.Second)
	require.NoError(t, err)
	require.Empty(t, reply.Header.Get("Nats-Service-Error"), string(reply.Data))
	var stored struct {
		TraceParent string `json:"traceparent"`
		TraceState  string `json:"tracestate"`
		Header      any    `json:"header"`
	}
	require.NoError(t, json.Unmarshal(reply.Data, &stored))
	require.Equal(t, "00-"+creatorTrace+"-"+creatorSpan+"-01", stored.TraceParent, "stored with the schedule")
	require.Equal(t, "vendor=x", stored.TraceState)
	require.Nil(t, stored.Header, "not a header of the schedule")

	natschedtest.Eventually(t, 15*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(fired) >= 3
	}, "three handler calls")

	var fires, handles []sdktrace.ReadOnlySpan
	natschedtest.Eventually(t, 5*time.Second, func() bool {
		fires, handles = nil, nil
		for _, sp := range exporter.GetSpans().Snapshots() {
			if sp.SpanContext().TraceID().String() != creatorTrace {
				continue
			}
			switch sp.SpanKind() {
			case trace.SpanKindProducer:
				fires = append(fires, sp)
			case trace.SpanKindConsumer:
				handles = append(handles, sp)
			}
		}
		return len(fires) >= 3 && len(handles) >= 3
	}, "fire and handler spans in the creator's trace")
	require.Len(t, fires, 3)
	require.Len(t, handles, 3)
	ids := map[string]bool{}
	fireIDs := map[string]bool{}
	for _, sp := range fires {
		require.Equal(t, creatorSpan, sp.Parent().SpanID().String(), "a fire is a child of the creator's span")
		fireIDs[sp.SpanContext().SpanID().String()] = true
		ids[sp.SpanContext().SpanID().String()] = true
	}
	for _, sp := range handles {
		require.True(t, fireIDs[sp.Parent().SpanID().String()], "a handler span is a child of its fire's")
		ids[sp.SpanContext().SpanID().String()] = true
	}
	require.Len(t, ids, 6, "every span ID distinct")

	mu.Lock()
	defer mu.Unlock()
	runs := map[int64]bool{}
	for i, f := range fired {
		require.Equal(t, "trace.tick.1", f.ScheduleID)
		require.NotEmpty(t, f.OccurrenceID)
		require.False(t, f.Planned.IsZero())
		require.EqualValues(t, 1, f.Delivery)
		runs[f.Run] = true
		require.Equal(t, creatorTrace, handlerSpans[i].TraceID().String())
	}
	require.Len(t, runs, 3)
}

// TestFiredTraceParentWithoutATracer: with no tracer provider, every fire
// still carries a traceparent of its own in the creator's trace.
func TestFiredTraceParentWithoutATracer(t *testing.T) {
	s := &natsched.Schedule{ID: "a", Subject: "x", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	seen := map[string]bool{}
	for i := range 3 {
		o := natsched.Occurrence{ID: "a", Generation: 1, Planned: time.Unix(int64(i), 0), Run: int64(i + 1)}
		tp := natsched.FiredMessage(s, o).Header.Get("traceparent")
		traceID, spanID, _, ok := natsched.ParseTraceParent(tp)
		require.True(t, ok, tp)
		require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", traceID)
		require.NotEqual(t, "00f067aa0ba902b7", spanID)
		require.False(t, seen[spanID])
		seen[spanID] = true
		require.Equal(t, tp, natsched.FiredMessage(s, o).Header.Get("traceparent"), "a republish carries the same")
	}
}
