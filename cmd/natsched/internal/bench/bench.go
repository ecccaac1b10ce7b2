// Package bench implements `natsched bench`: it starts an embedded
// nats-server (or uses --nats), runs natsched schedulers and subscribers in
// the same process, and measures the workloads of DESIGN.md's Performance
// section, optionally side by side with NATS server message schedules
// (--compare-native) and raw JetStream publishing (--raw).
//
// Every workload uses its own prefix (buckets, streams and subjects) and
// deletes what it created when it ends, so that workloads do not interfere
// and memory and disk do not accumulate.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"

	"github.com/natsched/natsched/cmd/natsched/internal/natsconn"
	nsjs "github.com/natsched/natsched/jetstream"
)

// Exit statuses of Main.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// Workload names, in the order they run.
const (
	WSpread   = "spread"
	WInstant  = "instant"
	WBurst    = "burst"
	WCreate   = "create"
	WPending  = "pending"
	WFailover = "failover"
	WIdle     = "idle"
	WRaw      = "raw"
	// WSustained is not in the default set: it stores rate x duration
	// schedules (1.5M by default) and runs for minutes.
	WSustained = "sustained"
	// WScale is not in the default set: three bursts, through 1, 2 and 3
	// instances of partitioned leases.
	WScale = "scale"
)

// Systems a result row belongs to.
const (
	SystemNatsched = "natsched"
	SystemNative   = "native"
	SystemRaw      = "raw"
)

// defaultWorkloads run when --workloads is not given; raw runs with --raw.
var defaultWorkloads = []string{WSpread, WInstant, WBurst, WCreate, WPending, WFailover, WIdle}

// nativeWorkloads also run through NATS server message schedules with
// --compare-native.
var nativeWorkloads = map[string]bool{WSpread: true, WInstant: true, WBurst: true, WCreate: true}

// Pending loaders (--pending-load).
const (
	loadAsync  = "async"  // PublishAsync of stored schedules to the bucket's subjects
	loadCreate = "create" // kv.Create from many goroutines
	loadAPI    = "api"    // the Go API (Scheduler.Put) from many goroutines
)

// Observation modes (--observe) for natsched fires.
const (
	observeCore     = "core"
	observeConsumer = "consumer"
)

type config struct {
	conn          natsconn.Flags
	settings      *natsconn.Settings // resolved in Main
	workloads     []string
	compareNative bool
	raw           bool
	jsonOut       bool
	progress      bool
	verbose       bool
	observe       string

	spreadN         int
	spreadOver      time.Duration
	instantN        int
	burstN          int
	createN         int
	createConc      int
	pendingN        int
	pendingLoad     string
	idleN           int
	idleFor         time.Duration
	failoverLease   time.Duration
	failoverEvery   time.Duration
	rawN            int
	cpuProfile      string
	sustainedRate   int
	sustainedFor    time.Duration
	scaleN          int
	scalePartitions int
}

func (c *config) wants(w string) bool { return slices.Contains(c.workloads, w) }

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

const usageText = `Usage: natsched bench [flags]

Measures natsched on an embedded nats-server (or --nats URL), with the
scheduler and a subscriber in this process. Workloads:
  spread    N one-shots with sub-second spacing over a period: lateness
            (received minus planned) p50/p90/p99/max
  instant   N one-shots due in the same instant: lateness
  burst     N one-shots due at once: first and last fire lateness, fires/s
  create    schedules created per second through the Go API (with
            concurrency) and through the micro API
  pending   N pending schedules: scheduler heap per schedule, and how long a
            fresh instance takes from Start to leading with its index loaded
  failover  two instances, the leader's connection is cut: gap between the
            last fire before and the first fire after
  idle      N pending schedules, nothing due: messages/s and CPU
  sustained (not in the default set) --sustained-rate fires/s offered for
            --sustained-for, schedules stored ahead: fires/s achieved, p99
            lateness per 5s of planned time, and whether it stays bounded

With --compare-native, spread, instant, burst and create also run through
NATS server message schedules (a stream with AllowMsgSchedules, Nats-Schedule
"@at" headers, one subject per schedule) and are printed side by side with
the ratio natsched/native. --raw adds raw JetStream PublishAsync throughput
(with a unique Nats-Msg-Id, and without) as the ceiling. Progress goes to
stderr; the table (or, with --json, one JSON object) to stdout.

Flags:
`

