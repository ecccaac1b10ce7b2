package jetstream

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/clock"
)

// Intake headers (contract). They mirror NATS server message schedules'
// headers, so moving between the two is a rename.
const (
	HeaderSchedule = "Natsched-Schedule" // @at T, @in D, @every D, a cron expression or macro
	HeaderTarget   = "Natsched-Target"
	HeaderTimeZone = "Natsched-Time-Zone"
	HeaderStart    = "Natsched-Start"
	HeaderEnd      = "Natsched-End"
	HeaderMaxRuns  = "Natsched-Max-Runs"
	HeaderMisfire  = "Natsched-Misfire"
	HeaderJitter   = "Natsched-Jitter"
	HeaderCancel   = "Natsched-Cancel"
	// Extensions beyond the contract's list.
	HeaderCatchup = "Natsched-Catchup"
	HeaderPaused  = "Natsched-Paused"
)

const (
	intakeWorkers = 16 // messages for one ID always go to the same worker, in order
	// intakeMaxAttempts: a message that keeps meeting transient failures is
	// rejected after this many deliveries instead of retried forever.
	intakeMaxAttempts = 10
	intakeAckWait     = 30 * time.Second
)

// intake consumes <prefix>.in.<id> from the work-queue stream
// <PREFIX>_INTAKE with one durable consumer shared by every instance.
type intake struct {
	js    js.JetStream
	nc    *nats.Conn
	names Names
	st    *store
	clock clock.Clock // bounds the drain at stop
	m     *metrics
	log   *slog.Logger

	cc      js.ConsumeContext
	queues  []chan js.Msg
	quit    chan struct{} // closed by stop; unhandled messages are redelivered
	wg      sync.WaitGroup
	stopped sync.Once
}

// startIntake consumes the intake stream (ensure made it) with in's
// dependencies; setup bounds the consumer's creation, handling runs under
// run.
func startIntake(setup, run context.Context, in *intake) (*intake, error) {
	n := in.names
	cons, err := in.js.CreateOrUpdateConsumer(setup, n.IntakeStream, js.ConsumerConfig{
		Durable: n.Prefix + "_intake", AckPolicy: js.AckExplicitPolicy, AckWait: intakeAckWait,
		MaxDeliver: -1, MaxAckPending: 4 * intakeWorkers * 64,
	})
	if err != nil {
		return nil, fmt.Errorf("natsched: intake consumer: %w", err)
	}
	in.quit = make(chan struct{})
	for range intakeWorkers {
		q := make(chan js.Msg, 64)
		in.queues = append(in.queues, q)
		in.wg.Add(1)
		go func() {
			defer in.wg.Done()
			for {
				select {
				case m := <-q:
					in.handle(run, m)
				case <-in.quit:
					return
				}
			}
		}()
	}
	in.cc, err = cons.Consume(func(m js.Msg) {
		h := fnv.New32a()
		h.Write([]byte(m.Subject()))
		select {
		case in.queues[h.Sum32()%intakeWorkers] <- m:
		case <-in.quit:
		}
	}, js.PullMaxMessages(intakeWorkers*32))
	if err != nil {
		in.stop(setup)
		return nil, fmt.Errorf("natsched: intake consume: %w", err)
	}
	return in, nil
}

// stop stops fetching, lets the workers finish what they hold and waits.
func (in *intake) stop(ctx context.Context) {
	in.stopped.Do(func() {
		if in.cc != nil {
			// Drain hands over what was fetched; without a server it
			// cannot finish, so it gets a bounded wait. Messages not acked
			// are redelivered to another instance.
			in.cc.Drain()
			wait, stop := clock.After(in.clock, 2*time.Second)
			select {
			case <-in.cc.Closed():
			case <-ctx.Done():
				in.cc.Stop()
			case <-wait:
				in.cc.Stop()
			}
			stop()
		}
		close(in.quit)
		in.wg.Wait()
	})
}

