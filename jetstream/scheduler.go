package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/clock"
	"github.com/natsched/natsched/internal/engine"
)

// Defaults.
const (
	DefaultLeaseTTL = 3 * time.Second
	DefaultWorkers  = 1024
	// MinDuplicateWindow is the least duplicate window of the fire stream;
	// the window is also at least 10 lease TTLs.
	MinDuplicateWindow = 2 * time.Minute
)

// Option configures a Scheduler.
type Option func(*options) error

type options struct {
	prefix     string
	name       string
	replicas   int
	leaseTTL   time.Duration
	clock      clock.Clock
	leaseClock clock.Clock
	engine     engine.Options
	dupWindow  time.Duration
	fireMaxAge time.Duration
	deadMaxAge time.Duration
	workers    int
	logger     *slog.Logger
	router     *natsched.Router
	consumers  []ConsumerConfig
	allow      []AllowRule
	clockSync  *bool
	noAPI      bool
	noIntake   bool
	version    string
}

func invalidOption(format string, args ...any) error {
	return fmt.Errorf("%w: %s", natsched.ErrInvalid, fmt.Sprintf(format, args...))
}

// WithPrefix sets the prefix of every bucket, stream and subject (default
// "natsched"): one token of [A-Za-z0-9_-].
func WithPrefix(p string) Option {
	return func(o *options) error {
		if !ValidPrefix(p) {
			return invalidOption("prefix %q: want one token of [A-Za-z0-9_-], at most 32 characters", p)
		}
		o.prefix = p
		return nil
	}
}

// WithName sets the instance name shown in the lease and in status
// (default: host name and process ID).
func WithName(name string) Option {
	return func(o *options) error {
		if name == "" || len(name) > 128 {
			return invalidOption("name must be 1-128 characters")
		}
		o.name = name
		return nil
	}
}

// WithReplicas sets the replicas of the buckets and streams the scheduler
// creates (default 1; 3 on a cluster).
func WithReplicas(n int) Option {
	return func(o *options) error {
		if n < 1 || n > 5 {
			return invalidOption("replicas must be 1 to 5, got %d", n)
		}
		o.replicas = n
		return nil
	}
}

// WithLeaseTTL sets how long a leader's lease lives without renewal
// (default 3s). A killed leader is replaced about this long after it died.
// The lease bucket's TTL is set to it at Start, except that a shorter TTL
// is not applied while another instance holds the lease: this instance
// then keeps the bucket's TTL (and logs a warning). Run every instance
// with the same lease TTL.
func WithLeaseTTL(d time.Duration) Option {
	return func(o *options) error {
		if d < 300*time.Millisecond {
			return invalidOption("lease TTL must be at least 300ms, got %s", d)
		}
		o.leaseTTL = d
		return nil
	}
}

// WithClock sets the clock firing follows (default clock.Real()).
func WithClock(c clock.Clock) Option {
	return func(o *options) error {
		if c == nil {
			return invalidOption("nil clock")
		}
		o.clock = c
		return nil
	}
}

// WithLeaseClock sets the clock the lease is renewed by (default
// clock.Real()). The server expires leases in real time, so only tests of
// the lease itself want another.
func WithLeaseClock(c clock.Clock) Option {
	return func(o *options) error {
		if c == nil {
			return invalidOption("nil lease clock")
		}
		o.leaseClock = c
		return nil
	}
}

// WithMisfireThreshold: occurrences planned more than d before a leader
// took over are missed and follow their misfire policy (default 1s).
func WithMisfireThreshold(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return invalidOption("misfire threshold must be positive")
		}
		o.engine.MisfireThreshold = d
		return nil
	}
}

// WithRetention sets how long done schedules stay readable (default 24h).
func WithRetention(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return invalidOption("retention must be positive")
		}
		o.engine.Retention = d
		return nil
	}
}

// WithDuplicateWindow sets the duplicate window the fire stream is created
// with; it is raised to at least 2 minutes and 10 lease TTLs. Start
// refuses an existing fire stream whose window is shorter than that
// minimum (ErrDuplicateWindow).
func WithDuplicateWindow(d time.Duration) Option {
	return func(o *options) error { o.dupWindow = d; return nil }
}

// WithWorkers bounds how many schedules the leader fires concurrently
// (default 1024).
func WithWorkers(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return invalidOption("workers must be positive")
		}
		o.workers = n
		return nil
	}
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error { o.logger = l; return nil }
}

