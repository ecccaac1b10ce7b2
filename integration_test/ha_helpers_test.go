package integration_test

// Helpers of the fault tests (ha_test.go): instances with their own
// connections, counting the fire stream, arrival gaps and lateness.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/clock"
	"github.com/natsched/natsched/jetstream"
	"github.com/natsched/natsched/natschedtest"
)

const (
	// haLease is the lease TTL of every instance in the fault tests.
	haLease = time.Second
	// haReplicas: every bucket and stream is replicated on the 3 nodes.
	haReplicas = 3
	// haOpTimeout bounds one call to the Go API or to JetStream.
	haOpTimeout  = 10 * time.Second
	haFireStream = "NATSCHED_FIRE"
	haDeadStream = "NATSCHED_DEAD"
	haKVStream   = "KV_natsched_schedules"
)

// haLoad bounds what the fault tests run at once on two cores: two tests
// without timing bounds together, or one test whose assertions measure
// time (failover gaps, lateness) alone.
var haLoad = struct {
	mu   sync.Mutex
	cond *sync.Cond
	used int
}{}

const haCapacity = 2

func init() { haLoad.cond = sync.NewCond(&haLoad.mu) }

// haParallel runs the test in parallel with the other fault tests; a timed
// test runs alone.
func haParallel(t *testing.T, timed bool) {
	t.Helper()
	t.Parallel()
	need := 1
	if timed {
		need = haCapacity
	}
	haLoad.mu.Lock()
	for haLoad.used+need > haCapacity {
		haLoad.cond.Wait()
	}
	haLoad.used += need
	haLoad.mu.Unlock()
	t.Cleanup(func() {
		haLoad.mu.Lock()
		haLoad.used -= need
		haLoad.cond.Broadcast()
		haLoad.mu.Unlock()
	})
}

func haCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), haOpTimeout)
	t.Cleanup(cancel)
	return ctx
}

// haLogs records the warnings and errors an instance logs, and passes
// everything to stderr when NATSCHED_TEST_LOG is set.
type haLogs struct {
	mu     sync.Mutex
	warns  []string
	errors []string
}

func (l *haLogs) snapshot() (warns, errs []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.warns), slices.Clone(l.errors)
}

type haLogHandler struct {
	logs  *haLogs
	attrs []slog.Attr
	out   slog.Handler
}

func (h haLogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.out.Enabled(ctx, l)
}

func (h haLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		var b strings.Builder
		b.WriteString(r.Message)
		for _, a := range h.attrs {
			fmt.Fprintf(&b, " %s", a)
		}
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s", a)
			return true
		})
		h.logs.mu.Lock()
		if r.Level >= slog.LevelError {
			h.logs.errors = append(h.logs.errors, b.String())
		} else {
			h.logs.warns = append(h.logs.warns, b.String())
		}
		h.logs.mu.Unlock()
	}
	if h.out.Enabled(ctx, r.Level) {
		return h.out.Handle(ctx, r)
	}
	return nil
}

func (h haLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return haLogHandler{logs: h.logs, attrs: append(slices.Clone(h.attrs), as...), out: h.out.WithAttrs(as)}
}

func (h haLogHandler) WithGroup(name string) slog.Handler {
	return haLogHandler{logs: h.logs, attrs: h.attrs, out: h.out.WithGroup(name)}
}

func haLogger() (*slog.Logger, *haLogs) {
	var out io.Writer = io.Discard
	level := slog.Level(100) // nothing
	if os.Getenv("NATSCHED_TEST_LOG") != "" {
		out, level = os.Stderr, slog.LevelDebug
	}
	logs := &haLogs{}
	return slog.New(haLogHandler{logs: logs, out: slog.NewTextHandler(out, &slog.HandlerOptions{Level: level})}), logs
}

// haInstance is one scheduler with its own connection; closing nc kills
// it the hard way (no graceful release of the lease).
type haInstance struct {
	name string
	nc   *nats.Conn
	s    *jetstream.Scheduler
	logs *haLogs
}

