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
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/cmd/natsched/internal/natsconn"
	"github.com/natsched/natsched/cmd/natsched/internal/storelock"
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

func serverCommand(e *env) *cobra.Command {
	return serverCommandFor(e, &serverFlags{})
}

// serverCommandFor binds the server command's flags to f.
func serverCommandFor(e *env, f *serverFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server [flags]",
		Short: "run the scheduler daemon (with an embedded NATS server unless told to join one)",
		Long: `Runs a scheduler instance: it serves the wire API (<prefix>.api.*) and the
durable intake (<prefix>.in.*), and fires schedules while it holds the
lease. Unless --nats/--server, $NATS_URL or a --context with a server URL
names a NATS system to join, it starts an embedded nats-server with
JetStream, configured by --config, --listen, --store and --monitor. A
non-loopback --listen needs a --config that requires authorization, or
--insecure. With such a --config, the daemon's own connection to it uses
the credential flags (--user/--password, --token, --nkey, --creds).
Stops cleanly on SIGINT or SIGTERM.

The selected nats context ('nats context select') is not read: a daemon
joins what its flags, $NATS_URL or $NATS_CONTEXT say.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.set = setFlags(cmd.Flags())
			if err := f.validate(e.getenv); err != nil {
				return err
			}
			level := f.logLevel
			if f.verbose && !f.set["log-level"] {
				level = "debug"
			}
			log, err := newLogger(e.stderr, level, f.logFormat)
			if err != nil {
				return err
			}
			f.getenv = e.getenv
			// The first signal stops the daemon cleanly; stop() restores
			// the default handling, so a second one kills it.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, stop, f, log)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringVar(&f.config, "config", "", "nats-server configuration `FILE` for the embedded server (accounts, users, TLS, limits)")
	fs.StringVar(&f.store, "store", defaultStore, "embedded server's JetStream store `DIR`, locked: one daemon per store (DIR/natsched.lock holds its PID)")
	fs.StringVar(&f.listen, "listen", defaultListen, "embedded server's client address `HOST:PORT` (port 0: any)")
	fs.StringVar(&f.monitor, "monitor", "", "embedded server's monitoring endpoints (/varz, /connz, /jsz, ...) on `HOST:PORT`")
	fs.BoolVar(&f.insecure, "insecure", false, "allow a non-loopback --listen without authorization")
	fs.StringVar(&f.prefix, "prefix", defaultPrefix, "`PREFIX` of buckets, streams and subjects")
	fs.StringVar(&f.name, "name", "", "instance `NAME` (default: host name and process ID); its connection is named 'natsched NAME'")
	fs.IntVar(&f.replicas, "replicas", 1, "`N` replicas (1 or 3) of the buckets and streams it creates")
	fs.DurationVar(&f.lease, "lease", natschedjs.DefaultLeaseTTL, "leader lease `TTL`; every instance should use the same")
	fs.IntVar(&f.partitions, "partitions", 1, "split firing into `N` partitions, each with its own lease, balanced over the instances (1-256); every instance should use the same")
	fs.DurationVar(&f.misfire, "misfire-threshold", time.Second, "`D`: how late an occurrence may fire before it counts as missed")
	fs.DurationVar(&f.fireMaxAge, "fire-max-age", natschedjs.DefaultFireMaxAge, "`D`: max age of NATSCHED_FIRE when it is created (0: none)")
	fs.DurationVar(&f.deadMaxAge, "dead-max-age", natschedjs.DefaultDeadMaxAge, "`D`: max age of NATSCHED_DEAD when it is created (0: none)")
	fs.Var(&f.allow, "allow", "`ID=SUBJECT`: allow schedules whose ID matches ID to target subjects matching SUBJECT (NATS wildcards; repeatable); with any rule, others get 403")
	fs.StringVar(&f.http, "http", "", "serve GET /healthz and GET /metrics (Prometheus) on `HOST:PORT` (default: off)")
	fs.StringVar(&f.logLevel, "log-level", "info", "`LEVEL` of the daemon's log: debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "`FORMAT` of the daemon's log: text or json")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "log the embedded server's notices and debug lines")
	conn := pflag.NewFlagSet("conn", pflag.ContinueOnError)
	conn.SortFlags = false
	f.conn.AddFlags(conn, natsconn.ServerAlias("nats"))
	markConnection(conn)
	fs.AddFlagSet(conn)
	return cmd
}

type serverFlags struct {
	conn             natsconn.Flags
	settings         *natsconn.Settings
	prefix           string
	config           string
	store, listen    string
	monitor          string
	insecure         bool
	name             string
	replicas         int
	partitions       int
	lease, misfire   time.Duration
	fireMaxAge       time.Duration
	deadMaxAge       time.Duration
	allow            stringList
	verbose          bool
	http             string // --http HOST:PORT
	logLevel         string
	logFormat        string
	getenv           func(string) string
	embedded         bool
	set              map[string]bool
	serverOpts       *server.Options // the embedded server's, from --config and the flags
	auth             bool            // the embedded server requires authentication
	host             string          // the embedded server's listen host
	listenAddr       string          // and its address as given, for messages
	rules            []natschedjs.AllowRule
	schedulerOptions []natschedjs.Option
}

// validate checks the flags and turns them into scheduler and embedded
// server options; a mistake is a *usageError. Nothing is bound or opened.
func (f *serverFlags) validate(getenv func(string) string) error {
	if f.set["nats"] {
		if v, _ := f.conn.Server(); strings.TrimSpace(v) == "" {
			return usagef("--nats: empty URL")
		}
	}
	s, err := f.conn.Resolve(getenv, natsconn.ExplicitContextOnly)
	if err != nil {
		return err
	}
	f.settings = s
	f.embedded = !s.External()
	if !natschedjs.ValidPrefix(f.prefix) {
		return usagef("--prefix %q: want one token of [A-Za-z0-9_-], at most 32 characters", f.prefix)
	}
	if f.embedded {
		if err := f.embeddedOptions(); err != nil {
			return err
		}
	} else {
		var given []string
		for _, n := range []string{"config", "store", "listen", "monitor", "insecure"} {
			if f.set[n] {
				given = append(given, "--"+n)
			}
		}
		if len(given) > 0 {
			return usagef("%s configure the embedded server; they do not go with --nats, --server, $NATS_URL or a context's server", strings.Join(given, ", "))
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
	if f.partitions < 1 || f.partitions > natschedjs.MaxPartitions {
		return usagef("--partitions must be between 1 and %d, got %d", natschedjs.MaxPartitions, f.partitions)
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
		natschedjs.WithPrefix(f.prefix),
		natschedjs.WithReplicas(f.replicas),
		natschedjs.WithLeaseTTL(f.lease),
		natschedjs.WithPartitions(f.partitions),
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
	var (
		webLn net.Listener
		reg   *prometheus.Registry
	)
	if f.http != "" {
		if webLn, reg, err = listenHTTP(f.http); err != nil {
			return err
		}
		defer webLn.Close()
	}
	stopTracing, err := startTracing(ctx, f.getenv, f.name)
	if err != nil {
		return err
	}
	defer func() {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = stopTracing(tctx)
	}()
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
		lock, lockErr := storelock.Acquire(f.serverOpts.StoreDir)
		if lockErr != nil {
			return lockErr
		}
		defer func() { _ = lock.Release() }()
		store, _ := filepath.Abs(f.serverOpts.StoreDir)
		if !storelock.Supported {
			log.Warn("natsched: this system cannot lock the store; never point two daemons at it", "store", store)
		}
		f.serverOpts.StoreDir = store
		srv, err = startEmbedded(ctx, f, log)
		if errors.Is(err, errStopped) {
			return nil
		}
		if err != nil {
			return err
		}
		// With a --config that requires authentication, the daemon is a
		// client like any other: the file decides what it may do.
		auth, err := f.settings.AuthOptions()
		if err != nil {
			shutdownEmbedded(srv)
			return err
		}
		url := listenURL(srv, f.host)
		nc, err = nats.Connect(url, append(append(connOpts, nats.InProcessServer(srv)), auth...)...)
		if err != nil {
			shutdownEmbedded(srv)
			if f.auth {
				// In process, a refusal often reads as a closed pipe.
				return fmt.Errorf("connect to the embedded server: %w (it requires authentication and refused natsched's credentials: %s; "+
					"the --config decides who may connect)", err, f.settings.AuthMethod())
			}
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
		sec, err := f.settings.Options()
		if err != nil {
			return err
		}
		nc, err = nats.Connect(f.settings.URL, append(opts, sec...)...)
		if err != nil {
			return connectError(f.settings, err)
		}
		readyAt = []any{"url", nc.ConnectedUrlRedacted()}
	}
	// From here on everything started is stopped by shutdown.
	var sched *natschedjs.Scheduler
	shutdown := func() error {
		stop()
		return shutdownAll(sched, nc, ncClosed, srv, log)
	}

	jsc, err := f.settings.JetStream(nc)
	if err != nil {
		return errors.Join(fmt.Errorf("jetstream: %w", err), shutdown())
	}
	schedOpts := append(f.schedulerOptions, natschedjs.WithLogger(log))
	if reg != nil {
		schedOpts = append(schedOpts, natschedjs.WithRegisterer(reg))
	}
	sched, err = natschedjs.New(jsc, schedOpts...)
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
	readyAt = append(readyAt, "prefix", f.prefix, "instance", sched.Name())
	if webLn != nil {
		web := serveHTTP(webLn, sched, reg)
		defer func() {
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			_ = web.stop(wctx)
		}()
		readyAt = append(readyAt, "http", "http://"+webLn.Addr().String())
	}
	if srv != nil && f.serverOpts.HTTPPort != 0 {
		readyAt = append(readyAt, "monitor", "http://"+srv.MonitorAddr().String())
	}
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

// startEmbedded starts the embedded nats-server with f.serverOpts and
// waits until it accepts connections, or ctx ends (errStopped).
func startEmbedded(ctx context.Context, f *serverFlags, log *slog.Logger) (*server.Server, error) {
	opts := f.serverOpts
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
			return nil, fmt.Errorf("embedded nats-server on %s: %s", f.listenAddr, msg)
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