func newFlagSet(c *config, workloads *string) *pflag.FlagSet {
	fs := pflag.NewFlagSet("natsched bench", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	fs.StringVar(workloads, "workloads", strings.Join(defaultWorkloads, ","), "comma-separated `list` of workloads to run: "+strings.Join(append(slices.Clone(defaultWorkloads), WRaw, WSustained, WScale), ","))
	fs.BoolVar(&c.compareNative, "compare-native", false, "also run spread, instant, burst and create through NATS server message schedules")
	fs.BoolVar(&c.raw, "raw", false, "also measure raw JetStream PublishAsync throughput (the ceiling)")
	fs.BoolVar(&c.jsonOut, "json", false, "print one JSON object instead of the table")
	fs.BoolVar(&c.progress, "progress", true, "print progress on stderr (--progress=false to silence)")
	fs.BoolVar(&c.verbose, "verbose", false, "log the schedulers' warnings and errors on stderr")
	fs.StringVar(&c.observe, "observe", observeCore, "how natsched fires are observed: core (a core subscription on the target) or consumer (an ordered JetStream consumer, as native fires must be)")
	fs.IntVar(&c.spreadN, "spread-n", 1000, "schedules in spread")
	fs.DurationVar(&c.spreadOver, "spread-over", 10*time.Second, "period spread's schedules are spread over")
	fs.IntVar(&c.instantN, "instant-n", 1000, "schedules in instant")
	fs.IntVar(&c.burstN, "burst-n", 100_000, "schedules in burst")
	fs.IntVar(&c.createN, "create-n", 20_000, "schedules created through each API in create")
	fs.IntVar(&c.createConc, "create-concurrency", 32, "concurrent callers in create")
	fs.IntVar(&c.pendingN, "pending-n", 1_000_000, "pending schedules in pending")
	fs.StringVar(&c.pendingLoad, "pending-load", loadAsync, "how pending stores its schedules: async (PublishAsync of stored schedules into the bucket), create (kv.Create from many goroutines) or api (Go API Put)")
	fs.IntVar(&c.idleN, "idle-n", 10_000, "pending schedules in idle")
	fs.DurationVar(&c.idleFor, "idle-for", 10*time.Second, "how long idle measures")
	fs.DurationVar(&c.failoverLease, "failover-lease", 3*time.Second, "lease TTL of the instances in failover")
	fs.DurationVar(&c.failoverEvery, "failover-every", 50*time.Millisecond, "interval of the recurring schedule in failover")
	fs.IntVar(&c.rawN, "raw-n", 200_000, "messages published by each raw run")
	fs.IntVar(&c.sustainedRate, "sustained-rate", 50_000, "fires per second offered in sustained")
	fs.DurationVar(&c.sustainedFor, "sustained-for", 30*time.Second, "how long sustained offers its rate")
	fs.IntVar(&c.scaleN, "scale-n", 50_000, "schedules in each burst of scale")
	fs.IntVar(&c.scalePartitions, "scale-partitions", 6, "partitions of the instances in scale")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (scheduler, client and embedded server) to `FILE`, for go tool pprof")
	// --nats (and -s/--server, $NATS_URL, a context) joins a NATS system
	// with JetStream instead of an embedded server in a temp dir.
	c.conn.AddFlags(fs, natsconn.ServerAlias("nats"))
	return fs
}

// FlagSet is bench's flags, for documentation checks.
func FlagSet() *pflag.FlagSet {
	var c config
	var w string
	return newFlagSet(&c, &w)
}

// usage renders the help text.
func usage() string {
	return usageText + FlagSet().FlagUsagesWrapped(100)
}

// parseArgs parses the command line. It returns flag.ErrHelp for -h and a
// *usageError for anything else wrong.
func parseArgs(args []string) (*config, error) {
	c := &config{}
	var workloads string
	fs := newFlagSet(c, &workloads)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, err
		}
		return nil, usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q", fs.Arg(0))
	}
	known := append(slices.Clone(defaultWorkloads), WRaw, WSustained, WScale)
	seen := map[string]bool{}
	for w := range strings.SplitSeq(workloads, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		if w == "all" {
			for _, d := range defaultWorkloads {
				seen[d] = true
			}
			continue
		}
		if !slices.Contains(known, w) {
			return nil, usagef("--workloads: unknown workload %q (known: %s)", w, strings.Join(known, ", "))
		}
		seen[w] = true
	}
	if c.raw {
		seen[WRaw] = true
	}
	if len(seen) == 0 {
		return nil, usagef("--workloads: no workload selected")
	}
	for _, w := range known { // canonical order
		if seen[w] {
			c.workloads = append(c.workloads, w)
		}
	}
	positive := []struct {
		name string
		v    int
	}{
		{"spread-n", c.spreadN}, {"instant-n", c.instantN}, {"burst-n", c.burstN},
		{"create-n", c.createN}, {"create-concurrency", c.createConc},
		{"pending-n", c.pendingN}, {"idle-n", c.idleN}, {"raw-n", c.rawN},
		{"sustained-rate", c.sustainedRate}, {"scale-n", c.scaleN},
	}
	for _, p := range positive {
		if p.v < 1 {
			return nil, usagef("--%s must be at least 1, got %d", p.name, p.v)
		}
	}
	switch {
	case c.sustainedFor < time.Second:
		return nil, usagef("--sustained-for must be at least 1s, got %s", c.sustainedFor)
	case c.spreadOver <= 0:
		return nil, usagef("--spread-over must be positive, got %s", c.spreadOver)
	case c.idleFor <= 0:
		return nil, usagef("--idle-for must be positive, got %s", c.idleFor)
	case c.failoverLease < 300*time.Millisecond:
		return nil, usagef("--failover-lease must be at least 300ms, got %s", c.failoverLease)
	case c.failoverEvery < time.Millisecond:
		return nil, usagef("--failover-every must be at least 1ms, got %s", c.failoverEvery)
	case c.scalePartitions < 1 || c.scalePartitions > nsjs.MaxPartitions:
		return nil, usagef("--scale-partitions must be between 1 and %d, got %d", nsjs.MaxPartitions, c.scalePartitions)
	case c.createConc > 4096:
		return nil, usagef("--create-concurrency must be at most 4096, got %d", c.createConc)
	}
	switch c.pendingLoad {
	case loadAsync, loadCreate, loadAPI:
	default:
		return nil, usagef("--pending-load must be async, create or api, got %q", c.pendingLoad)
	}
	switch c.observe {
	case observeCore, observeConsumer:
	default:
		return nil, usagef("--observe must be core or consumer, got %q", c.observe)
	}
	return c, nil
}

