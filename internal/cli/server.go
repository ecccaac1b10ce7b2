package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/internal/storelock"
	natschedjs "github.com/natsched/natsched/jetstream"
)

// Server defaults.
const (
	defaultStore  = "./natsched-data"
	defaultListen = "127.0.0.1:4222"
	// embeddedName is the embedded nats-server's name unless --name is given.
	embeddedName = "natsched"
	// readyTimeout bounds how long the embedded server may take to accept
	// connections (recovering a large store takes a while).
	readyTimeout = 30 * time.Second
	// startTimeout bounds creating the buckets and streams.
	startTimeout = 30 * time.Second
	// Shutdown budget: the contract gives 5 s from the signal to the exit.
	closeTimeout    = 3 * time.Second
	drainTimeout    = time.Second
	shutdownTimeout = 4500 * time.Millisecond
)

var serverCommand = &command{
	name:    "server",
	summary: "run the scheduler daemon (with an embedded NATS server unless --nats)",
	usage: `Usage: natsched server [flags]

Runs a scheduler instance: it serves the wire API (<prefix>.api.*) and the
durable intake (<prefix>.in.*), and fires schedules while it holds the
lease. Without --nats it starts an embedded nats-server with JetStream.
Stops cleanly on SIGINT or SIGTERM.

  --nats URL              connect to this NATS (one URL or a comma-separated list)
                          instead of starting an embedded server
  --store DIR             embedded server's JetStream store (default ./natsched-data),
                          locked: one daemon per store (DIR/natsched.lock holds its PID)
  --listen HOST:PORT      embedded server's client address (default 127.0.0.1:4222; port 0: any)
  --prefix P              prefix of buckets, streams and subjects (default natsched)
  --name N                instance name (default: host name and process ID)
  --replicas 1|3          replicas of the buckets and streams it creates (default 1)
  --lease D               leader lease TTL (default 3s); every instance should use the same
  --fire-max-age D        max age of NATSCHED_FIRE when it is created (default 168h; 0: none)
  --dead-max-age D        max age of NATSCHED_DEAD when it is created (default 720h; 0: none)
                          Streams and buckets that exist keep the limits, replicas and
                          placement their operator gave them
  --misfire-threshold D   how late an occurrence may fire before it counts as missed (default 1s)
  --allow ID=SUBJECT      allow schedules whose ID matches ID to target subjects matching
                          SUBJECT (NATS wildcards; repeatable); with any rule, others get 403
  --creds FILE, --tls-cert FILE, --tls-key FILE, --tls-ca FILE
                          security for --nats
  -v, --verbose           log the embedded server's notices and debug lines
`,
	run: runServer,
}

type serverFlags struct {
	conn             connFlags
	store, listen    string
	name             string
	replicas         int
	lease, misfire   time.Duration
	fireMaxAge       time.Duration
	deadMaxAge       time.Duration
	allow            stringList
	verbose          bool
	embedded         bool
	set              map[string]bool
	host             string
	port             int
	rules            []natschedjs.AllowRule
	schedulerOptions []natschedjs.Option
}

func runServer(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("server")
	var f serverFlags
	fs.StringVar(&f.conn.urls, "nats", "", "")
	f.conn.registerSecurity(fs)
	fs.StringVar(&f.conn.prefix, "prefix", defaultPrefix, "")
	fs.StringVar(&f.store, "store", defaultStore, "")
	fs.StringVar(&f.listen, "listen", defaultListen, "")
	fs.StringVar(&f.name, "name", "", "")
	fs.IntVar(&f.replicas, "replicas", 1, "")
	fs.DurationVar(&f.lease, "lease", natschedjs.DefaultLeaseTTL, "")
	fs.DurationVar(&f.misfire, "misfire-threshold", time.Second, "")
	fs.DurationVar(&f.fireMaxAge, "fire-max-age", natschedjs.DefaultFireMaxAge, "")
	fs.DurationVar(&f.deadMaxAge, "dead-max-age", natschedjs.DefaultDeadMaxAge, "")
	fs.Var(&f.allow, "allow", "")
	fs.BoolVar(&f.verbose, "verbose", false, "")
	fs.BoolVar(&f.verbose, "v", false, "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos); err != nil {
		return err
	}
	f.set = setFlags(fs)
	if err := f.validate(); err != nil {
		return err
	}
	level := slog.LevelInfo
	if f.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))

	// The first signal stops the daemon cleanly; stop() restores the
	// default handling, so a second one kills it.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, stop, &f, log)
}

