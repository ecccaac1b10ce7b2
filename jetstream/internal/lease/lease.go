package lease

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsched/natsched/clock"
)

// Holder acts under the lease: it fires only between Lead and Step, and
// only until the deadline it was last given.
type Holder interface {
	// Lead begins a term that is safe to act under until until. It returns
	// false if the holder is gone (the term is not taken up).
	Lead(ctx context.Context, until time.Time) bool
	// Extend moves the current term's deadline to until (a renewal was
	// confirmed). until may already have passed, when the renewal came back
	// late: the holder stays in its term but must not act until the next
	// Extend.
	Extend(until time.Time)
	// Step ends the term and returns once nothing more is done under it.
	Step()
}

// Gate decides, for one of several leases an instance campaigns for (one
// per partition), whether it may campaign now and whether it should hand
// its term over: the lease asks it before every attempt and whenever
// Changed fires. Safety never depends on it; only balance does.
type Gate interface {
	// Campaign is asked before an attempt: true reserves the right to
	// try (Release gives it back when the attempt fails or the term
	// ends); false asks again after retry, or, if retry is 0, when
	// Changed fires.
	Campaign() (ok bool, retry time.Duration)
	// Release gives back what Campaign reserved.
	Release()
	// Changed fires when Campaign's or Yield's answer may have changed.
	Changed() <-chan struct{}
	// Yield reports whether the leader should step down now and release
	// the key, so that another instance takes it.
	Yield() bool
}

// Config is what a Lease needs.
type Config struct {
	KV   jetstream.KeyValue // the lease bucket; its TTL is the lease TTL
	Key  string             // the lease key
	Name string             // this instance, as the value names it
	TTL  time.Duration      // how long the key lives without renewal
	// Partitions, when above 1, is written in the value: the partition
	// count this instance fires by.
	Partitions int
	// Mirror, when set, is a second key that holds a copy of the value
	// while this instance leads (written at every win and renewal,
	// deleted on release, expired by the bucket's TTL like the lease): for
	// tools that look for it. Only the lease key decides anything.
	Mirror string
	// Gate, when set, paces campaigns and asks the leader to hand over.
	Gate Gate
	// Clock runs renewals and campaigns and measures deadlines (default
	// clock.Real()). The server expires keys in real time, so only tests of
	// the lease itself want another.
	Clock clock.Clock
	// Now stamps the value's "since" (default Clock.Now): the firing clock,
	// which may be corrected by the server's.
	Now func() time.Time
	// Markers: the bucket announces expiries to watchers (limit markers),
	// so a follower whose watch is up need not retry on a timer.
	Markers bool
	// Conn, when set, is watched for reconnects: a watch may be dead for
	// many seconds after one, so followers watch again and campaign.
	Conn   *nats.Conn
	Logger *slog.Logger
	Holder Holder
}

// Lease campaigns for the key and leads while it holds it.
type Lease struct {
	cfg Config
	clk clock.Clock
	log *slog.Logger
}

