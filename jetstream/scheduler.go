package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/clock"
	"github.com/natsched/natsched/jetstream/internal/lease"
)

// Scheduler is the JetStream scheduler. Every instance serves Put, Get,
// Cancel, Pause, Resume, Trigger and List from the KV bucket; the instance
// holding the lease also fires. Create it with New, then Start it.
//
// It builds the parts (see ARCHITECTURE.md) and hands each what it needs;
// no part holds the Scheduler.
type Scheduler struct {
	js    js.JetStream
	nc    *nats.Conn
	o     options
	names Names
	log   *slog.Logger

	clk    *clockSync // the firing clock
	m      *metrics
	rules  *rules
	loop   *firer
	stats  stats
	faults faults // hooks for tests that inject crashes and freezes

	mu       sync.Mutex
	starting bool
	started  bool
	closed   bool
	// startedAt: when Start finished (firing clock).
	startedAt time.Time
	done      chan struct{} // closed once Close has stopped everything
	// Set by Start.
	st           *store
	kv           js.KeyValue
	leaseKV      js.KeyValue
	leaseMarkers bool
	cancel       context.CancelFunc
	wg           sync.WaitGroup
	consumers    []*Consumer
	api          *api
	intake       *intake
	coord        *coordinator // with partitions
}

var _ natsched.Scheduler = (*Scheduler)(nil)

// New returns a Scheduler using jsc. It does not touch the server until
// Start.
//
// Errors: ErrInvalidOption for a nil jsc or an invalid option.
func New(jsc js.JetStream, opts ...Option) (*Scheduler, error) {
	if jsc == nil {
		return nil, invalidOption("nil JetStream")
	}
	o := options{prefix: DefaultPrefix, replicas: 1, leaseTTL: DefaultLeaseTTL,
		clock: clock.Real(), leaseClock: clock.Real(), workers: DefaultWorkers, partitions: 1,
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
	m := newMetrics(o.partitions)
	o.engine.OnMissed = func(p natsched.Misfire, n int) { m.missed.WithLabelValues(string(p)).Add(float64(n)) }
	o.engine = o.engine.WithDefaults()
	o.dupWindow = max(o.dupWindow, neededDuplicateWindow(o.leaseTTL))
	if o.fireMaxAge > 0 && o.fireMaxAge < o.dupWindow {
		// JetStream refuses a duplicate window longer than the max age.
		return nil, invalidOption("fire max age %s is shorter than the fire stream's duplicate window %s", o.fireMaxAge, o.dupWindow)
	}
	nc := jsc.Conn()
	s := &Scheduler{
		js: jsc, nc: nc, o: o, names: NamesFor(o.prefix),
		log:  o.logger.With("instance", o.name),
		done: make(chan struct{}), m: m,
	}
	s.clk = &clockSync{clock: o.clock, on: o.clockSync == nil && o.clock == clock.Real() || o.clockSync != nil && *o.clockSync}
	s.rules = &rules{names: s.names, allow: o.allow, maxPayload: func() int { return int(nc.MaxPayload()) }}
	s.loop = newFirer(&firer{
		nc: nc, clock: o.clock, leaseClock: o.leaseClock, now: s.clk.now, opts: o.engine,
		workers: o.workers, parts: o.partitions, log: s.log, m: m, faults: &s.faults,
	})
	if o.registerer != nil {
		err := m.register(o.registerer, gauges{
			schedules: s.loop.statusCounts, leader: s.loop.isLeader.Load, held: s.loop.heldPartitions,
			clockOffset: func() time.Duration { d, _ := s.clk.offset(); return d },
		})
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// BuildVersion is natsched's version as the build records it (the module
// version of github.com/natsched/natsched, "(devel)" in a checkout), or
// Version when there is no build information.
func BuildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Path == modulePath && bi.Main.Version != "" {
			return bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Path == modulePath {
				return d.Version
			}
		}
	}
	return Version
}

const modulePath = "github.com/natsched/natsched"

// Healthy reports nil while the instance is connected, has its buckets and
// streams and has loaded its index, else why not (see HealthHandler).
func (s *Scheduler) Healthy(ctx context.Context) error {
	s.mu.Lock()
	started, closed := s.started, s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return natsched.ErrClosed
	case !started:
		return fmt.Errorf("%w: not started", natsched.ErrUnavailable)
	case !s.nc.IsConnected():
		return fmt.Errorf("%w: not connected to NATS (%s)", natsched.ErrUnavailable, s.nc.Status())
	case !s.loop.loaded.Load():
		return fmt.Errorf("%w: the index is loading", natsched.ErrUnavailable)
	}
	for _, stream := range []string{s.names.SchedulesStream(), "KV_" + s.names.LeaderBucket, s.names.FireStream} {
		if _, err := s.js.Stream(ctx, stream); err != nil {
			return fmt.Errorf("%w: stream %s: %w", natsched.ErrUnavailable, stream, err)
		}
	}
	return nil
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

// ClockOffset reports the estimated offset of the server's clock from this
// host's (server - local) and whether it is known yet.
func (s *Scheduler) ClockOffset() (time.Duration, bool) { return s.clk.offset() }

// Start creates the buckets and streams that do not exist (existing ones
// keep the operator's configuration; see the package documentation),
// starts campaigning for the lease and starts the consumers. The
// scheduler runs until Close; ctx bounds the setup (and handlers' contexts
// inherit its values, not its cancellation). It does not hold the
// scheduler while it waits for the server: Close may be called meanwhile,
// and then Start undoes what it started and returns natsched.ErrClosed.
// Starting a started scheduler does nothing.
//
// Errors: ErrDuplicateWindow when the fire stream exists with a duplicate
// window shorter than natsched needs; natsched.ErrClosed after Close; the
// server's errors.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return natsched.ErrClosed
	case s.started || s.starting:
		s.mu.Unlock()
		return nil
	}
	s.starting = true
	s.mu.Unlock()
	r, err := s.start(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.starting = false
	switch {
	case err != nil:
		return err
	case s.closed:
		r.stop(ctx)
		return natsched.ErrClosed
	}
	s.st, s.kv, s.leaseKV, s.leaseMarkers = r.st, r.inf.kv, r.inf.leaseKV, r.inf.markers
	s.cancel, s.consumers, s.api, s.intake = r.cancel, r.consumers, r.api, r.intake
	s.started, s.startedAt = true, s.clk.now()
	return nil
}