// haStart starts a scheduler named name on nc with the fault tests'
// settings (lease 1s, replicas 3) and opts, and closes it in t.Cleanup.
func haStart(t *testing.T, nc *nats.Conn, name string, opts ...jetstream.Option) *haInstance {
	t.Helper()
	jsc, err := js.New(nc)
	require.NoError(t, err)
	log, logs := haLogger()
	all := append([]jetstream.Option{
		jetstream.WithName(name),
		jetstream.WithLeaseTTL(haLease),
		jetstream.WithReplicas(haReplicas),
		jetstream.WithLogger(log),
	}, opts...)
	s, err := jetstream.New(jsc, all...)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, s.Start(ctx), "start %s", name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Logf("close %s: %v", name, err)
		}
	})
	return &haInstance{name: name, nc: nc, s: s, logs: logs}
}

// haLeaderOf returns the index of the instance that reports leading, or
// -1; skip lists instances to ignore.
func haLeaderOf(insts []*haInstance, skip ...int) int {
	for i, in := range insts {
		if in != nil && !slices.Contains(skip, i) && in.s.IsLeader() {
			return i
		}
	}
	return -1
}

// haWaitLeader waits until some instance not in skip leads.
func haWaitLeader(t *testing.T, insts []*haInstance, skip ...int) int {
	t.Helper()
	leader := -1
	natschedtest.Eventually(t, 20*time.Second, func() bool {
		leader = haLeaderOf(insts, skip...)
		return leader >= 0
	}, "a leader among the instances (skipping %v)", skip)
	return leader
}

