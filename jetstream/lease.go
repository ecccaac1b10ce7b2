package jetstream

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"
)

// The lease decides which instance fires. It lives in KV bucket
// <prefix>_leader under key "leader", value {"id": <instance name>,
// "term": <random token>, "since": <time>}.
//
// States and transitions (an instance is in exactly one):
//
//	follower  --(key absent, atomic Create succeeds)-->  leader
//	leader    --(renewal rejected or not confirmed in time)-->  follower
//	leader    --(Close: stop firing, then delete the key)-->  stopped
//
// Safety comes from the server: Create succeeds only when the key is
// absent, and a renewal is an Update checked against the revision the
// leader last wrote, so two instances never both hold a confirmed lease.
// Liveness comes from the bucket TTL: a lease not renewed for TTL expires,
// and with limit markers the expiry is pushed to every follower's watch,
// which campaigns at once (after a small random delay so followers do not
// stampede). Followers retry on a timer only while their watch is down or
// the server has no limit markers, and after every reconnect.
//
// What local time is trusted for: only intervals on the lease clock. A
// leader renews every TTL/3 (one message a second at the default 3s) and
// stops firing, then steps down, when no renewal has been confirmed within
// 2/3 TTL of sending the last confirmed one. The server expires the key no
// earlier than TTL after it stored that renewal, which came after it was
// sent, so a leader that cannot reach the server stops firing at least
// TTL/3 before anyone else can win: the new leader needs no extra wait of
// its own. The price: a renewal slower than TTL/3 (a starved CPU, a
// saturated link) costs the lease, and firing pauses until it expires. If clocks drift or a publish was already in
// flight, the occurrence ID (Nats-Msg-Id) still makes JetStream drop the
// second copy within the duplicate window (at least 10 TTLs).
//
// A term is one win: the random token makes every term distinct, so a
// restarted process never mistakes a lease under its own name for its own;
// it waits for it to expire like anyone else.
type lease struct {
	s   *Scheduler
	kv  js.KeyValue
	ttl time.Duration
}

type leaseValue struct {
	ID    string    `json:"id"`
	Term  string    `json:"term"`
	Since time.Time `json:"since"`
}

func newLease(s *Scheduler) *lease {
	return &lease{s: s, kv: s.leaseKV, ttl: s.o.leaseTTL}
}

func newTerm() string {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// currentLeader returns the instance name in the lease, or "".
func currentLeader(ctx context.Context, kv js.KeyValue) (string, error) {
	e, err := kv.Get(ctx, LeaderKey)
	if errors.Is(err, js.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", unavailable(err)
	}
	var v leaseValue
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return "", nil
	}
	return v.ID, nil
}

