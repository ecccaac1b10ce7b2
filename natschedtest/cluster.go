package natschedtest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is a JetStream cluster of embedded servers, started by RunCluster.
type Cluster struct {
	t       testing.TB // of RunCluster: Start fails it, and registers cleanups on it
	mu      sync.Mutex
	specs   []nodeSpec // with the ports actually bound, reused by Start
	nodes   []*Server
	stopped []bool
}

// startAttempts bounds how often RunCluster picks new route ports when one
// was taken between picking and binding.
const startAttempts = 5

// RunCluster starts n (at least 2) servers named n1..n<n>, clustered as
// ClusterName over routes on loopback, each with JetStream and its own store
// directory, waits until the cluster has formed and elected a JetStream meta
// leader, and shuts them down in t.Cleanup. WithPort is not supported.
func RunCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	if n < 2 {
		t.Fatalf("natschedtest: RunCluster needs at least 2 servers, got %d", n)
	}
	cfg := newConfig(opts)
	if cfg.port != 0 {
		t.Fatalf("natschedtest: RunCluster does not support WithPort")
	}
	c := &Cluster{
		t:       t,
		specs:   make([]nodeSpec, n),
		nodes:   make([]*Server, n),
		stopped: make([]bool, n),
	}
	var lastErr error
	for attempt := 0; attempt < startAttempts; attempt++ {
		// Routes must name every peer before any starts: pick free ports.
		ports, err := freePorts(n)
		if err != nil {
			t.Fatalf("natschedtest: pick route ports: %v", err)
		}
		for i := range n {
			name := "n" + strconv.Itoa(i+1)
			dir := cfg.storeDir
			if dir == "" {
				dir = t.TempDir()
			} else {
				dir = filepath.Join(dir, name)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatalf("natschedtest: %v", err)
				}
			}
			var routes []*url.URL
			for j, p := range ports {
				if j != i {
					routes = append(routes, &url.URL{Scheme: "nats-route", Host: net.JoinHostPort(Host, strconv.Itoa(p))})
				}
			}
			c.specs[i] = nodeSpec{
				cfg:      cfg,
				name:     name,
				storeDir: dir,
				port:     -1,
				cluster:  &clusterSpec{name: ClusterName, port: ports[i], routes: routes},
			}
		}
		lastErr = c.startAll(t)
		if lastErr == nil {
			c.waitFormed(t, "")
			return c
		}
		if !isAddrInUse(lastErr) {
			break
		}
	}
	t.Fatalf("natschedtest: start cluster: %v", lastErr)
	return nil
}

// startAll starts every node, or none.
func (c *Cluster) startAll(t testing.TB) error {
	t.Helper()
	for i, spec := range c.specs {
		s, err := start(t, spec)
		if err != nil {
			for _, prev := range c.nodes[:i] {
				prev.Shutdown()
			}
			return err
		}
		c.nodes[i] = s
		c.specs[i] = s.spec
	}
	return nil
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(Host, "0"))
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitFormed waits until every running node is routed into the JetStream
// meta group, a meta leader sees them all, and all are current; and, if
// must is set, that node is among them.
func (c *Cluster) waitFormed(t testing.TB, must string) {
	t.Helper()
	var why string
	Eventually(t, ClusterTimeout, func() bool {
		why = c.formed(must)
		return why == ""
	}, "cluster %s not formed: %s", ClusterName, lazy(func() string { return why }))
}

// lazy is a message computed when printed.
type lazy func() string

func (f lazy) String() string { return f() }