// New checks cfg and returns a Lease; Run starts it.
func New(cfg Config) (*Lease, error) {
	switch {
	case cfg.KV == nil:
		return nil, errors.New("lease: no bucket")
	case cfg.Key == "" || cfg.Name == "":
		return nil, errors.New("lease: key and name are required")
	case cfg.TTL <= 0:
		return nil, fmt.Errorf("lease: TTL must be positive, got %s", cfg.TTL)
	case cfg.Holder == nil:
		return nil, errors.New("lease: no holder")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Now == nil {
		cfg.Now = cfg.Clock.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Lease{cfg: cfg, clk: cfg.Clock, log: cfg.Logger}, nil
}

// Value is what the key holds while an instance leads.
type Value struct {
	ID    string    `json:"id"`
	Term  string    `json:"term"`
	Since time.Time `json:"since"`
	// Partitions is the holder's partition count; 0 (absent) means 1.
	Partitions int `json:"partitions,omitempty"`
}

// Count is the partition count the value says its holder fires by.
func (v Value) Count() int { return max(v.Partitions, 1) }

// Current returns the value under key, and false if nobody holds it (or
// what is there is not a lease).
func Current(ctx context.Context, kv jetstream.KeyValue, key string) (Value, bool, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Value{}, false, nil
	}
	if err != nil {
		return Value{}, false, err
	}
	var v Value
	if err := json.Unmarshal(e.Value(), &v); err != nil || v.ID == "" {
		return Value{}, false, nil
	}
	return v, true, nil
}

// NewToken returns a random token (a term's, or any instance's that must
// be told from a restarted process of the same name).
func NewToken() string {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Run campaigns and leads until ctx ends; then, if leading, it steps down
// and deletes the key so that another instance takes over at once.
func (l *Lease) Run(ctx context.Context) {
	for ctx.Err() == nil {
		won, err := l.campaign(ctx)
		if err != nil {
			return // ctx ended
		}
		l.lead(ctx, won)
	}
}

// term is one win: the token, the revision last written, the value.
type term struct {
	token string
	rev   uint64
	value []byte
	sent  time.Time // when the winning Create was sent
}

// StopWatch stops w. Stopping deletes its consumer with an API request
// that would wait out its timeout while disconnected; then the server
// removes the idle ephemeral consumer by itself.
func StopWatch(nc *nats.Conn, w jetstream.KeyWatcher) {
	if w != nil && (nc == nil || nc.IsConnected()) {
		_ = w.Stop()
	}
}

// campaign waits as a follower until this instance wins the key.
func (l *Lease) campaign(ctx context.Context) (term, error) {
	c := l.cfg
	var updates <-chan jetstream.KeyValueEntry
	var w jetstream.KeyWatcher
	watch := func() {
		StopWatch(c.Conn, w)
		var err error
		if w, err = c.KV.Watch(ctx, c.Key); err != nil {
			l.log.Warn("natsched: cannot watch the lease; campaigning on a timer", "err", err)
			w, updates = nil, nil
			return
		}
		updates = w.Updates()
	}
	watch()
	defer func() { StopWatch(c.Conn, w) }()
	var reconnected <-chan nats.Status
	if c.Conn != nil {
		ch := c.Conn.StatusChanged(nats.CONNECTED)
		defer c.Conn.RemoveStatusListener(ch)
		reconnected = ch
	}
	held := false // the last value seen is a live lease
	retry, stop := clock.After(l.clk, jitter(c.TTL/10))
	defer func() { stop() }()
	var changed <-chan struct{}
	if c.Gate != nil {
		changed = c.Gate.Changed()
	}
	for {
		select {
		case <-ctx.Done():
			return term{}, ctx.Err()
		case <-changed:
			if !held {
				stop()
				retry, stop = clock.After(l.clk, jitter(c.TTL/20))
			}
			continue
		case <-reconnected:
			watch()
			held = false
			stop()
			retry, stop = clock.After(l.clk, jitter(c.TTL/10))
			continue
		case e, ok := <-updates:
			if !ok {
				updates = nil // watcher gone (reconnecting): the timer still runs
				continue
			}
			switch {
			case e == nil && held: // initial state: someone leads
				continue
			case e != nil && e.Operation() == jetstream.KeyValuePut:
				held = true
				continue
			}
			// No lease, or it was released or expired: campaign soon.
			held = false
			stop()
			retry, stop = clock.After(l.clk, jitter(c.TTL/20))
			continue
		case <-retry:
		}
		if c.Gate != nil {
			ok, again := c.Gate.Campaign()
			if !ok {
				retry, stop = nil, func() bool { return false }
				if again > 0 {
					retry, stop = clock.After(l.clk, again)
				}
				continue
			}
		}
		t := term{token: NewToken(), sent: l.clk.Now()}
		t.value, _ = json.Marshal(Value{ID: c.Name, Term: t.token, Since: c.Now().UTC(), Partitions: l.partitions()})
		cctx, cancel := context.WithTimeout(ctx, c.TTL/2)
		rev, err := c.KV.Create(cctx, c.Key, t.value)
		cancel()
		if err == nil {
			t.rev = rev
			l.mirror(ctx, t.value)
			return t, nil
		}
		if c.Gate != nil {
			c.Gate.Release()
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
			l.log.Debug("natsched: campaign failed", "err", err)
		}
		if updates != nil && c.Markers {
			// The watch will announce the lease's release or expiry.
			retry, stop = nil, func() bool { return false }
			continue
		}
		retry, stop = clock.After(l.clk, c.TTL+jitter(c.TTL/4))
	}
}

// partitions is what the value says of the partition count.
func (l *Lease) partitions() int {
	if l.cfg.Partitions > 1 {
		return l.cfg.Partitions
	}
	return 0
}

// mirror copies the value to the mirror key, if there is one (best
// effort: nothing depends on it).
func (l *Lease) mirror(ctx context.Context, value []byte) {
	if l.cfg.Mirror == "" {
		return
	}
	mctx, cancel := context.WithTimeout(ctx, l.cfg.TTL/3)
	defer cancel()
	if _, err := l.cfg.KV.Put(mctx, l.cfg.Mirror, value); err != nil && ctx.Err() == nil {
		l.log.Debug("natsched: cannot write the lease's mirror", "key", l.cfg.Mirror, "err", err)
	}
}

// jitter returns a random duration in [0, d).
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d)))
}

