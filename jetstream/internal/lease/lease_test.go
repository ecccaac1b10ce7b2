package lease

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched/clock"
	"github.com/natsched/natsched/natschedtest"
)

const ttl = 3 * time.Second

var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

// event is what a recorder holder was told.
type event struct {
	kind  string // lead, extend, step
	until time.Time
	at    time.Time // the lease clock when told
}

type recorder struct {
	clk    clock.Clock
	events chan event
}

func newRecorder(clk clock.Clock) *recorder {
	return &recorder{clk: clk, events: make(chan event, 64)}
}

func (r *recorder) Lead(_ context.Context, until time.Time) bool {
	r.events <- event{"lead", until, r.clk.Now()}
	return true
}
func (r *recorder) Extend(until time.Time) { r.events <- event{"extend", until, r.clk.Now()} }
func (r *recorder) Step()                  { r.events <- event{"step", time.Time{}, r.clk.Now()} }

// next waits for the next event, which must be of kind.
func (r *recorder) next(t *testing.T, kind string) event {
	t.Helper()
	select {
	case e := <-r.events:
		require.Equal(t, kind, e.kind, "event %+v", e)
		return e
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s event", kind)
		return event{}
	}
}

func (r *recorder) none(t *testing.T) {
	t.Helper()
	select {
	case e := <-r.events:
		t.Fatalf("unexpected event %+v", e)
	default:
	}
}

// faultyKV delays or fails Update while told to.
type faultyKV struct {
	jetstream.KeyValue
	mu      sync.Mutex
	fail    error
	hold    chan struct{} // when set, Update waits for it to close
	updates chan struct{} // signalled when an Update starts
}

func (k *faultyKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	k.mu.Lock()
	fail, hold := k.fail, k.hold
	k.mu.Unlock()
	select {
	case k.updates <- struct{}{}:
	default:
	}
	if hold != nil {
		<-hold
	}
	if fail != nil {
		return 0, fail
	}
	return k.KeyValue.Update(ctx, key, value, rev)
}

// bucket creates a lease bucket whose keys live for bucketTTL.
func bucket(t *testing.T, bucketTTL time.Duration) jetstream.KeyValue {
	t.Helper()
	srv := natschedtest.RunServer(t)
	kv, err := srv.JetStream(t).CreateKeyValue(context.Background(), jetstream.KeyValueConfig{
		Bucket: "lease_test", TTL: bucketTTL, LimitMarkerTTL: time.Second, History: 1,
	})
	require.NoError(t, err)
	return kv
}

// start runs a lease until the test ends.
func start(t *testing.T, cfg Config) {
	t.Helper()
	l, err := New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { l.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func config(kv jetstream.KeyValue, name string, clk clock.Clock, h Holder) Config {
	return Config{KV: kv, Key: "leader", Name: name, TTL: ttl, Clock: clk, Markers: true, Holder: h}
}

// fakeStep is how far the fake clock moves at a time.
const fakeStep = ttl / 100

// advance moves the fake clock by d in small steps, so that the lease's
// goroutine sees each timer it arms on the way.
func advance(c *clock.Fake, d time.Duration) {
	for ; d > 0; d -= fakeStep {
		c.Advance(min(fakeStep, d))
		time.Sleep(time.Millisecond) // let the lease goroutine arm its next timer
	}
}

// await moves the fake clock in small steps until the holder is told
// something, which must be of kind, within limit of fake time.
func (r *recorder) await(t *testing.T, c *clock.Fake, kind string, limit time.Duration) event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for moved := time.Duration(0); ; moved += fakeStep {
		select {
		case e := <-r.events:
			require.Equal(t, kind, e.kind, "event %+v", e)
			return e
		case <-time.After(2 * time.Millisecond):
		}
		require.True(t, time.Now().Before(deadline), "no %s event", kind)
		require.LessOrEqual(t, moved, limit, "no %s event within %s of lease time", kind, limit)
		c.Advance(fakeStep)
	}
}

func TestWinThenRenew(t *testing.T) {
	t.Parallel()
	kv := bucket(t, time.Hour)
	c := clock.NewFake(t0)
	r := newRecorder(c)
	start(t, config(kv, "a", c, r))
	lead := r.await(t, c, "lead", ttl)
	require.False(t, lead.until.After(lead.at.Add(2*ttl/3)), "safe for 2/3 TTL from the winning write's send, no longer")
	require.True(t, lead.until.After(lead.at), "and acting may start now")
	v, ok, err := Current(context.Background(), kv, "leader")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "a", v.ID)

	ext := r.await(t, c, "extend", ttl/3+fakeStep)
	require.False(t, ext.until.After(ext.at.Add(2*ttl/3)), "never beyond 2/3 TTL from the renewal's send")
	require.True(t, ext.until.After(lead.until))
	v2, _, _ := Current(context.Background(), kv, "leader")
	require.Equal(t, v.Term, v2.Term, "a renewal keeps the term")
}