// validate checks the flags and turns them into scheduler options; a
// mistake is a *usageError.
func (f *serverFlags) validate() error {
	f.embedded = !f.set["nats"]
	if !natschedjs.ValidPrefix(f.conn.prefix) {
		return usagef("--prefix %q: want one token of [A-Za-z0-9_-], at most 32 characters", f.conn.prefix)
	}
	if err := f.conn.validateSecurity(); err != nil {
		return err
	}
	if f.embedded {
		if f.set["creds"] || f.set["tls-cert"] || f.set["tlscert"] || f.set["tls-ca"] || f.set["tlsca"] {
			return usagef("--creds and --tls-* apply to --nats; the embedded server has no security configured")
		}
		host, port, err := net.SplitHostPort(f.listen)
		if err != nil {
			return usagef("--listen %q: want HOST:PORT, e.g. 127.0.0.1:4222", f.listen)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 0 || p > 65535 {
			return usagef("--listen %q: bad port", f.listen)
		}
		f.host, f.port = host, p
		if f.store == "" {
			return usagef("--store must not be empty")
		}
		if f.replicas > 1 {
			return usagef("--replicas %d needs a JetStream cluster: use --nats", f.replicas)
		}
	} else {
		if f.set["store"] || f.set["listen"] {
			return usagef("--store and --listen configure the embedded server; they do not go with --nats")
		}
		if strings.TrimSpace(f.conn.urls) == "" {
			return usagef("--nats: empty URL")
		}
	}
	if f.replicas < 1 || f.replicas > 5 {
		return usagef("--replicas must be 1 or 3 (at most 5), got %d", f.replicas)
	}
	if f.lease < 300*time.Millisecond {
		return usagef("--lease must be at least 300ms, got %s", f.lease)
	}
	if f.misfire <= 0 {
		return usagef("--misfire-threshold must be positive, got %s", f.misfire)
	}
	if f.fireMaxAge < 0 || f.deadMaxAge < 0 {
		return usagef("--fire-max-age and --dead-max-age must not be negative")
	}
	if f.set["name"] && (f.name == "" || len(f.name) > 128) {
		return usagef("--name must be 1-128 characters")
	}
	for _, a := range f.allow {
		r, err := natschedjs.ParseAllow(a)
		if err != nil {
			return usagef("--allow: %s", trimSentinel(err))
		}
		f.rules = append(f.rules, r)
	}
	f.schedulerOptions = []natschedjs.Option{
		natschedjs.WithPrefix(f.conn.prefix),
		natschedjs.WithReplicas(f.replicas),
		natschedjs.WithLeaseTTL(f.lease),
		natschedjs.WithMisfireThreshold(f.misfire),
		natschedjs.WithFireMaxAge(f.fireMaxAge),
		natschedjs.WithDeadMaxAge(f.deadMaxAge),
	}
	if f.name == "" {
		f.name = natschedjs.DefaultName()
	}
	f.schedulerOptions = append(f.schedulerOptions, natschedjs.WithName(f.name))
	if len(f.rules) > 0 {
		f.schedulerOptions = append(f.schedulerOptions, natschedjs.WithAllow(f.rules...))
	}
	return nil
}

// trimSentinel drops the "natsched: invalid schedule: " a wrapped
// ErrInvalid starts with: on the command line it says nothing.
func trimSentinel(err error) string {
	msg := err.Error()
	prefix := natsched.ErrInvalid.Error() + ": "
	if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
		return msg[len(prefix):]
	}
	return msg
}

