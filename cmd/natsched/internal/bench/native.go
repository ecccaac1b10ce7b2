package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATS server message schedules (ADR-51), as nats-server 2.12+ implements
// them: a message published to a stream with AllowMsgSchedules and a
// Nats-Schedule header is a schedule; the subject it is published to names
// it (a later message on that subject replaces it: the server rolls the
// subject up), so every schedule needs a subject of its own. At its time the
// server stores a copy of the message on the Nats-Schedule-Target subject,
// which must be captured by the same stream and differ from the schedule's
// subject, and purges the schedule. The fired message keeps the schedule
// message's other headers, so Bench-Id and Bench-Planned identify it.
//
// "@at" is parsed with time.RFC3339, which accepts fractional seconds, so
// the header below asks for nanosecond-precise times; nats.go's
// jetstream.WithScheduleAt formats whole seconds only.
//
// The server stores the fired message straight into the stream, not
// through the account's subject space: a core subscription on the target
// never sees it, so native fires are observed by an ordered consumer.
const (
	hdrSchedule       = jetstream.ScheduleHeader       // "Nats-Schedule"
	hdrScheduleTarget = jetstream.ScheduleTargetHeader // "Nats-Schedule-Target"
)

// nativeStream creates a stream for native schedules of prefix p: schedules
// on p.sched.<n>, fires on p.target.
func nativeStream(ctx context.Context, js jetstream.JetStream, p string) (name, schedPrefix, target string, err error) {
	name = strings.ToUpper(p) + "_NATIVE"
	schedPrefix, target = p+".sched", p+".target"
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name: name, Subjects: []string{schedPrefix + ".>", target},
		Storage: jetstream.FileStorage, AllowMsgSchedules: true, AllowRollup: true,
	})
	if err != nil {
		return "", "", "", fmt.Errorf("native stream %s: %w", name, err)
	}
	return name, schedPrefix, target, nil
}

// nativeSchedule is the message that schedules one native fire at at.
func nativeSchedule(schedPrefix, target string, i int, at time.Time) *nats.Msg {
	m := nats.NewMsg(schedPrefix + "." + strconv.Itoa(i))
	ts := at.UTC().Format(time.RFC3339Nano)
	m.Header.Set(hdrSchedule, "@at "+ts)
	m.Header.Set(hdrScheduleTarget, target)
	m.Header.Set(hdrBenchID, strconv.Itoa(i))
	m.Header.Set(hdrBenchPlanned, ts)
	return m
}

// publishAsync publishes n messages with PublishMsgAsync and waits for every
// PubAck; it returns the first error.
func (b *bench) publishAsync(ctx context.Context, n int, msg func(int) *nats.Msg, progress func(int)) (time.Duration, error) {
	pub, err := b.newAsyncPublisher("async publisher")
	if err != nil {
		return 0, err
	}
	defer pub.close()
	var done atomic.Int64
	stop := func() {}
	if progress != nil {
		stop = b.ticker(2*time.Second, func() { progress(int(done.Load())) })
	}
	defer stop()
	start := time.Now()
	for i := range n {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if _, err := pub.js.PublishMsgAsync(msg(i), stallWait); err != nil {
			return 0, err
		}
		done.Add(1)
	}
	if err := pub.wait(ctx, n, "publishes"); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// asyncPublisher is a connection publishing asynchronously, counting the
// publishes whose PubAck reports an error.
type asyncPublisher struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	failed   atomic.Int64
	firstErr atomic.Value
}

func (b *bench) newAsyncPublisher(name string) (*asyncPublisher, error) {
	nc, err := b.connect(name)
	if err != nil {
		return nil, err
	}
	p := &asyncPublisher{nc: nc}
	p.js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			p.failed.Add(1)
			p.firstErr.CompareAndSwap(nil, err)
		}))
	if err != nil {
		nc.Close()
		return nil, err
	}
	return p, nil
}

func (p *asyncPublisher) close() { p.nc.Close() }

// wait waits for every PubAck of n publishes and reports failures.
func (p *asyncPublisher) wait(ctx context.Context, n int, what string) error {
	select {
	case <-p.js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		return errors.New("PubAcks did not all arrive within 2m")
	case <-ctx.Done():
		return ctx.Err()
	}
	if f := p.failed.Load(); f > 0 {
		return fmt.Errorf("%d of %d %s failed: %v", f, n, what, p.firstErr.Load())
	}
	return nil
}

