package natschedtest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Host is the only interface the helpers listen on.
const Host = "127.0.0.1"

// Server is an embedded nats-server with JetStream, started by RunServer,
// Server.Restart or RunCluster.
type Server struct {
	spec nodeSpec // ports are the ones actually bound
	srv  *server.Server
	log  *tbLogger
	url  string
	once sync.Once
	// tempDir is the store directory Start made, removed at Shutdown.
	tempDir string
}

// nodeSpec is everything needed to start (and restart identically) a server.
type nodeSpec struct {
	cfg      config
	name     string // server name; empty lets the server choose
	storeDir string
	port     int          // client port; -1 for a random one
	cluster  *clusterSpec // nil for a standalone server
}

type clusterSpec struct {
	name   string
	port   int
	routes []*url.URL
}

// RunServer starts a standalone nats-server with JetStream on 127.0.0.1 and
// a random port (see the Options), and shuts it down in t.Cleanup.
func RunServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := newConfig(opts)
	spec := nodeSpec{cfg: cfg, storeDir: cfg.storeDir, port: -1}
	if spec.storeDir == "" {
		spec.storeDir = t.TempDir()
	}
	if cfg.port != 0 {
		spec.port = cfg.port
	}
	return mustStart(t, spec)
}

// Start starts a standalone nats-server with JetStream on 127.0.0.1 and a
// random port (see the Options), outside tests: in examples and local
// tools. Unless WithStoreDir says otherwise it stores JetStream data in a
// new temporary directory, removed at Shutdown. The caller must call
// Shutdown; WithLogs sends the server's log to standard error.
func Start(opts ...Option) (*Server, error) {
	cfg := newConfig(opts)
	spec := nodeSpec{cfg: cfg, storeDir: cfg.storeDir, port: -1}
	if cfg.port != 0 {
		spec.port = cfg.port
	}
	var temp string
	if spec.storeDir == "" {
		dir, err := os.MkdirTemp("", "natschedtest-")
		if err != nil {
			return nil, fmt.Errorf("natschedtest: store directory: %w", err)
		}
		spec.storeDir, temp = dir, dir
	}
	s, err := startServer(spec, func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	})
	if err != nil {
		if temp != "" {
			_ = os.RemoveAll(temp)
		}
		return nil, fmt.Errorf("natschedtest: %w", err)
	}
	s.tempDir = temp
	return s, nil
}

// URL is the client URL, nats://127.0.0.1:<port>. It survives Restart.
func (s *Server) URL() string { return s.url }

// Port is the client port. It survives Restart.
func (s *Server) Port() int { return s.spec.port }

// Name is the server name (n1, n2, ... in a cluster).
func (s *Server) Name() string { return s.srv.Name() }

// StoreDir is the JetStream store directory. It survives Restart.
func (s *Server) StoreDir() string { return s.spec.storeDir }

// NATSServer is the underlying server, for inspection.
func (s *Server) NATSServer() *server.Server { return s.srv }

// Conn connects a client to the server and closes it in t.Cleanup. Unless
// opts say otherwise, the client reconnects forever, every 20ms.
func (s *Server) Conn(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	return connect(t, s.url, opts)
}

// JetStream is a JetStream context on a new Conn(t).
func (s *Server) JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	return newJetStream(t, s.Conn(t))
}

func newJetStream(t testing.TB, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natschedtest: jetstream: %v", err)
	}
	return js
}

// Shutdown stops the server now and waits until it has. It is idempotent,
// and called in t.Cleanup (a server from Start is the caller's to shut down).
func (s *Server) Shutdown() {
	s.once.Do(func() {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.log.close()
		if s.tempDir != "" {
			_ = os.RemoveAll(s.tempDir)
		}
	})
}

// Running reports whether the server has not been shut down.
func (s *Server) Running() bool { return s.srv.Running() }

// Restart shuts the server down and starts a new one on the same store
// directory and the same ports, so that clients reconnect to it. The new
// server is shut down in t.Cleanup; s must not be used any more.
func (s *Server) Restart(t testing.TB) *Server {
	t.Helper()
	s.Shutdown()
	return mustStart(t, s.spec)
}