// Main runs `natsched bench` with args (the arguments after "bench") and
// returns the exit status: 0 when every workload ran, 1 when the server could
// not be reached or a workload failed (its row carries the error), 2 on a
// usage error.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return MainEnv(ctx, args, os.Getenv, stdout, stderr)
}

// MainEnv is Main with the environment read through getenv ($NATS_URL,
// $NATS_CONTEXT, ... and where the nats contexts are).
func MainEnv(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseArgs(args)
	if err == nil {
		cfg.settings, err = cfg.conn.Resolve(getenv, natsconn.ExplicitContextOnly)
		if errors.Is(err, natsconn.ErrUsage) {
			err = usagef("%s", strings.TrimPrefix(err.Error(), natsconn.ErrUsage.Error()+": "))
		}
	}
	var ue *usageError
	switch {
	case errors.Is(err, pflag.ErrHelp):
		fmt.Fprint(stdout, usage())
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "natsched bench: %s\nRun 'natsched bench -h' for usage.\n", ue.msg)
		return ExitUsage
	case err != nil:
		fmt.Fprintf(stderr, "natsched bench: %v\n", err)
		return ExitUsage
	}
	started := time.Now()
	b, err := newBench(cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "natsched bench: %v\n", err)
		return ExitFailure
	}
	defer b.close()
	if cfg.cpuProfile != "" {
		stop, err := startCPUProfile(cfg.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "natsched bench: %v\n", err)
			return ExitFailure
		}
		defer stop()
	}
	rep := b.run(ctx)
	rep.WallSeconds = round(time.Since(started).Seconds(), 1)
	if cfg.jsonOut {
		if err := writeJSON(stdout, rep); err != nil {
			fmt.Fprintf(stderr, "natsched bench: %v\n", err)
			return ExitFailure
		}
	} else {
		writeTable(stdout, rep)
	}
	status := ExitOK
	for _, r := range rep.Workloads {
		if r.Error != "" {
			fmt.Fprintf(stderr, "natsched bench: %s (%s): %s\n", r.Name, r.System, r.Error)
			status = ExitFailure
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "natsched bench: interrupted\n")
		status = ExitFailure
	}
	return status
}