// serve runs the daemon until ctx ends. stop releases the signal handler
// once shutdown begins.
func serve(ctx context.Context, stop func(), f *serverFlags, log *slog.Logger) error {
	var (
		srv     *server.Server
		nc      *nats.Conn
		err     error
		readyAt []any
	)
	ncClosed := make(chan struct{})
	var closeOnce sync.Once
	connOpts := []nats.Option{
		// Operators tell instances apart in nats server report connections.
		nats.Name("natsched " + f.name),
		nats.DrainTimeout(drainTimeout),
		nats.ClosedHandler(func(*nats.Conn) { closeOnce.Do(func() { close(ncClosed) }) }),
	}
	if f.embedded {
		// Before the embedded server opens anything: two servers on one
		// store corrupt it. The lock goes with the process.
		lock, lockErr := storelock.Acquire(f.store)
		if lockErr != nil {
			return lockErr
		}
		defer func() { _ = lock.Release() }()
		store, _ := filepath.Abs(f.store)
		if !storelock.Supported {
			log.Warn("natsched: this system cannot lock the store; never point two daemons at it", "store", store)
		}
		srv, err = startEmbedded(ctx, f, store, log)
		if errors.Is(err, errStopped) {
			return nil
		}
		if err != nil {
			return err
		}
		url := listenURL(srv, f.host)
		nc, err = nats.Connect(url, append(connOpts, nats.InProcessServer(srv))...)
		if err != nil {
			shutdownEmbedded(srv)
			return fmt.Errorf("connect to the embedded server: %w", err)
		}
		readyAt = []any{"url", url, "store", store}
	} else {
		opts := append(connOpts,
			nats.MaxReconnects(-1), // a daemon outlives NATS restarts
			nats.ReconnectWait(250*time.Millisecond),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				if err != nil {
					log.Warn("natsched: disconnected from NATS", "err", err)
				}
			}),
			nats.ReconnectHandler(func(c *nats.Conn) {
				log.Info("natsched: reconnected to NATS", "url", c.ConnectedUrlRedacted())
			}),
		)
		nc, err = nats.Connect(f.conn.urls, append(opts, f.conn.options()...)...)
		if err != nil {
			return fmt.Errorf("cannot connect to %s: %w", redactURLs(f.conn.urls), err)
		}
		readyAt = []any{"url", nc.ConnectedUrlRedacted()}
	}
	// From here on everything started is stopped by shutdown.
	var sched *natschedjs.Scheduler
	shutdown := func() error {
		stop()
		return shutdownAll(sched, nc, ncClosed, srv, log)
	}

	jsc, err := js.New(nc)
	if err != nil {
		return errors.Join(fmt.Errorf("jetstream: %w", err), shutdown())
	}
	sched, err = natschedjs.New(jsc, append(f.schedulerOptions, natschedjs.WithLogger(log))...)
	if err != nil {
		if errors.Is(err, natschedjs.ErrInvalidOption) {
			_ = shutdown()
			return usagef("%s", strings.TrimPrefix(err.Error(), natschedjs.ErrInvalidOption.Error()+": "))
		}
		return errors.Join(err, shutdown())
	}
	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	err = sched.Start(startCtx)
	cancel()
	if err != nil {
		if ctx.Err() != nil { // stopped by a signal while starting
			return shutdown()
		}
		return errors.Join(fmt.Errorf("start: %w", err), shutdown())
	}
	readyAt = append(readyAt, "prefix", f.conn.prefix, "instance", sched.Name())
	log.Info("natsched: ready", readyAt...)

	select {
	case <-ctx.Done():
		log.Info("natsched: stopping", "cause", context.Cause(ctx))
	case <-ncClosed:
		// Only happens when the connection gives up for good.
		_ = shutdown()
		return errors.New("NATS connection closed")
	}
	if err := shutdown(); err != nil {
		return err
	}
	log.Info("natsched: stopped")
	return nil
}