func TestRejectedRenewalLosesTheLease(t *testing.T) {
	t.Parallel()
	kv := bucket(t, time.Hour)
	c := clock.NewFake(t0)
	r := newRecorder(c)
	start(t, config(kv, "a", c, r))
	r.await(t, c, "lead", ttl)
	// Someone else's write: the next renewal's revision check fails.
	b, _ := json.Marshal(Value{ID: "usurper", Term: "x"})
	_, err := kv.Put(context.Background(), "leader", b)
	require.NoError(t, err)
	r.await(t, c, "step", ttl/3+fakeStep)
}

func TestUnreachableServerStopsActingBeforeExpiry(t *testing.T) {
	t.Parallel()
	kv := &faultyKV{KeyValue: bucket(t, time.Hour), updates: make(chan struct{}, 1)}
	c := clock.NewFake(t0)
	r := newRecorder(c)
	start(t, config(kv, "a", c, r))
	lead := r.await(t, c, "lead", ttl)
	kv.mu.Lock()
	kv.fail = errors.New("nats: timeout")
	kv.mu.Unlock()
	// No renewal confirmed: the holder's deadline (2/3 TTL) passes with no
	// extension, and the lease steps down once a whole TTL has passed
	// since the winning write, when the key may have expired.
	advance(c, lead.at.Add(ttl-2*fakeStep).Sub(c.Now()))
	r.none(t)
	require.True(t, c.Now().After(lead.until), "the holder's deadline passed without an extension")
	step := r.await(t, c, "step", ttl/10)
	require.False(t, step.at.Before(lead.at.Add(ttl)), "steps down a TTL after the last confirmed write")
}

// TestLateRenewalKeepsTheLease: a renewal that takes longer than TTL/3
// (here 0.8 TTL, past the holder's deadline) but succeeds proves nobody
// took over: the lease is kept, and a fresh renewal goes out at once so
// the holder may act again right away.
func TestLateRenewalKeepsTheLease(t *testing.T) {
	t.Parallel()
	kv := &faultyKV{KeyValue: bucket(t, time.Hour), updates: make(chan struct{}, 1)}
	c := clock.NewFake(t0)
	r := newRecorder(c)
	start(t, config(kv, "a", c, r))
	lead := r.await(t, c, "lead", ttl)
	hold := make(chan struct{})
	kv.mu.Lock()
	kv.hold = hold
	kv.mu.Unlock()
	for stuck := false; !stuck; { // until the renewal is out, and stuck
		select {
		case <-kv.updates:
			stuck = true
		case <-time.After(2 * time.Millisecond):
			c.Advance(fakeStep)
		}
	}
	advance(c, 8*ttl/10)
	require.True(t, c.Now().After(lead.until), "the deadline passed while the renewal was stuck")
	kv.mu.Lock()
	kv.hold = nil
	kv.mu.Unlock()
	close(hold)
	late := r.next(t, "extend")
	require.True(t, late.until.Before(late.at), "the late renewal's deadline has passed already")
	again := r.next(t, "extend") // at once, without advancing the clock
	require.True(t, again.until.After(again.at), "a fresh renewal lets the holder act again")
	r.none(t)
}

func TestRestartUnderTheSameNameWaitsForTheOldTerm(t *testing.T) {
	t.Parallel()
	kv := bucket(t, time.Hour)
	// A previous process named "a" left its lease behind (it was killed).
	old, _ := json.Marshal(Value{ID: "a", Term: "0ld"})
	_, err := kv.Create(context.Background(), "leader", old)
	require.NoError(t, err)
	c := clock.NewFake(t0)
	r := newRecorder(c)
	start(t, config(kv, "a", c, r))
	advance(c, 2*ttl)
	r.none(t)
	// The old term expires (deleted here, as the bucket TTL would).
	require.NoError(t, kv.Delete(context.Background(), "leader"))
	r.await(t, c, "lead", ttl)
	v, _, err := Current(context.Background(), kv, "leader")
	require.NoError(t, err)
	require.NotEqual(t, "0ld", v.Term, "a new term, never the old one")
}

// TestFollowerCampaignsWhenTheLeaseExpires: in real time, with a bucket
// TTL of 1s and limit markers, a follower learns of the expiry from its
// watch and wins without polling.
func TestFollowerCampaignsWhenTheLeaseExpires(t *testing.T) {
	t.Parallel()
	kv := bucket(t, time.Second)
	dead, _ := json.Marshal(Value{ID: "dead", Term: "t"})
	_, err := kv.Create(context.Background(), "leader", dead)
	require.NoError(t, err)
	created := time.Now()
	r := newRecorder(clock.Real())
	cfg := config(kv, "b", clock.Real(), r)
	cfg.TTL = time.Second
	start(t, cfg)
	lead := r.next(t, "lead")
	require.GreaterOrEqual(t, lead.at.Sub(created), 900*time.Millisecond, "not before the dead lease expired")
	t.Logf("won %s after the dead leader's last write", lead.at.Sub(created))
}

func TestNewChecksItsConfig(t *testing.T) {
	for _, cfg := range []Config{
		{}, {KV: &faultyKV{}}, {KV: &faultyKV{}, Key: "k", Name: "n"},
		{KV: &faultyKV{}, Key: "k", Name: "n", TTL: time.Second},
	} {
		_, err := New(cfg)
		require.Error(t, err, "%+v", cfg)
	}
}