// options builds fresh server options from the spec.
func (spec nodeSpec) options() *server.Options {
	o := &server.Options{
		ServerName: spec.name,
		Host:       Host,
		Port:       spec.port,
		NoLog:      true,
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   spec.storeDir,
		MaxPayload: spec.cfg.maxPayload,
	}
	if c := spec.cluster; c != nil {
		o.Cluster = server.ClusterOpts{Name: c.name, Host: Host, Port: c.port}
		o.Routes = c.routes
	}
	for _, f := range spec.cfg.configure {
		f(o)
	}
	return o
}

// mustStart starts the server of spec, retrying for a while if one of its
// fixed ports is still taken (a restart whose port some other socket holds
// for a moment).
func mustStart(t testing.TB, spec nodeSpec) *Server {
	t.Helper()
	deadline := time.Now().Add(StartTimeout)
	for {
		s, err := start(t, spec)
		if err == nil {
			return s
		}
		if !isAddrInUse(err) || time.Now().After(deadline) {
			t.Fatalf("natschedtest: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // backoff before binding again
	}
}

// start starts one server and registers its shutdown in t.Cleanup.
func start(t testing.TB, spec nodeSpec) (*Server, error) {
	t.Helper()
	s, err := startServer(spec, t.Logf)
	if err != nil {
		return nil, err
	}
	t.Cleanup(s.Shutdown)
	return s, nil
}

// startServer starts one server whose log (when spec asks for it) goes to
// logf.
func startServer(spec nodeSpec, logf func(format string, args ...any)) (*Server, error) {
	opts := spec.options()
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("new server %s: %w", spec.name, err)
	}
	label := spec.name
	if label == "" {
		label = "nats"
	}
	log := &tbLogger{out: logf, label: label, enabled: spec.cfg.logs}
	srv.SetLogger(log, false, false)
	srv.Start()
	if err := waitReady(srv, log); err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		log.close()
		return nil, fmt.Errorf("start server %s: %w", label, err)
	}
	spec.port = srv.Addr().(*net.TCPAddr).Port
	if spec.cluster != nil {
		c := *spec.cluster
		c.port = srv.ClusterAddr().Port
		spec.cluster = &c
	}
	s := &Server{
		spec: spec,
		srv:  srv,
		log:  log,
		url:  "nats://" + net.JoinHostPort(Host, strconv.Itoa(spec.port)),
	}
	return s, nil
}

// waitReady waits until srv accepts connections, failing early when the
// server reports a fatal error (a port it cannot bind, JetStream failing).
func waitReady(srv *server.Server, log *tbLogger) error {
	deadline := time.Now().Add(StartTimeout)
	for {
		if srv.ReadyForConnections(50 * time.Millisecond) {
			if f := log.fatal(); f != "" {
				return errors.New(f)
			}
			return nil
		}
		if f := log.fatal(); f != "" {
			return errors.New(f)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready for connections within %s", StartTimeout)
		}
	}
}

func isAddrInUse(err error) bool {
	return strings.Contains(err.Error(), "address already in use")
}

// tbLogger is the server's logger: it records fatal errors, and writes to
// out (t.Logf in tests) when enabled, until the server has shut down.
type tbLogger struct {
	out     func(format string, args ...any)
	label   string
	enabled bool

	mu     sync.Mutex
	closed bool
	first  string // first fatal error
}

func (l *tbLogger) Noticef(format string, v ...any) { l.logf("INF", format, v...) }
func (l *tbLogger) Warnf(format string, v ...any)   { l.logf("WRN", format, v...) }
func (l *tbLogger) Errorf(format string, v ...any)  { l.logf("ERR", format, v...) }
func (l *tbLogger) Debugf(format string, v ...any)  { l.logf("DBG", format, v...) }
func (l *tbLogger) Tracef(format string, v ...any)  { l.logf("TRC", format, v...) }

func (l *tbLogger) Fatalf(format string, v ...any) {
	l.mu.Lock()
	if l.first == "" {
		l.first = fmt.Sprintf(format, v...)
	}
	l.mu.Unlock()
	l.logf("FTL", format, v...)
}

func (l *tbLogger) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first
}

func (l *tbLogger) logf(level, format string, v ...any) {
	if !l.enabled {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	// A server goroutine may outlive the test by a hair; never panic it.
	defer func() { _ = recover() }()
	l.out("[%s] %s %s", l.label, level, fmt.Sprintf(format, v...))
}

func (l *tbLogger) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}