// WithRouter hands fired messages to router through a durable consumer
// "<prefix>_<Group>" (see ConsumerConfig), and lets the typed helpers
// (natsched.ScheduleIn, ...) find the router's registry. The group
// receives only what the router has handlers for (router.Subjects(), unless
// cfg.Subjects says otherwise), fired after its durable was first created
// (unless cfg.FromStart). It may be given more than once with different
// groups.
func WithRouter(router *natsched.Router, cfg ConsumerConfig) Option {
	return func(o *options) error {
		if router == nil {
			return invalidOption("nil router")
		}
		if o.router == nil {
			o.router = router
		}
		cfg.router = router
		o.consumers = append(o.consumers, cfg)
		return nil
	}
}

// WithoutAPI does not serve the micro service on <prefix>.api.* (it is
// served by default, by every instance).
func WithoutAPI() Option { return func(o *options) error { o.noAPI = true; return nil } }

// WithoutIntake does not consume the durable intake stream <prefix>.in.>
// (consumed by default, shared by every instance).
func WithoutIntake() Option { return func(o *options) error { o.noIntake = true; return nil } }

// Scheduler is the JetStream scheduler. Every instance serves Put, Get,
// Cancel, Pause, Resume, Trigger and List from the KV bucket; the instance
// holding the lease also fires. Create it with New, then Start it.
type Scheduler struct {
	js    js.JetStream
	nc    *nats.Conn
	o     options
	names Names
	clock clock.Clock
	log   *slog.Logger

	kv      js.KeyValue
	leaseKV js.KeyValue
	// leaseMarkers: the lease bucket announces expiries to watchers.
	leaseMarkers bool

	mu        sync.Mutex
	started   bool
	closed    bool
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	consumers []*Consumer
	api       *api
	intake    *intake
	loop      *leader

	targets sync.Map // subject -> time.Time: when the positive check expires

	// syncClock: fire by the server's clock (see skew).
	syncClock bool
	skew      skew

	stats stats
	// faults are hooks for tests that inject crashes.
	faults faults
}

type stats struct {
	fired      atomic.Uint64
	late       atomic.Uint64
	duplicates atomic.Uint64
	failures   atomic.Uint64
	refused    atomic.Uint64
	fenced     atomic.Uint64
}

type faults struct {
	// afterPublish runs after an occurrence's PubAck and before the state
	// write; returning true abandons the fire there, as a crash would.
	afterPublish func(id string) bool
	// beforePublish runs in each batch after its read and before its
	// first publish, where a process can be frozen.
	beforePublish func()
}

var _ natsched.Scheduler = (*Scheduler)(nil)

// New returns a Scheduler using jsc. It does not touch the server until
// Start.
func New(jsc js.JetStream, opts ...Option) (*Scheduler, error) {
	if jsc == nil {
		return nil, invalidOption("nil JetStream")
	}
	o := options{prefix: DefaultPrefix, replicas: 1, leaseTTL: DefaultLeaseTTL,
		clock: clock.Real(), leaseClock: clock.Real(), workers: DefaultWorkers,
		fireMaxAge: DefaultFireMaxAge, deadMaxAge: DefaultDeadMaxAge}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.name == "" {
		o.name = DefaultName()
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	o.engine = o.engine.WithDefaults()
	o.dupWindow = max(o.dupWindow, neededDuplicateWindow(o.leaseTTL))
	if o.fireMaxAge > 0 && o.fireMaxAge < o.dupWindow {
		// JetStream refuses a duplicate window longer than the max age.
		return nil, invalidOption("fire max age %s is shorter than the fire stream's duplicate window %s", o.fireMaxAge, o.dupWindow)
	}
	s := &Scheduler{
		js: jsc, nc: jsc.Conn(), o: o, names: NamesFor(o.prefix), clock: o.clock,
		log: o.logger.With("instance", o.name),
	}
	s.syncClock = o.clockSync == nil && o.clock == clock.Real() || o.clockSync != nil && *o.clockSync
	s.loop = newLeader(s)
	return s, nil
}

// DefaultName is the instance name unless WithName gives one: the host
// name and the process ID.
func DefaultName() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "natsched"
	}
	return host + "-" + strconv.Itoa(os.Getpid())
}

// Names returns the buckets, streams and subjects in use.
func (s *Scheduler) Names() Names { return s.names }

// Name returns the instance name.
func (s *Scheduler) Name() string { return s.o.name }

// Registry returns the registry of the router given with WithRouter, so
// that the typed helpers can encode messages.
func (s *Scheduler) Registry() *natsched.Registry {
	if s.o.router == nil {
		return nil
	}
	return s.o.router.Registry()
}