// nativeFires runs spread, instant or burst through NATS server message
// schedules, created with pipelined PublishAsync.
func (b *bench) nativeFires(ctx context.Context, w string, n int, over time.Duration) (Result, error) {
	res := Result{Name: w, System: SystemNative, N: n}
	p := b.prefix("n" + w)
	nc, err := b.connect("native " + w)
	if err != nil {
		return res, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return res, err
	}
	stream, schedPrefix, target, err := nativeStream(ctx, js, p)
	if err != nil {
		return res, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = js.DeleteStream(dctx, stream)
	}()
	obs := nativeObserver(n)
	stopObs, err := subscribeConsumer(ctx, js, stream, target, obs)
	if err != nil {
		return res, err
	}
	defer stopObs()

	t0 := time.Now().Add(leadTime(n))
	planned := func(i int) time.Time {
		if over <= 0 {
			return t0
		}
		return t0.Add(time.Duration(i) * over / time.Duration(n))
	}
	_, err = b.publishAsync(ctx, n, func(i int) *nats.Msg { return nativeSchedule(schedPrefix, target, i, planned(i)) },
		func(k int) { b.progressf("%s (native): %d/%d scheduled", w, k, n) })
	if err != nil {
		return res, fmt.Errorf("schedule: %w", err)
	}
	var setupNote string
	if late := time.Since(t0); late > 0 {
		setupNote = fmt.Sprintf("setup overran the first due time by %s: lateness is inflated", late.Round(time.Millisecond))
	}
	stop := b.ticker(2*time.Second, func() { b.progressf("%s (native): %d/%d fired", w, obs.count(), n) })
	got, err := obs.wait(ctx, planned(n-1).Add(fireWait(n)))
	stop()
	if err != nil {
		return res, err
	}
	fillFires(&res, w, obs.snapshot(), t0)
	res.Notes = joinNote(setupNote, "Nats-Schedule \"@at\" with nanoseconds, one subject per schedule; observed by an ordered consumer")
	if got < n {
		res.Error = fmt.Sprintf("only %d of %d fires arrived", got, n)
	}
	return res, nil
}

// nativeCreate measures creating native schedules the way the Go API is
// measured: synchronous JetStream publishes from --create-concurrency
// callers.
func (b *bench) nativeCreate(ctx context.Context) (Result, error) {
	n, conc := b.cfg.createN, b.cfg.createConc
	res := Result{Name: WCreate, System: SystemNative, N: n}
	p := b.prefix("ncreate")
	nc, err := b.connect("native create")
	if err != nil {
		return res, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return res, err
	}
	stream, schedPrefix, target, err := nativeStream(ctx, js, p)
	if err != nil {
		return res, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = js.DeleteStream(dctx, stream)
	}()
	at := time.Now().Add(time.Hour)
	lat := make([]time.Duration, n)
	var done atomic.Int64
	stop := b.ticker(2*time.Second, func() { b.progressf("create (native): %d/%d", done.Load(), n) })
	start := time.Now()
	err = parallel(ctx, n, conc, func(ctx context.Context, i int) error {
		t := time.Now()
		_, err := js.PublishMsg(ctx, nativeSchedule(schedPrefix, target, i, at.Add(time.Duration(i)*time.Millisecond)))
		lat[i] = time.Since(t)
		done.Add(1)
		return err
	})
	elapsed := time.Since(start)
	stop()
	if err != nil {
		return res, fmt.Errorf("publish: %w", err)
	}
	res.PerSecond = f64(round(float64(n)/elapsed.Seconds(), 0))
	res.LatencyMs = latenessOf(lat)
	res.Seconds = round(elapsed.Seconds(), 2)
	res.Notes = fmt.Sprintf("synchronous JetStream publish of a schedule message from %d callers; due in 1h", conc)
	return res, nil
}

// stallWait lets a pipelined publisher wait for PubAcks when the maximum
// number of publishes are in flight, rather than fail after 200ms.
var stallWait = jetstream.WithStallWait(time.Minute)
