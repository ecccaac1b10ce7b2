// Package natschedtest runs embedded NATS servers and clusters for tests.
//
// Every test of the project that needs NATS uses these helpers: they listen
// on loopback only, on random ports, store JetStream data in temporary
// directories, stay silent unless asked, and stop themselves in t.Cleanup.
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		s := natschedtest.RunServer(t)
//		js := s.JetStream(t)
//		...
//	}
//
// Tests wait with [Eventually], never with bare sleeps.
//
// Outside tests, [Start] runs a server the same way (an example program, a
// local tool) and leaves its shutdown to the caller.
package natschedtest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// StartTimeout bounds how long a server may take to accept connections.
const StartTimeout = 10 * time.Second

// ClusterTimeout bounds how long a cluster may take to form (or a node to
// rejoin it) and elect a JetStream meta leader.
const ClusterTimeout = 30 * time.Second

// LeaderTimeout bounds how long Cluster.StreamLeader waits for a leader.
const LeaderTimeout = 20 * time.Second

// ClusterName is the cluster name of every RunCluster cluster.
const ClusterName = "natsched-test"

// PollInterval is how often Eventually evaluates its condition.
const PollInterval = 5 * time.Millisecond

// Option configures RunServer and RunCluster.
type Option func(*config)

type config struct {
	storeDir   string
	port       int
	logs       bool
	maxPayload int32
	configure  []func(*server.Options)
}

// WithStoreDir stores JetStream data in dir instead of t.TempDir(). With
// RunCluster, node i stores in dir/n<i+1>.
func WithStoreDir(dir string) Option { return func(c *config) { c.storeDir = dir } }

// WithPort listens for clients on port instead of a random one. RunCluster
// does not support it.
func WithPort(port int) Option { return func(c *config) { c.port = port } }

// WithLogs sends the server's notices, warnings and errors to t.Log.
func WithLogs() Option { return func(c *config) { c.logs = true } }

// WithMaxPayload sets the server's max_payload in bytes.
func WithMaxPayload(n int32) Option { return func(c *config) { c.maxPayload = n } }

// WithConfig lets f adjust the server options (users, accounts,
// permissions, limits, ...) after the helpers set theirs. It is called
// again at each restart, and for each node of a cluster (o.ServerName tells
// which).
func WithConfig(f func(*server.Options)) Option {
	return func(c *config) { c.configure = append(c.configure, f) }
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		o(&c)
	}
	return c
}

// connOptions are the defaults of Server.Conn and Cluster.Conn: a client
// that comes back quickly, and forever, after a restart or a failover.
func connOptions(name string, extra []nats.Option) []nats.Option {
	o := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(20 * time.Millisecond),
		nats.ReconnectJitter(5*time.Millisecond, 5*time.Millisecond),
	}
	return append(o, extra...)
}

func connect(t testing.TB, urls string, extra []nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(urls, connOptions("natschedtest:"+t.Name(), extra)...)
	if err != nil {
		t.Fatalf("natschedtest: connect to %s: %v", urls, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Eventually polls cond every PollInterval until it returns true, and fails
// the test with t.Fatalf once timeout has passed. msgAndArgs, if any, is a
// message (a format string and its arguments) describing what was awaited.
// cond runs on the calling goroutine.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msgAndArgs ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(PollInterval)
	defer tick.Stop()
	for {
		if cond() {
			return
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("natschedtest: condition not met within %s%s", timeout, message(msgAndArgs))
			return
		}
		<-tick.C
	}
}

func message(msgAndArgs []any) string {
	if len(msgAndArgs) == 0 {
		return ""
	}
	var s string
	if format, ok := msgAndArgs[0].(string); ok {
		s = fmt.Sprintf(format, msgAndArgs[1:]...)
	} else {
		s = strings.TrimSuffix(fmt.Sprintln(msgAndArgs...), "\n")
	}
	return ": " + s
}