// errStopped: a signal came before the daemon was ready.
var errStopped = errors.New("stopped before ready")

// startEmbedded starts a nats-server with JetStream in store and waits until
// it accepts connections, or ctx ends (errStopped).
func startEmbedded(ctx context.Context, f *serverFlags, store string, log *slog.Logger) (*server.Server, error) {
	name := embeddedName
	if f.set["name"] {
		name = f.name
	}
	port := f.port
	if port == 0 {
		port = server.RANDOM_PORT // nats-server reads 0 as its default port
	}
	opts := &server.Options{
		ServerName: name,
		Host:       f.host,
		Port:       port,
		JetStream:  true,
		StoreDir:   store,
		NoSigs:     true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	sl := &serverLog{log: log.With("component", "nats-server")}
	srv.SetLogger(sl, f.verbose, false)
	srv.Start()
	deadline := time.Now().Add(readyTimeout)
	for !srv.ReadyForConnections(50 * time.Millisecond) {
		if ctx.Err() != nil {
			shutdownEmbedded(srv)
			return nil, errStopped
		}
		if msg := sl.fatal(); msg != "" || time.Now().After(deadline) {
			shutdownEmbedded(srv)
			if msg == "" {
				msg = fmt.Sprintf("not ready for connections within %s", readyTimeout)
			}
			return nil, fmt.Errorf("embedded nats-server on %s: %s", f.listen, msg)
		}
	}
	if msg := sl.fatal(); msg != "" {
		shutdownEmbedded(srv)
		return nil, fmt.Errorf("embedded nats-server: %s", msg)
	}
	return srv, nil
}

// listenURL is a URL clients can connect to: an unspecified host becomes
// loopback.
func listenURL(srv *server.Server, host string) string {
	port := srv.Addr().(*net.TCPAddr).Port
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "nats://" + net.JoinHostPort(host, strconv.Itoa(port))
}

func shutdownEmbedded(srv *server.Server) {
	srv.Shutdown()
	srv.WaitForShutdown()
}

// shutdownAll stops the scheduler (releasing the lease), drains the
// connection and shuts the embedded server down, within shutdownTimeout.
func shutdownAll(sched *natschedjs.Scheduler, nc *nats.Conn, ncClosed <-chan struct{}, srv *server.Server, log *slog.Logger) error {
	done := make(chan error, 1)
	go func() {
		var errs []error
		if sched != nil {
			ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
			if err := sched.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stop scheduler: %w", err))
			}
			cancel()
		}
		if nc != nil {
			if err := nc.Drain(); err != nil {
				nc.Close()
			}
			select {
			case <-ncClosed:
			case <-time.After(drainTimeout + 200*time.Millisecond):
				nc.Close()
			}
		}
		if srv != nil {
			shutdownEmbedded(srv)
		}
		done <- errors.Join(errs...)
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(shutdownTimeout):
		log.Error("natsched: shutdown timed out", "after", shutdownTimeout)
		return fmt.Errorf("shutdown timed out after %s", shutdownTimeout)
	}
}

// serverLog routes nats-server's log through slog: warnings and errors
// always, notices and debug lines only at debug level. It remembers the
// first fatal error, which with a custom logger does not exit the process.
type serverLog struct {
	log *slog.Logger

	mu    sync.Mutex
	first string
}

func (l *serverLog) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLog) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLog) Tracef(format string, v ...any)  {}
func (l *serverLog) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *serverLog) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }

func (l *serverLog) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	if l.first == "" {
		l.first = msg
	}
	l.mu.Unlock()
	l.log.Error(msg)
}

func (l *serverLog) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first
}