// lead holds the term until a renewal is rejected, no renewal is
// confirmed for a whole TTL, or ctx ends.
func (l *Lease) lead(ctx context.Context, t term) {
	c := l.cfg
	safe := 2 * c.TTL / 3
	l.log.Info("natsched: leader won", "key", c.Key, "term", t.token)
	if c.Gate != nil {
		defer c.Gate.Release()
	}
	if !c.Holder.Lead(ctx, t.sent.Add(safe)) {
		return
	}
	yielded := false
	defer func() {
		c.Holder.Step()
		if ctx.Err() != nil || yielded {
			// Graceful stop or hand-over: release at once instead of
			// after the TTL.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.TTL/2)
			if err := c.KV.Delete(dctx, c.Key, jetstream.LastRevision(t.rev)); err == nil {
				l.log.Info("natsched: leader released the lease", "key", c.Key, "term", t.token, "handover", yielded)
				if c.Mirror != "" {
					_ = c.KV.Delete(dctx, c.Mirror)
				}
			}
			cancel()
		}
	}()
	var changed <-chan struct{}
	if c.Gate != nil {
		changed = c.Gate.Changed()
	}
	confirmed := t.sent // send time of the last confirmed write
	wait := c.TTL / 3
	for {
		tick, stop := clock.After(l.clk, wait)
		select {
		case <-ctx.Done():
			stop()
			return
		case <-changed:
			stop()
			if c.Gate.Yield() {
				yielded = true
				return
			}
			wait = max(confirmed.Add(c.TTL/3).Sub(l.clk.Now()), 0)
			continue
		case <-tick:
		}
		sent := l.clk.Now()
		expires := confirmed.Add(c.TTL) // the key may be gone on the server from then on
		// Not bounded by the holder's deadline: a late success still
		// proves the lease is ours.
		rctx, cancel := context.WithTimeout(ctx, max(expires.Sub(sent), time.Millisecond))
		rev, err := c.KV.Update(rctx, c.Key, t.value, t.rev)
		cancel()
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) && l.stillOurs(ctx, &t) {
			// A renewal applied but unanswered left us behind: renew again
			// at once from the stored revision.
			wait = 0
			continue
		}
		switch {
		case err == nil:
			t.rev, confirmed = rev, sent
			c.Holder.Extend(sent.Add(safe))
			l.mirror(ctx, t.value)
			// Next renewal TTL/3 after this one was sent; at once if it
			// came back so late that the holder's deadline has passed.
			wait = max(sent.Add(c.TTL/3).Sub(l.clk.Now()), 0)
		case ctx.Err() != nil:
			return
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound):
			l.log.Warn("natsched: leader lost the lease", "term", t.token, "err", err)
			return
		case !l.clk.Now().Before(expires):
			l.log.Warn("natsched: leader could not renew within the lease TTL; stepping down", "term", t.token, "err", err)
			return
		default:
			l.log.Debug("natsched: lease renewal failed; retrying", "term", t.token, "err", err)
			wait = c.TTL / 10
		}
	}
}

// stillOurs reads the key after a revision mismatch: if it holds this
// term, a renewal was applied whose reply was lost, and t takes the stored
// revision.
func (l *Lease) stillOurs(ctx context.Context, t *term) bool {
	gctx, cancel := context.WithTimeout(ctx, l.cfg.TTL/3)
	defer cancel()
	e, err := l.cfg.KV.Get(gctx, l.cfg.Key)
	if err != nil {
		return false
	}
	var v Value
	if json.Unmarshal(e.Value(), &v) != nil || v.Term != t.token || v.ID != l.cfg.Name {
		return false
	}
	t.rev = e.Revision()
	return true
}