// bench is one run: the server, the configuration and the output.
type bench struct {
	cfg    *config
	url    string
	opts   []nats.Option  // security options with --nats
	srv    *server.Server // nil with --nats
	dir    string         // the embedded server's store, removed by close
	stderr io.Writer
	log    *slog.Logger
	tag    string
	seq    int

	progMu sync.Mutex
}

func newBench(cfg *config, stderr io.Writer) (*bench, error) {
	b := &bench{cfg: cfg, stderr: stderr, tag: randomTag(4)}
	if cfg.verbose {
		b.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	} else {
		b.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.settings.External() {
		b.url = cfg.settings.URL
		opts, err := cfg.settings.Options()
		if err != nil {
			return nil, err
		}
		b.opts = opts
		nc, err := nats.Connect(b.url, append([]nats.Option{nats.Name("natsched-bench probe")}, b.opts...)...)
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", natsconn.RedactURLs(b.url), err)
		}
		nc.Close()
		return b, nil
	}
	dir, err := os.MkdirTemp("", "natsched-bench-*")
	if err != nil {
		return nil, err
	}
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir,
		NoLog: true, NoSigs: true, ServerName: "natsched-bench",
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("embedded server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		os.RemoveAll(dir)
		return nil, errors.New("embedded server: not ready for connections within 10s")
	}
	b.srv, b.dir, b.url = srv, dir, srv.ClientURL()
	b.progressf("embedded nats-server %s at %s, store %s", server.VERSION, b.url, dir)
	return b, nil
}

