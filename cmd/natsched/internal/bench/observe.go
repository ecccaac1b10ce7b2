package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsched/natsched"
)

// Headers the native workloads put on schedule messages; the server copies
// them to the fired message.
const (
	hdrBenchID      = "Bench-Id"
	hdrBenchPlanned = "Bench-Planned"
)

// arrival is one distinct occurrence as the subscriber saw it.
type arrival struct {
	at      time.Time // when the subscriber received it
	planned time.Time
}

// observer records distinct occurrences arriving at a subscriber: a core
// subscription also sees republishes that JetStream dropped as duplicates,
// so occurrences are deduplicated by (ID, planned time).
type observer struct {
	idHdr, plannedHdr string

	mu       sync.Mutex
	seen     map[string]struct{}
	arrivals []arrival
	repeats  int // deliveries of an occurrence already seen
	bad      int // deliveries without a parsable planned time
	want     int
	done     chan struct{}
	closed   bool
}

func newObserver(want int, idHdr, plannedHdr string) *observer {
	return &observer{
		idHdr: idHdr, plannedHdr: plannedHdr, want: want,
		seen: make(map[string]struct{}, want), arrivals: make([]arrival, 0, want),
		done: make(chan struct{}),
	}
}

func natschedObserver(want int) *observer {
	return newObserver(want, natsched.HeaderID, natsched.HeaderPlanned)
}

func nativeObserver(want int) *observer { return newObserver(want, hdrBenchID, hdrBenchPlanned) }

func (o *observer) record(h nats.Header) {
	now := time.Now()
	id, p := h.Get(o.idHdr), h.Get(o.plannedHdr)
	key := id + "|" + p
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.seen[key]; ok {
		o.repeats++
		return
	}
	planned, err := time.Parse(time.RFC3339Nano, p)
	if err != nil {
		o.bad++
		return
	}
	o.seen[key] = struct{}{}
	o.arrivals = append(o.arrivals, arrival{at: now, planned: planned})
	if o.want > 0 && len(o.arrivals) >= o.want && !o.closed {
		o.closed = true
		close(o.done)
	}
}

func (o *observer) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.arrivals)
}

// snapshot returns a copy of the arrivals so far.
func (o *observer) snapshot() []arrival {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]arrival(nil), o.arrivals...)
}

// wait waits until want occurrences arrived, or until deadline; it returns
// how many arrived.
func (o *observer) wait(ctx context.Context, deadline time.Time) (int, error) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-o.done:
	case <-t.C:
	case <-ctx.Done():
		return o.count(), ctx.Err()
	}
	return o.count(), nil
}

// subscribeCore observes subject with a core subscription on nc.
func subscribeCore(nc *nats.Conn, subject string, o *observer) (stop func(), err error) {
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) { o.record(m.Header) })
	if err != nil {
		return nil, err
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// subscribeConsumer observes subject of stream with an ordered JetStream
// consumer delivering new messages.
func subscribeConsumer(ctx context.Context, js jetstream.JetStream, stream, subject string, o *observer) (stop func(), err error) {
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("ordered consumer on %s: %w", stream, err)
	}
	cc, err := c.Consume(func(m jetstream.Msg) { o.record(m.Headers()) })
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", stream, err)
	}
	return cc.Stop, nil
}

// latenesses returns received minus planned of each arrival.
func latenesses(as []arrival) []time.Duration {
	ds := make([]time.Duration, len(as))
	for i, a := range as {
		ds[i] = a.at.Sub(a.planned)
	}
	return ds
}

// firstLast returns the earliest and the latest arrival.
func firstLast(as []arrival) (first, last time.Time) {
	for i, a := range as {
		if i == 0 || a.at.Before(first) {
			first = a.at
		}
		if i == 0 || a.at.After(last) {
			last = a.at
		}
	}
	return first, last
}

// waitUntil polls cond every interval until it holds, ctx ends or timeout
// passes.
func waitUntil(ctx context.Context, timeout, interval time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// sleep waits for d or ctx.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// parallel runs f(i) for i in [0, n) on conc goroutines and returns the
// first error.
func parallel(ctx context.Context, n, conc int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conc = max(1, min(conc, n))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int, conc)
	)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(ctx, i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		// The parent was cancelled.
		firstErr = ctx.Err()
	}
	return firstErr
}