// haPut stores schedules through the given instances, round robin, from
// 8 goroutines.
func haPut(t *testing.T, insts []*haInstance, schedules []*natsched.Schedule) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(schedules))
	const workers = 8
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(schedules); i += workers {
				ctx, cancel := context.WithTimeout(context.Background(), haOpTimeout)
				_, err := insts[i%len(insts)].s.Put(ctx, schedules[i])
				cancel()
				if err != nil {
					errs <- fmt.Errorf("put %s: %w", schedules[i].ID, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	require.NoError(t, <-errs)
}

// haOneShots returns n one-shot schedules "<prefix>.<i>" targeting
// natsched.fire.<prefix>, the i-th at start + i*spacing.
func haOneShots(prefix string, n int, start time.Time, spacing time.Duration) []*natsched.Schedule {
	out := make([]*natsched.Schedule, n)
	for i := range n {
		out[i] = &natsched.Schedule{
			ID:      fmt.Sprintf("%s.%04d", prefix, i),
			Subject: "natsched.fire." + prefix,
			At:      start.Add(time.Duration(i) * spacing),
		}
	}
	return out
}

// haFire is one message of a stream as stored.
type haFire struct {
	seq     uint64
	subject string
	id      string // Natsched-Id
	planned time.Time
	stored  time.Time // the server's timestamp
	header  nats.Header
}

// haReadStream reads every message of stream with an ordered consumer. A
// read the cluster cannot answer right now (a stream leader election after
// a fault: no responders, a timeout) is started again, within a bound.
func haReadStream(t *testing.T, jsc js.JetStream, stream string) []haFire {
	t.Helper()
	var out []haFire
	var last error
	natschedtest.Eventually(t, 30*time.Second, func() bool {
		out, last = haTryReadStream(haCtx(t), jsc, stream)
		return last == nil
	}, "read stream %s (last error: %v)", stream, &last)
	return out
}

func haTryReadStream(ctx context.Context, jsc js.JetStream, stream string) ([]haFire, error) {
	s, err := jsc.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	total := s.CachedInfo().State.Msgs
	oc, err := jsc.OrderedConsumer(ctx, stream, js.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	var out []haFire
	for uint64(len(out)) < total {
		batch, err := oc.Fetch(int(min(total-uint64(len(out)), 500)), js.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			msg := natsched.Message{Subject: m.Subject(), Header: m.Headers()}
			out = append(out, haFire{
				seq: md.Sequence.Stream, subject: m.Subject(), id: msg.ScheduleID(),
				planned: msg.Planned(), stored: md.Timestamp, header: m.Headers(),
			})
		}
		if err := batch.Error(); err != nil {
			return nil, err
		}
		if got == 0 {
			return nil, fmt.Errorf("reading %s stalled at %d of %d", stream, len(out), total)
		}
	}
	return out, nil
}

// haStreamMsgs returns how many messages stream holds, or -1 if JetStream
// cannot tell right now (no leader, reconnecting).
func haStreamMsgs(jsc js.JetStream, stream string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := jsc.Stream(ctx, stream)
	if err != nil {
		return -1
	}
	return int(s.CachedInfo().State.Msgs)
}

// haCount counts the fires of each expected ID: dups are IDs stored more
// than once, lost are IDs never stored, extra are fires of IDs not
// expected.
func haCount(fires []haFire, ids []string) (dups, lost, extra int, per map[string]int) {
	per = map[string]int{}
	for _, f := range fires {
		per[f.id]++
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
		switch n := per[id]; {
		case n == 0:
			lost++
		case n > 1:
			dups += n - 1
		}
	}
	for id, n := range per {
		if !want[id] {
			extra += n
		}
	}
	return dups, lost, extra, per
}

func haIDs(schedules []*natsched.Schedule) []string {
	out := make([]string, len(schedules))
	for i, s := range schedules {
		out[i] = s.ID
	}
	return out
}

// haGap returns the longest pause between from and the first of times
// after it, and between consecutive times after from, up to and including
// the last time not after to; times must be sorted.
func haGap(times []time.Time, from, to time.Time) time.Duration {
	var gap time.Duration
	prev := from
	for _, a := range times {
		if !a.After(from) {
			continue
		}
		if a.After(to) {
			break
		}
		gap = max(gap, a.Sub(prev))
		prev = a
	}
	if prev.Equal(from) {
		return to.Sub(from) // nothing arrived in the window
	}
	return gap
}

// haArrivals records when messages arrive on a core subscription: the
// first arrival of each Natsched-Id and the lateness against
// Natsched-Planned.
type haArrivals struct {
	mu    sync.Mutex
	times []time.Time // first arrival of each ID, in order
	first map[string]time.Time
	late  map[string]time.Duration // of the first arrival
}

func haSubscribe(t *testing.T, nc *nats.Conn, subject string) *haArrivals {
	t.Helper()
	a := &haArrivals{first: map[string]time.Time{}, late: map[string]time.Duration{}}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		now := time.Now()
		msg := natsched.Message{Subject: m.Subject, Header: m.Header}
		a.mu.Lock()
		defer a.mu.Unlock()
		id := msg.ScheduleID()
		if _, seen := a.first[id]; seen {
			return
		}
		a.first[id] = now
		a.late[id] = now.Sub(msg.Planned())
		a.times = append(a.times, now)
	})
	require.NoError(t, err)
	require.NoError(t, sub.SetPendingLimits(-1, -1))
	require.NoError(t, nc.Flush())
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return a
}

// distinct returns how many IDs have arrived.
func (a *haArrivals) distinct() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.first)
}

func (a *haArrivals) arrivalTimes() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.times)
}

func (a *haArrivals) lateness() map[string]time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]time.Duration, len(a.late))
	for k, v := range a.late {
		out[k] = v
	}
	return out
}

// haLiveArrivals records when each message of the fire stream reaches an
// ordered consumer, in stream order.
type haLiveArrivals struct {
	mu    sync.Mutex
	times []time.Time
	ids   map[string]int
}

func haConsumeFires(t *testing.T, jsc js.JetStream) *haLiveArrivals {
	t.Helper()
	a := &haLiveArrivals{ids: map[string]int{}}
	oc, err := jsc.OrderedConsumer(haCtx(t), haFireStream, js.OrderedConsumerConfig{})
	require.NoError(t, err)
	cc, err := oc.Consume(func(m js.Msg) {
		now := time.Now()
		a.mu.Lock()
		defer a.mu.Unlock()
		a.times = append(a.times, now)
		a.ids[m.Headers().Get(natsched.HeaderID)]++
	})
	require.NoError(t, err)
	t.Cleanup(cc.Stop)
	return a
}