// Start creates the buckets and streams that do not exist (existing ones
// keep the operator's configuration; see the package documentation),
// starts campaigning for the lease and starts the consumers. The
// scheduler runs until Close; ctx only bounds the setup.
//
// Errors: ErrDuplicateWindow when the fire stream exists with a duplicate
// window shorter than natsched needs; natsched.ErrClosed after Close; the
// server's errors.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return natsched.ErrClosed
	case s.started:
		return nil
	}
	if err := s.retryNotReady(ctx, s.ensureInfra); err != nil {
		return err
	}
	for _, cfg := range s.o.consumers {
		if cfg.Prefix == "" {
			cfg.Prefix = s.names.Prefix // names the durable, its stream and dead letters
		}
		if cfg.Logger == nil {
			cfg.Logger = s.log
		}
		c, err := NewConsumer(s.js, cfg.router, cfg)
		if err != nil {
			return err
		}
		if err := c.Start(ctx); err != nil {
			return err
		}
		s.consumers = append(s.consumers, c)
	}
	// The scheduler owns this context: Close cancels it and waits for
	// every goroutine started under it.
	runCtx, cancel := context.WithCancel(context.Background())
	if !s.o.noIntake {
		err := s.retryNotReady(ctx, func(ctx context.Context) error {
			in, err := s.startIntake(ctx, runCtx)
			s.intake = in
			return err
		})
		if err != nil {
			cancel()
			return err
		}
	}
	if !s.o.noAPI {
		a, err := s.startAPI()
		if err != nil {
			cancel()
			if s.intake != nil {
				s.intake.stop(ctx)
			}
			return err
		}
		s.api = a
	}
	s.cancel = cancel
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.loop.run(runCtx)
	}()
	if s.syncClock {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.watchSkew(runCtx)
		}()
	}
	l, err := s.newLease()
	if err != nil {
		cancel()
		return err
	}
	go func() {
		defer s.wg.Done()
		l.Run(runCtx)
	}()
	s.started = true
	return nil
}

// Close stops firing (finishing in-flight publishes and state writes),
// releases the lease so that another instance takes over at once, stops
// the consumers and waits for all of it, or for ctx. It is safe to call
// twice or before Start.
func (s *Scheduler) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	cancel := s.cancel
	consumers := s.consumers
	a, in := s.api, s.intake
	s.mu.Unlock()
	// Stop taking requests and intake first, so that nothing is accepted
	// that this instance cannot finish.
	if a != nil {
		a.stop()
	}
	if in != nil {
		in.stop(ctx)
	}
	if cancel != nil {
		cancel()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var errs []error
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	for _, c := range consumers {
		if err := c.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// IsLeader reports whether this instance holds the lease and fires.
func (s *Scheduler) IsLeader() bool { return s.loop.isLeader.Load() }

// Status is what natsched.api.status reports (natsched.InstanceStatus).
type Status = natsched.InstanceStatus

// Status returns this instance's view.
func (s *Scheduler) Status(ctx context.Context) (Status, error) {
	st := Status{
		Instance: s.o.name, Fired: s.stats.fired.Load(), Late: s.stats.late.Load(),
		Duplicates: s.stats.duplicates.Load(), PublishFailures: s.stats.failures.Load(),
		Refused: s.stats.refused.Load(), Fenced: s.stats.fenced.Load(),
	}
	st.IsLeader = s.loop.isLeader.Load()
	st.Pending = s.loop.pending()
	if s.leaseKV == nil {
		return st, nil
	}
	name, err := currentLeader(ctx, s)
	if err != nil {
		return st, err
	}
	st.Leader = name
	return st, nil
}

// retryNotReady retries setup while JetStream is not ready to answer
// (right after a cluster restart its streams have no leaders yet), until
// ctx ends. Errors the server answers with are returned at once.
func (s *Scheduler) retryNotReady(ctx context.Context, setup func(context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := setup(actx)
		cancel()
		notReady := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrNoResponders) ||
			errors.Is(err, nats.ErrTimeout) || errors.Is(err, js.ErrJetStreamNotEnabled)
		if err == nil || !notReady || ctx.Err() != nil {
			return err
		}
		s.log.Warn("natsched: JetStream not ready; retrying", "err", err)
		wait, stop := clock.After(s.o.leaseClock, 500*time.Millisecond)
		select {
		case <-ctx.Done():
			stop()
			return err
		case <-wait:
		}
	}
}