func (b *bench) close() {
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

func randomTag(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	s := make([]byte, n)
	for i := range s {
		s[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return string(s)
}

// prefix returns a fresh prefix (one token of [a-z0-9], at most 32
// characters) for a workload.
func (b *bench) prefix(w string) string {
	b.seq++
	p := fmt.Sprintf("bench%s%d%s", b.tag, b.seq, w)
	if len(p) > 32 {
		p = p[:32]
	}
	return p
}

// connect opens a client connection.
func (b *bench) connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	opts = append(append([]nats.Option{nats.Name("natsched-bench " + name), nats.ReconnectWait(50 * time.Millisecond)}, b.opts...), opts...)
	nc, err := nats.Connect(b.url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return nc, nil
}

func (b *bench) progressf(format string, args ...any) {
	if !b.cfg.progress {
		return
	}
	b.progMu.Lock()
	defer b.progMu.Unlock()
	fmt.Fprintf(b.stderr, "natsched bench: "+format+"\n", args...)
}

// ticker calls f every interval until the returned stop is called; for
// progress during long waits.
func (b *bench) ticker(interval time.Duration, f func()) (stop func()) {
	if !b.cfg.progress {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				f()
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

type runner func(ctx context.Context) ([]Result, error)

// run runs the selected workloads in order.
func (b *bench) run(ctx context.Context) *Report {
	rep := &Report{Env: b.env()}
	add := func(name, system string, f runner) {
		if ctx.Err() != nil {
			return
		}
		b.progressf("%s (%s): starting", name, system)
		t0 := time.Now()
		rs, err := f(ctx)
		if err != nil {
			rs = append(rs, Result{Name: name, System: system, Error: err.Error()})
		}
		for i := range rs {
			if rs[i].Seconds == 0 {
				rs[i].Seconds = round(time.Since(t0).Seconds(), 2)
			}
		}
		rep.Workloads = append(rep.Workloads, rs...)
		b.progressf("%s (%s): done in %.1fs", name, system, time.Since(t0).Seconds())
		runtime.GC()
	}
	for _, w := range b.cfg.workloads {
		switch w {
		case WSpread:
			n, over := b.cfg.spreadN, b.cfg.spreadOver
			add(w, SystemNatsched, func(ctx context.Context) ([]Result, error) { return one(b.natschedFires(ctx, w, n, over)) })
			if b.cfg.compareNative {
				add(w, SystemNative, func(ctx context.Context) ([]Result, error) { return one(b.nativeFires(ctx, w, n, over)) })
			}
		case WInstant, WBurst:
			n := b.cfg.instantN
			if w == WBurst {
				n = b.cfg.burstN
			}
			add(w, SystemNatsched, func(ctx context.Context) ([]Result, error) { return one(b.natschedFires(ctx, w, n, 0)) })
			if b.cfg.compareNative {
				add(w, SystemNative, func(ctx context.Context) ([]Result, error) { return one(b.nativeFires(ctx, w, n, 0)) })
			}
		case WSustained:
			n, over := b.cfg.sustainedRate*int(b.cfg.sustainedFor/time.Second), b.cfg.sustainedFor
			add(w, SystemNatsched, func(ctx context.Context) ([]Result, error) { return one(b.natschedFires(ctx, w, n, over)) })
		case WCreate:
			add(w, SystemNatsched, b.natschedCreate)
			if b.cfg.compareNative {
				add(w, SystemNative, func(ctx context.Context) ([]Result, error) { return one(b.nativeCreate(ctx)) })
			}
		case WPending:
			add(w, SystemNatsched, func(ctx context.Context) ([]Result, error) { return one(b.pending(ctx)) })
		case WFailover:
			add(w, SystemNatsched, func(ctx context.Context) ([]Result, error) { return one(b.failover(ctx)) })
		case WIdle:
			add(w, SystemNatsched, func(ctx context.Context) ([]Result, error) { return one(b.idle(ctx)) })
		case WRaw:
			add(w, SystemRaw, b.rawPublish)
		case WScale:
			add(w, SystemNatsched, b.scale)
		}
	}
	compare(rep.Workloads)
	rep.Env.LoadAvgAfter = loadAvg()
	return rep
}

// redact drops user information from a comma-separated list of URLs.
func one(r Result, err error) ([]Result, error) {
	if err != nil {
		return nil, err
	}
	return []Result{r}, nil
}

func (b *bench) env() Env {
	e := Env{GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0)}
	if b.srv != nil {
		e.Server = "embedded nats-server " + server.VERSION + " (same process)"
	} else {
		e.Server = "nats-server at " + natsconn.RedactURLs(b.url)
	}
	e.Observe = b.cfg.observe
	e.LoadAvgBefore = loadAvg()
	return e
}

// loadAvg returns the 1, 5 and 15-minute load averages, or "" where
// /proc/loadavg does not exist.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