// after returns a channel that receives once d has passed on the lease
// clock, and a function that stops it.
func (l *lease) after(d time.Duration) (<-chan struct{}, func() bool) {
	ch := make(chan struct{}, 1)
	t := l.s.o.leaseClock.AfterFunc(d, func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	return ch, t.Stop
}

// run campaigns and leads until ctx ends.
func (l *lease) run(ctx context.Context) {
	for ctx.Err() == nil {
		rev, term, err := l.campaign(ctx)
		if err != nil {
			return // ctx ended
		}
		l.lead(ctx, rev, term)
	}
}

// campaign waits as a follower until this instance wins the lease.
func (l *lease) campaign(ctx context.Context) (uint64, string, error) {
	log := l.s.log
	var updates <-chan js.KeyValueEntry
	var w js.KeyWatcher
	watch := func() {
		l.s.loop.stopWatch(w)
		var err error
		if w, err = l.kv.Watch(ctx, LeaderKey); err != nil {
			log.Warn("natsched: cannot watch the lease; campaigning on a timer", "err", err)
			w, updates = nil, nil
			return
		}
		updates = w.Updates()
	}
	watch()
	defer func() { l.s.loop.stopWatch(w) }()
	// After a reconnect the old watch may be dead for many seconds: watch
	// again, and campaign in case the lease expired meanwhile.
	reconnected := l.s.nc.StatusChanged(nats.CONNECTED)
	defer l.s.nc.RemoveStatusListener(reconnected)
	held := false // the last lease value seen is a live one
	retry, stop := l.after(l.jitter(l.ttl / 10))
	defer func() { stop() }()
	for {
		select {
		case <-ctx.Done():
			return 0, "", ctx.Err()
		case <-reconnected:
			watch()
			held = false
			stop()
			retry, stop = l.after(l.jitter(l.ttl / 10))
			continue
		case e, ok := <-updates:
			if !ok {
				updates = nil // watcher gone (reconnecting): the timer still runs
				continue
			}
			switch {
			case e == nil && held: // initial state: someone leads
				continue
			case e != nil && e.Operation() == js.KeyValuePut:
				held = true
				continue
			}
			// No lease, or it was released or expired: campaign soon.
			held = false
			stop()
			retry, stop = l.after(l.jitter(l.ttl / 20))
			continue
		case <-retry:
		}
		term := newTerm()
		v, _ := json.Marshal(leaseValue{ID: l.s.o.name, Term: term, Since: l.s.now().UTC()})
		cctx, cancel := context.WithTimeout(ctx, l.ttl/2)
		rev, err := l.kv.Create(cctx, LeaderKey, v)
		cancel()
		if err == nil {
			return rev, term, nil
		}
		if !errors.Is(err, js.ErrKeyExists) && ctx.Err() == nil {
			log.Debug("natsched: campaign failed", "err", err)
		}
		if updates != nil && l.s.leaseMarkers {
			// The watch will announce the lease's release or expiry.
			retry, stop = nil, func() bool { return false }
			continue
		}
		retry, stop = l.after(l.ttl + l.jitter(l.ttl/4))
	}
}

// jitter returns a random duration in [0, d).
func (l *lease) jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d)))
}

// lead fires while the lease holds, then returns as a follower.
func (l *lease) lead(ctx context.Context, rev uint64, term string) {
	log := l.s.log
	clk := l.s.o.leaseClock
	log.Info("natsched: leader won", "term", term)
	l.s.loop.fence.open(clk.Now().Add(2 * l.ttl / 3))
	// Start firing; whatever ends the term, stop firing (and let in-flight
	// fires finish) before anything else.
	if !l.s.loop.switchTo(ctx, true) {
		return
	}
	defer func() {
		l.s.loop.fence.close() // before in-flight fires finish: they publish no more
		l.s.loop.switchTo(context.WithoutCancel(ctx), false)
		if ctx.Err() != nil {
			// Graceful stop: hand over at once instead of after the TTL.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.ttl/2)
			if err := l.kv.Delete(dctx, LeaderKey, js.LastRevision(rev)); err == nil {
				log.Info("natsched: leader released the lease", "term", term)
			}
			cancel()
		}
	}()

	value, _ := json.Marshal(leaseValue{ID: l.s.o.name, Term: term, Since: l.s.now().UTC()})
	confirmed := clk.Now() // when the last confirmed renewal was sent
	for {
		tick, stop := l.after(l.ttl / 3)
		select {
		case <-ctx.Done():
			stop()
			return
		case <-tick:
		}
		sent := clk.Now()
		deadline := confirmed.Add(2 * l.ttl / 3)
		rctx, cancel := context.WithTimeout(ctx, max(deadline.Sub(sent), time.Millisecond))
		nrev, err := l.kv.Update(rctx, LeaderKey, value, rev)
		cancel()
		switch {
		case err == nil:
			rev, confirmed = nrev, sent
			l.s.loop.fence.open(sent.Add(2 * l.ttl / 3))
			l.s.loop.poke()
		case ctx.Err() != nil:
			return
		case errors.Is(err, js.ErrKeyRevisionMismatch) || errors.Is(err, js.ErrKeyNotFound):
			log.Warn("natsched: leader lost the lease", "term", term, "err", err)
			return
		case !clk.Now().Before(deadline):
			log.Warn("natsched: leader could not renew in time; stepping down", "term", term, "err", err)
			return
		default:
			log.Debug("natsched: lease renewal failed; retrying", "term", term, "err", err)
		}
	}
}