func (in *intake) handle(ctx context.Context, m js.Msg) {
	id := strings.TrimPrefix(m.Subject(), in.names.IntakePrefix+".")
	meta, err := m.Metadata()
	if err != nil {
		_ = m.Term()
		return
	}
	hctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	result, err := in.apply(hctx, id, m, meta)
	switch {
	case err == nil:
		_ = m.Ack()
		in.m.intake.WithLabelValues(result).Inc()
	case transient(err) && meta.NumDelivered < intakeMaxAttempts:
		_ = m.NakWithDelay(time.Duration(meta.NumDelivered) * time.Second)
	default:
		in.reject(id, m, err)
		in.m.intake.WithLabelValues("rejected").Inc()
	}
}

func transient(err error) bool {
	return errors.Is(err, natsched.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled)
}

// apply applies an intake message and says what it was: accepted (a
// schedule stored) or cancelled.
func (in *intake) apply(ctx context.Context, id string, m js.Msg, meta *js.MsgMetadata) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	h := m.Headers()
	if c := headerGet(h, HeaderCancel); c != "" {
		switch strings.ToLower(strings.TrimSpace(c)) {
		case "true":
			_, err := in.st.cancel(ctx, id)
			if errors.Is(err, natsched.ErrNotFound) {
				err = nil // already gone: cancelling is idempotent
			}
			return "cancelled", err
		case "false":
		default:
			return "", natsched.Invalid(HeaderCancel, "must be true or false, got %q", c)
		}
	}
	sch, err := scheduleFromHeaders(id, h, m.Data(), meta.Timestamp)
	if err != nil {
		return "", err
	}
	// The stream sequence is the generation: a redelivered message finds
	// its own schedule in place and changes nothing.
	_, err = in.st.put(ctx, sch, putOptions{accepted: meta.Timestamp, generation: meta.Sequence.Stream})
	return "accepted", headerError(err)
}

// reject acknowledges m and republishes it to <prefix>.rejected.<id> with
// Natsched-Error: it is never retried forever and never blocks the stream.
func (in *intake) reject(id string, m js.Msg, cause error) {
	msg := nats.NewMsg(in.names.RejectedPrefix + "." + id)
	for k, vs := range m.Headers() {
		if !strings.HasPrefix(strings.ToLower(k), "nats-") {
			msg.Header[k] = vs
		}
	}
	_, text := errorReply(cause)
	msg.Header.Set(natsched.HeaderError, text)
	msg.Data = m.Data()
	if err := in.nc.PublishMsg(msg); err != nil {
		// Too large with its own headers and body: the error still goes out.
		bare := nats.NewMsg(msg.Subject)
		bare.Header.Set(natsched.HeaderError, text+" (original headers and body dropped: "+err.Error()+")")
		if err := in.nc.PublishMsg(bare); err != nil {
			in.log.Warn("natsched: could not publish a rejected intake message", "id", id, "err", err)
		}
	}
	in.log.Info("natsched: intake message rejected", "id", id, "err", text)
	_ = m.Ack()
}

// fieldHeaders names the header a schedule field comes from in intake.
var fieldHeaders = map[string]string{
	"at": HeaderSchedule, "in": HeaderSchedule, "every": HeaderSchedule, "cron": HeaderSchedule,
	"subject": HeaderTarget, "tz": HeaderTimeZone, "start": HeaderStart, "end": HeaderEnd,
	"max_runs": HeaderMaxRuns, "misfire": HeaderMisfire, "jitter": HeaderJitter, "catchup": HeaderCatchup,
	"data": "body",
}

// headerError renames a field error after the intake header it is about.
func headerError(err error) error {
	var fe *natsched.FieldError
	switch {
	case errors.As(err, &fe):
		if h, ok := fieldHeaders[fe.Field]; ok {
			return natsched.Invalid(h, "%s", fe.Reason)
		}
	case errors.Is(err, natsched.ErrForbidden):
		msg := strings.TrimPrefix(err.Error(), natsched.ErrForbidden.Error()+": ")
		return fmt.Errorf("%w: %s: %s", natsched.ErrForbidden, HeaderTarget, strings.TrimPrefix(msg, "subject: "))
	}
	return err
}

