package jetstream

import (
	"context"

	"github.com/nats-io/nats.go"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/natsched/natsched"
)

// Tracing follows W3C trace context through OpenTelemetry's global tracer
// provider (a no-op unless the service installs one): the scheduler
// records a span for each fire as a child of the schedule's stored trace
// context and puts that span in the fired message's traceparent; a
// consumer starts the handler's span as a child of the fire's. Without a
// tracer provider the fired message still carries a span ID of its own
// (natsched.OccurrenceTraceParent), so a handler in another process still
// joins the creator's trace.

const tracerName = "github.com/natsched/natsched/jetstream"

var traceContext = propagation.TraceContext{}

// creatorContext is the creator's trace context of sch, as a parent context.
func creatorContext(ctx context.Context, sch *natsched.Schedule) context.Context {
	if sch.TraceParent == "" {
		return ctx
	}
	carrier := propagation.MapCarrier{natsched.HeaderTraceParent: sch.TraceParent, natsched.HeaderTraceState: sch.TraceState}
	return traceContext.Extract(ctx, carrier)
}

// fireSpan starts the span of occurrence o of sch, if a tracer records
// it, and sets o.TraceParent to it; end it once the fire is stored. It
// returns nil when nothing records.
func fireSpan(ctx context.Context, sch *natsched.Schedule, o *natsched.Occurrence) trace.Span {
	parent := creatorContext(ctx, sch)
	_, span := otel.Tracer(tracerName).Start(parent, "natsched fire "+sch.Subject,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attrSchedule(sch.ID), attrOccurrence(o.MsgID()), attrRun(o.Run)))
	if !span.IsRecording() {
		return nil
	}
	carrier := propagation.MapCarrier{}
	traceContext.Inject(trace.ContextWithSpan(ctx, span), carrier)
	o.TraceParent = carrier[natsched.HeaderTraceParent]
	return span
}

// endSpan ends span (nil: nothing recorded) with err's outcome.
func endSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// handlerContext is the context a handler runs in for m, delivered for
// the delivery-th time: the fire's span as remote parent, a span of the
// handler's own when a tracer records, and natsched.FiredFrom's
// metadata. end ends the span with the handler's outcome.
func handlerContext(ctx context.Context, group string, m *natsched.Message, delivery uint64) (_ context.Context, end func(error)) {
	ctx = traceContext.Extract(ctx, headerCarrier(m.Header))
	f := natsched.FiredOf(m, delivery)
	ctx = natsched.WithFired(ctx, f)
	ctx, span := otel.Tracer(tracerName).Start(ctx, "natsched handle "+m.Subject,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attrSchedule(f.ScheduleID), attrOccurrence(f.OccurrenceID), attrRun(f.Run), attrGroup(group)))
	return ctx, func(err error) { endSpan(span, err) }
}

func attrSchedule(id string) attribute.KeyValue { return attribute.String("natsched.schedule_id", id) }
func attrOccurrence(id string) attribute.KeyValue {
	return attribute.String("natsched.occurrence_id", id)
}
func attrRun(run int64) attribute.KeyValue  { return attribute.Int64("natsched.run", run) }
func attrGroup(g string) attribute.KeyValue { return attribute.String("natsched.group", g) }

// traceFrom stores the creator's trace context found in a request's or
// intake message's headers with sch (a malformed traceparent is ignored,
// as W3C trace context says).
func traceFrom(sch *natsched.Schedule, h interface{ Get(string) string }) {
	tp := h.Get(natsched.HeaderTraceParent)
	if _, _, _, ok := natsched.ParseTraceParent(tp); ok {
		sch.TraceParent, sch.TraceState = tp, h.Get(natsched.HeaderTraceState)
	}
}

// headerCarrier reads a fired message's headers for the propagator,
// whatever the case of their names (NATS headers keep it as published).
type headerCarrier nats.Header

func (h headerCarrier) Get(key string) string { return headerGet(nats.Header(h), key) }
func (h headerCarrier) Set(key, value string) { nats.Header(h).Set(key, value) }
func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}