// running is what start started, for Start to keep or undo.
type running struct {
	inf       *infra
	st        *store
	cancel    context.CancelFunc
	wg        *sync.WaitGroup
	consumers []*Consumer
	api       *api
	intake    *intake
}

// stop undoes start: requests and intake first, then the goroutines and
// the consumers.
func (r *running) stop(ctx context.Context) error {
	if r.api != nil {
		r.api.stop()
	}
	if r.intake != nil {
		r.intake.stop(ctx)
	}
	if r.cancel != nil {
		r.cancel()
	}
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	var errs []error
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	for _, c := range r.consumers {
		if err := c.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// start builds and starts the parts.
func (s *Scheduler) start(ctx context.Context) (_ *running, err error) {
	o := s.o
	r := &running{wg: &s.wg, inf: &infra{
		js: s.js, names: s.names, replicas: o.replicas, leaseTTL: o.leaseTTL,
		dupWindow: o.dupWindow, fireMaxAge: o.fireMaxAge, deadMaxAge: o.deadMaxAge,
		intake: !o.noIntake, log: s.log,
	}}
	defer func() {
		if err != nil {
			_ = r.stop(ctx)
		}
	}()
	if err := s.retryNotReady(ctx, r.inf.ensure); err != nil {
		return nil, err
	}
	s.o.leaseTTL = r.inf.leaseTTL // the lease bucket's, when another instance holds it with a longer one
	r.st = &store{kv: r.inf.kv, js: s.js, names: s.names, rules: s.rules, now: s.clk.now, log: s.log,
		candidates: s.loop.candidates}
	fire := &firing{js: s.js, nc: s.nc, st: r.st, rules: s.rules, opts: o.engine, now: s.clk.now, m: s.m,
		stats: &s.stats, faults: &s.faults, log: s.log, fresh: s.loop.askFresh,
		schedules: r.inf.schedules, own: s.loop.own}
	fire.batched.Store(r.inf.batched)
	s.loop.kv, s.loop.lastSeq, s.loop.fire = r.inf.kv, r.st.lastSeq, fire.batch

	for _, cfg := range o.consumers {
		if cfg.Prefix == "" {
			cfg.Prefix = s.names.Prefix // names the durable, its stream and dead letters
		}
		if cfg.Logger == nil {
			cfg.Logger = s.log
		}
		cfg.metrics = s.m
		c, err := NewConsumer(s.js, cfg.router, cfg)
		if err != nil {
			return nil, err
		}
		if err := s.retryNotReady(ctx, c.Start); err != nil {
			return nil, err
		}
		r.consumers = append(r.consumers, c)
	}
	// The scheduler owns this context: Close cancels it and waits for
	// every goroutine started under it.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	if !o.noIntake {
		err := s.retryNotReady(ctx, func(setup context.Context) error {
			in, err := startIntake(setup, runCtx, &intake{js: s.js, nc: s.nc, names: s.names, st: r.st,
				clock: o.leaseClock, log: s.log, m: s.m})
			r.intake = in
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	if !o.noAPI {
		r.api, err = startAPI(&api{nc: s.nc, names: s.names, instance: o.name, st: r.st, now: s.clk.now, m: s.m,
			report: s.Status, log: s.log, ctx: runCtx})
		if err != nil {
			return nil, err
		}
	}
	leases, coord, err := s.leases(r.inf)
	if err != nil {
		return nil, err
	}
	s.wg.Go(func() { s.loop.run(runCtx) })
	if s.clk.on {
		s.wg.Go(func() { s.clk.watch(runCtx, r.inf.leaseKV, s.nc, o.leaseClock) })
	}
	if coord != nil {
		s.coord = coord
		s.wg.Go(func() { coord.run(runCtx) })
	}
	for _, l := range leases {
		s.wg.Go(func() { l.Run(runCtx) })
	}
	return r, nil
}

// leases builds one lease per partition (see partitions.go), and with
// more than one partition the coordinator that balances them.
func (s *Scheduler) leases(inf *infra) ([]*lease.Lease, *coordinator, error) {
	o := s.o
	var coord *coordinator
	if o.partitions > 1 {
		coord = newCoordinator(&coordinator{kv: inf.leaseKV, nc: s.nc, n: o.partitions, name: o.name,
			ttl: o.leaseTTL, clk: o.leaseClock, log: s.log, markers: inf.markers})
	}
	var leases []*lease.Lease
	for p := range o.partitions {
		cfg := lease.Config{
			KV: inf.leaseKV, Key: PartitionKey(p), Name: o.name, TTL: o.leaseTTL,
			Clock: o.leaseClock, Now: s.clk.now, Markers: inf.markers,
			Conn: s.nc, Logger: s.log, Holder: s.loop.holder(p),
		}
		if coord != nil {
			cfg.Partitions, cfg.Gate = o.partitions, coord.gate(p)
			if p == 0 {
				cfg.Mirror = mirrorKey
			}
		}
		l, err := lease.New(cfg)
		if err != nil {
			return nil, nil, err
		}
		leases = append(leases, l)
	}
	return leases, coord, nil
}

// Close stops firing (in-flight fires stop at the fence), releases the
// lease so that another instance takes over at once, stops the consumers
// and waits for all of it, or for ctx. It is safe to call twice, or before
// or during Start.
func (s *Scheduler) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	r := &running{wg: &s.wg, cancel: s.cancel, consumers: s.consumers, api: s.api, intake: s.intake}
	started := s.started
	s.mu.Unlock()
	if !started {
		close(s.done) // before Start, or during it: Start undoes its work
		return nil
	}
	err := r.stop(ctx)
	close(s.done)
	return err
}

// Done is closed once Close has stopped the scheduler.
func (s *Scheduler) Done() <-chan struct{} { return s.done }

// ready returns the store once started.
func (s *Scheduler) ready() (*store, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return nil, natsched.ErrClosed
	case s.st == nil:
		return nil, fmt.Errorf("%w: not started", natsched.ErrUnavailable)
	}
	return s.st, nil
}

// Put implements natsched.Scheduler.
func (s *Scheduler) Put(ctx context.Context, in *natsched.Schedule) (*natsched.Schedule, error) {
	st, err := s.ready()
	if err != nil {
		return nil, err
	}
	return st.put(ctx, in, putOptions{})
}

// Get implements natsched.Scheduler; a stored value that is not a
// schedule is natsched.ErrUnreadable.
func (s *Scheduler) Get(ctx context.Context, id string) (*natsched.Schedule, error) {
	return s.byID(ctx, id, (*store).load)
}

// Cancel implements natsched.Scheduler. A stored value that is not a
// schedule is deleted too; the reply then holds only its ID, revision and,
// in LastError, why it could not be read.
func (s *Scheduler) Cancel(ctx context.Context, id string) (*natsched.Schedule, error) {
	return s.byID(ctx, id, (*store).cancel)
}

// Pause implements natsched.Scheduler.
func (s *Scheduler) Pause(ctx context.Context, id string) (*natsched.Schedule, error) {
	return s.byID(ctx, id, (*store).pause)
}

// Resume implements natsched.Scheduler.
func (s *Scheduler) Resume(ctx context.Context, id string) (*natsched.Schedule, error) {
	return s.byID(ctx, id, (*store).resume)
}

// Trigger implements natsched.Scheduler.
func (s *Scheduler) Trigger(ctx context.Context, id string) (*natsched.Schedule, error) {
	return s.byID(ctx, id, (*store).trigger)
}

func (s *Scheduler) byID(ctx context.Context, id string, f func(*store, context.Context, string) (*natsched.Schedule, error)) (*natsched.Schedule, error) {
	st, err := s.ready()
	if err != nil {
		return nil, err
	}
	return f(st, ctx, id)
}

// List implements natsched.Scheduler. Without a status filter the
// candidates come from the bucket's key listing; with one, from this
// instance's index once it has caught up with every write acknowledged
// before the call (natsched.ErrUnavailable if it cannot within 3s). The
// page's values are read from the bucket; values that are not schedules
// are skipped and counted in Skipped.
func (s *Scheduler) List(ctx context.Context, o natsched.ListOptions) (*natsched.ListPage, error) {
	st, err := s.ready()
	if err != nil {
		return nil, err
	}
	return st.list(ctx, o)
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
		IsLeader: s.loop.isLeader.Load(), Pending: s.loop.pending(), Version: BuildVersion(),
		Partitions: s.o.partitions, HeldPartitions: s.loop.heldPartitions(), PartitionLeaders: []string{},
	}
	if d, known := s.clk.offset(); known {
		st.ClockOffset = d.String()
	}
	s.mu.Lock()
	kv := s.leaseKV
	st.Started = natsched.FormatTime(s.startedAt)
	s.mu.Unlock()
	if kv == nil {
		return st, nil
	}
	st.PartitionLeaders = make([]string, s.o.partitions)
	for p := range st.PartitionLeaders {
		v, _, err := lease.Current(ctx, kv, PartitionKey(p))
		if err != nil {
			return st, unavailable(err)
		}
		st.PartitionLeaders[p] = v.ID
	}
	st.Leader = st.PartitionLeaders[0]
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
