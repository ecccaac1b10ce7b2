package jetstream

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/natsched/natsched/clock"
	"github.com/natsched/natsched/jetstream/internal/lease"
)

// skew estimates how far the JetStream server's clock is ahead of this
// host's (offset = server - local), so that the leader fires by the
// server's time and a host clock running ahead never fires early.
//
// Every lease renewal is a KV write the server stamps with its own time.
// Each instance watches the lease key; an entry stamped at server time c
// and seen here at local time r was stored no later than r, so
// c - r <= offset: every sample is a lower bound. The estimate is the
// largest (tightest) lower bound among recent samples, so correcting by it
// can only make a fire late by the delivery delay, never early.
type skew struct {
	mu      sync.Mutex
	samples []time.Duration // recent lower bounds, newest last
	offset  time.Duration
	known   bool
}

const skewWindow = 32

func (k *skew) observe(serverTime, localRecv time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.samples = append(k.samples, serverTime.Sub(localRecv))
	if len(k.samples) > skewWindow {
		k.samples = k.samples[1:]
	}
	best := k.samples[0]
	for _, s := range k.samples[1:] {
		best = max(best, s)
	}
	k.offset, k.known = best, true
}

// get returns the offset, or 0 before the first sample.
func (k *skew) get() time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.offset
}

// WithClockSync turns the server clock estimate on or off. Offsets under
// 25ms are treated as noise. It is on by
// default with the real clock and off when WithClock injects another (a
// simulated clock has nothing to do with the server's).
func WithClockSync(on bool) Option {
	return func(o *options) error { o.clockSync = &on; return nil }
}

// skewNoise: estimated offsets smaller than this are measurement noise (the
// estimate of a host that shares the server's clock is minus the delivery
// delay of a watch event, a few milliseconds) and are not applied, so that
// acceptance times are not stamped before the request arrived.
const skewNoise = 25 * time.Millisecond

// clockSync is the firing clock: the injected clock corrected, when on,
// by the estimated offset of the JetStream server's clock.
type clockSync struct {
	clock clock.Clock
	on    bool
	skew  skew
}

// now is the firing clock's reading.
func (c *clockSync) now() time.Time {
	if !c.on {
		return c.clock.Now()
	}
	off := c.skew.get()
	if off > -skewNoise && off < skewNoise {
		return c.clock.Now()
	}
	return c.clock.Now().Add(off)
}

// offset reports the estimated offset of the server's clock from this
// host's (server - local) and whether it is known yet.
func (c *clockSync) offset() (time.Duration, bool) {
	c.skew.mu.Lock()
	defer c.skew.mu.Unlock()
	return c.skew.offset, c.skew.known
}

// watch feeds the estimator from the lease key until ctx ends; retry
// paces rewatching on the lease clock.
func (c *clockSync) watch(ctx context.Context, kv js.KeyValue, nc *nats.Conn, retry clock.Clock) {
	for ctx.Err() == nil {
		w, err := kv.Watch(ctx, LeaderKey, js.UpdatesOnly())
		if err == nil {
		watching:
			for {
				select {
				case <-ctx.Done():
					lease.StopWatch(nc, w)
					return
				case e, ok := <-w.Updates():
					if !ok {
						break watching
					}
					if e != nil && e.Operation() == js.KeyValuePut {
						c.skew.observe(e.Created(), c.clock.Now())
					}
				}
			}
			lease.StopWatch(nc, w)
		}
		// The watch ended (reconnect, error): watch again shortly.
		wait, stop := clock.After(retry, time.Second)
		select {
		case <-ctx.Done():
			stop()
			return
		case <-wait:
		}
	}
}