// formed returns why the cluster has not formed yet, or "".
func (c *Cluster) formed(must string) string {
	running := c.running()
	var leaders []*Server
	for _, s := range running {
		if s.srv.JetStreamIsLeader() {
			leaders = append(leaders, s)
		}
	}
	if len(leaders) != 1 {
		return fmt.Sprintf("%d meta leaders", len(leaders))
	}
	peers := leaders[0].srv.JetStreamClusterPeers()
	if len(peers) != len(running) {
		return fmt.Sprintf("meta leader %s sees peers %v of %d running servers", leaders[0].Name(), peers, len(running))
	}
	if must != "" && !contains(peers, must) {
		return fmt.Sprintf("meta leader %s sees peers %v without %s", leaders[0].Name(), peers, must)
	}
	for _, s := range running {
		if !s.srv.JetStreamIsCurrent() {
			return fmt.Sprintf("%s is not current with the meta leader", s.Name())
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// running returns the servers not stopped.
func (c *Cluster) running() []*Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Server
	for i, s := range c.nodes {
		if !c.stopped[i] {
			out = append(out, s)
		}
	}
	return out
}

// Servers returns the current server of each node, n1 first. A stopped
// node's server is shut down; Start replaces it.
func (c *Cluster) Servers() []*Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Server(nil), c.nodes...)
}

// Server returns the current server of node i (0-based: Server(0) is n1).
func (c *Cluster) Server(i int) *Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// URLs returns the client URLs of all nodes, stopped ones included (they
// come back on the same ports), comma-separated.
func (c *Cluster) URLs() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	urls := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// Conn connects a client to the cluster (all URLs) and closes it in
// t.Cleanup. Unless opts say otherwise, the client reconnects forever,
// every 20ms.
func (c *Cluster) Conn(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	return connect(t, c.URLs(), opts)
}

// JetStream is a JetStream context on a new Conn(t).
func (c *Cluster) JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	return newJetStream(t, c.Conn(t))
}

// Stop shuts node i down now (its leaderships step down first). It is
// idempotent.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	s := c.nodes[i]
	c.stopped[i] = true
	c.mu.Unlock()
	s.Shutdown()
}

// Start restarts stopped node i on its store directory and ports, and waits
// until it has rejoined the cluster and caught up with the meta leader. The
// new server is shut down in the Cleanup of RunCluster's t, which Start
// fails if the node does not come back (or is running): call it from the
// goroutine of that test.
func (c *Cluster) Start(i int) *Server {
	t := c.t
	t.Helper()
	c.mu.Lock()
	if !c.stopped[i] {
		c.mu.Unlock()
		t.Fatalf("natschedtest: Start(%d): n%d is running", i, i+1)
	}
	spec := c.specs[i]
	c.mu.Unlock()

	s := mustStart(t, spec)

	c.mu.Lock()
	c.nodes[i] = s
	c.stopped[i] = false
	c.mu.Unlock()
	c.waitFormed(t, spec.name)
	return s
}

// Stopped reports whether node i is stopped.
func (c *Cluster) Stopped(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopped[i]
}

// MetaLeader waits (up to LeaderTimeout) for a JetStream meta leader among
// the running nodes and returns its index.
func (c *Cluster) MetaLeader(t testing.TB) int {
	t.Helper()
	return c.waitLeader(t, "meta", func(s *Server) bool { return s.srv.JetStreamIsLeader() })
}

// StreamLeader waits (up to LeaderTimeout) for a leader of stream in
// account ("" means the global account "$G") among the running nodes and
// returns its index.
func (c *Cluster) StreamLeader(t testing.TB, account, stream string) int {
	t.Helper()
	if account == "" {
		account = "$G"
	}
	return c.waitLeader(t, "stream "+account+" > "+stream, func(s *Server) bool {
		return s.srv.JetStreamIsStreamLeader(account, stream)
	})
}

func (c *Cluster) waitLeader(t testing.TB, what string, isLeader func(*Server) bool) int {
	t.Helper()
	leader := -1
	Eventually(t, LeaderTimeout, func() bool {
		for i, s := range c.Servers() {
			if !c.Stopped(i) && isLeader(s) {
				leader = i
				return true
			}
		}
		return false
	}, "no %s leader", what)
	return leader
}