func (a *haLiveArrivals) count() (total, distinct int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.times), len(a.ids)
}

func (a *haLiveArrivals) arrivalTimes() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.times)
}

// haPercentile returns the p-th percentile (0-100) of ds.
func haPercentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// haStoredTimes returns the stored timestamps of fires, sorted.
func haStoredTimes(fires []haFire) []time.Time {
	out := make([]time.Time, len(fires))
	for i, f := range fires {
		out[i] = f.stored
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

// haSkewClock is the wall clock shifted by d: a host whose clock is wrong.
type haSkewClock struct{ d time.Duration }

func (c haSkewClock) Now() time.Time { return time.Now().Add(c.d) }

func (c haSkewClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	return time.AfterFunc(d, f)
}

var _ clock.Clock = haSkewClock{}

// haBody renders a request body: nil as empty, anything else as JSON.
func haBody(t *testing.T, v any) []byte {
	t.Helper()
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// haOK checks that m is a success reply of the API and decodes it into v
// (unless nil).
func haOK(t *testing.T, m *nats.Msg, v any) {
	t.Helper()
	require.Empty(t, m.Header.Get("Nats-Service-Error-Code"), "error reply: %s %s", m.Header.Get("Nats-Service-Error"), m.Data)
	if v != nil {
		require.NoError(t, json.Unmarshal(m.Data, v), "reply %s", m.Data)
	}
}

// haErr checks that m is an error reply of the API with code, in the
// headers and in the body.
func haErr(t *testing.T, m *nats.Msg, code int) {
	t.Helper()
	require.Equal(t, strconv.Itoa(code), m.Header.Get("Nats-Service-Error-Code"), "reply %s", m.Data)
	require.NotEmpty(t, m.Header.Get("Nats-Service-Error"))
	var body struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal(m.Data, &body), "reply %s", m.Data)
	require.Equal(t, code, body.Error.Code)
	require.Equal(t, m.Header.Get("Nats-Service-Error"), body.Error.Message)
}

// haChan subscribes to subject and returns its messages.
func haChan(t *testing.T, nc *nats.Conn, subject string) chan *nats.Msg {
	t.Helper()
	ch := make(chan *nats.Msg, 256)
	sub, err := nc.ChanSubscribe(subject, ch)
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return ch
}

// haNext waits for the next message on ch.
func haNext(t *testing.T, ch chan *nats.Msg, what string) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(haOpTimeout):
		t.Fatalf("no %s within %s", what, haOpTimeout)
		return nil
	}
}

// haLogWarnings logs what in warned about, each distinct message once
// with a count and its first occurrence.
func haLogWarnings(t *testing.T, in *haInstance) {
	t.Helper()
	warns, errs := in.logs.snapshot()
	type seen struct {
		n     int
		first string
	}
	counts := map[string]*seen{}
	var order []string
	for _, w := range append(warns, errs...) {
		key, _, _ := strings.Cut(w, " instance=")
		if counts[key] == nil {
			counts[key] = &seen{first: w}
			order = append(order, key)
		}
		counts[key].n++
	}
	for _, k := range order {
		t.Logf("%s logged %d× %s", in.name, counts[k].n, counts[k].first)
	}
}

// haTiming collects the checks of a test that bound time (gaps,
// lateness), to judge them after the checks of what was stored.
type haTiming struct{ failed []string }

func (h *haTiming) check(ok bool, format string, args ...any) {
	if !ok {
		h.failed = append(h.failed, fmt.Sprintf(format, args...))
	}
}

// done fails the test if a timing check failed.
func (h *haTiming) done(t *testing.T) {
	t.Helper()
	if len(h.failed) > 0 {
		t.Fatalf("timing: %s", strings.Join(h.failed, "; "))
	}
}