// headerGet reads a header whatever the case of its name: publishers in
// other languages do not all canonicalise.
func headerGet(h nats.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	for k, vs := range h {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

// scheduleFromHeaders reads the header form of a schedule.
func scheduleFromHeaders(id string, h nats.Header, body []byte, accepted time.Time) (*natsched.Schedule, error) {
	sch := &natsched.Schedule{ID: id, Data: body}
	spec := strings.TrimSpace(headerGet(h, HeaderSchedule))
	switch {
	case spec == "":
		return nil, natsched.Invalid(HeaderSchedule, "required (@at <RFC 3339>, @in <duration>, @every <duration>, or a cron expression)")
	case strings.HasPrefix(spec, "@at "):
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(spec[4:]))
		if err != nil {
			return nil, natsched.Invalid(HeaderSchedule, "@at wants an RFC 3339 time, got %q", spec[4:])
		}
		sch.At = t.UTC()
	case strings.HasPrefix(spec, "@in "):
		d, err := natsched.ParseFieldDuration(HeaderSchedule, strings.TrimSpace(spec[4:]))
		if err != nil {
			return nil, err
		}
		sch.At = accepted.Add(d)
	case strings.HasPrefix(spec, "@every "):
		d, err := natsched.ParseFieldDuration(HeaderSchedule, strings.TrimSpace(spec[7:]))
		if err != nil {
			return nil, err
		}
		// Zero would read as "no interval given" to Validate.
		if err := natsched.CheckEvery(d); err != nil {
			return nil, headerError(err)
		}
		sch.Every = d
	default:
		sch.Cron = spec
	}
	var err error
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		v := strings.TrimSpace(vs[0])
		lk := strings.ToLower(k)
		switch {
		case strings.HasPrefix(lk, "nats-"):
			// JetStream's own headers are not carried.
		case lk == natsched.HeaderTraceParent || lk == natsched.HeaderTraceState:
			// The creator's trace context: stored, not carried.
		case !strings.HasPrefix(lk, "natsched-"):
			if sch.Header == nil {
				sch.Header = nats.Header{}
			}
			sch.Header[k] = vs
		case strings.EqualFold(k, HeaderSchedule), strings.EqualFold(k, HeaderCancel):
		case strings.EqualFold(k, HeaderTarget):
			sch.Subject = v
		case strings.EqualFold(k, HeaderTimeZone):
			sch.TZ = v
		case strings.EqualFold(k, HeaderStart):
			sch.Start, err = parseTime(k, v)
		case strings.EqualFold(k, HeaderEnd):
			sch.End, err = parseTime(k, v)
		case strings.EqualFold(k, HeaderMaxRuns):
			sch.MaxRuns, err = strconv.ParseInt(v, 10, 64)
			if err != nil || sch.MaxRuns < 0 {
				err = natsched.Invalid(HeaderMaxRuns, "expected a non-negative integer, got %q", v)
			}
		case strings.EqualFold(k, HeaderMisfire):
			sch.Misfire = natsched.Misfire(v)
		case strings.EqualFold(k, HeaderJitter):
			sch.Jitter, err = natsched.ParseFieldDuration(HeaderJitter, v)
		case strings.EqualFold(k, HeaderCatchup):
			sch.Catchup, err = natsched.ParseFieldDuration(HeaderCatchup, v)
		case strings.EqualFold(k, HeaderPaused):
			sch.Paused, err = strconv.ParseBool(v)
			if err != nil {
				err = natsched.Invalid(HeaderPaused, "expected true or false, got %q", v)
			}
		default:
			err = natsched.Invalid(k, "unknown natsched header")
		}
		if err != nil {
			return nil, err
		}
	}
	if sch.Subject == "" {
		return nil, natsched.Invalid(HeaderTarget, "required: the subject to deliver to")
	}
	traceFrom(sch, headerGetter(h))
	return sch, headerError(sch.Validate())
}

func parseTime(field, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, natsched.Invalid(field, "expected an RFC 3339 time, got %q", v)
	}
	return t.UTC(), nil
}

// headerGetter reads headers whatever the case of their names.
type headerGetter nats.Header

func (h headerGetter) Get(name string) string { return headerGet(nats.Header(h), name) }
