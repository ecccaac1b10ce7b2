package jetstream

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/natsched/natsched/clock"
	"github.com/natsched/natsched/jetstream/internal/lease"
)

// Partitions (contract): schedule id belongs to partition
// natsched.Partition(id, N). Each partition has its own lease in the
// leader bucket: partition 0's is the key "leader" whatever N is (so it
// names the instance holding partition 0, and the partition count in
// force), partition p >= 1's is "leader.<p>". With N > 1, "leader.0"
// mirrors "leader" for tools that list the leader.<p> keys, and every
// instance keeps a presence key "member.<token>" ({"id", "partitions"})
// so that instances holding nothing are seen too.
//
// Which N is in force is what the holder of "leader" says (its value's
// "partitions", absent = 1): an instance whose N differs campaigns for
// partition 0 only and hands back any other it holds. So during a rolling
// change of N at most a moment of overlap or gap happens (a repeat is
// deduplicated by its occurrence ID, a late fire is only late), never two
// partition counts firing side by side.
//
// Balance: with k live instances of the N in force, an instance
// campaigns at once while it holds fewer than ceil(N/k) and no more than
// any other, and for any partition that has been free for a moment (so a
// stale count never leaves one unheld); one holding at least two more
// than another hands its highest partition over, one at a time. The
// leases settle with at most one between any two instances, each at most
// ceil(N/k), and then stay.

// PartitionKey is the lease key of partition p (contract).
func PartitionKey(p int) string {
	if p == 0 {
		return LeaderKey
	}
	return LeaderKey + "." + strconv.Itoa(p)
}

// mirrorKey copies partition 0's lease when N > 1.
const mirrorKey = LeaderKey + ".0"

// memberPrefix starts presence keys.
const memberPrefix = "member."

// member is what a presence key holds.
type member struct {
	ID         string `json:"id"`
	Partitions int    `json:"partitions"`
}

// partitionOf returns the partition whose lease key is key, or -1.
func partitionOf(key string) int {
	if key == LeaderKey {
		return 0
	}
	rest, ok := strings.CutPrefix(key, LeaderKey+".")
	if !ok {
		return -1
	}
	p, err := strconv.Atoi(rest)
	if err != nil || p <= 0 || strconv.Itoa(p) != rest {
		return -1
	}
	return p
}

// coordinator keeps one instance's view of the leader bucket (who holds
// which partition, who is alive) and answers its partition leases'
// gates. It runs only with N > 1.
type coordinator struct {
	kv      js.KeyValue
	nc      *nats.Conn
	n       int
	name    string
	ttl     time.Duration
	clk     clock.Clock
	log     *slog.Logger
	markers bool // expiries are pushed to the watch
	token   string

	mu    sync.Mutex
	bal   balance
	gates []*gate
}

func newCoordinator(c *coordinator) *coordinator {
	c.token = lease.NewToken()
	c.bal = newBalance(c.n, c.name, c.ttl/3)
	c.gates = make([]*gate, c.n)
	for p := range c.gates {
		c.gates[p] = &gate{c: c, p: p, changed: make(chan struct{}, 1)}
	}
	return c
}

// gate is partition p's lease gate.
func (c *coordinator) gate(p int) lease.Gate { return c.gates[p] }

// run keeps the presence key and the view until ctx ends, then deletes
// the presence key.
func (c *coordinator) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { c.present(ctx) })
	c.watch(ctx)
}

// present writes the presence key every TTL/3 (the bucket's TTL expires
// it when this instance is gone) and deletes it at the end.
func (c *coordinator) present(ctx context.Context) {
	key := memberPrefix + c.token
	value, _ := json.Marshal(member{ID: c.name, Partitions: c.n})
	for {
		pctx, cancel := context.WithTimeout(ctx, c.ttl/3)
		_, err := c.kv.Put(pctx, key, value)
		cancel()
		if err != nil && ctx.Err() == nil {
			c.log.Debug("natsched: cannot write the presence key", "err", err)
		}
		wait, stop := clock.After(c.clk, c.ttl/3)
		select {
		case <-ctx.Done():
			stop()
			if c.nc.IsConnected() {
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.ttl/3)
				_ = c.kv.Delete(dctx, key)
				cancel()
			}
			return
		case <-wait:
		}
	}
}

// watch feeds the view from a watch of the whole leader bucket, watching
// again after the watch ends or the connection comes back.
func (c *coordinator) watch(ctx context.Context) {
	reconnected := c.nc.StatusChanged(nats.CONNECTED)
	defer c.nc.RemoveStatusListener(reconnected)
	for ctx.Err() == nil {
		w, err := c.kv.WatchAll(ctx)
		if err == nil {
			c.follow(ctx, w, reconnected)
			lease.StopWatch(c.nc, w)
		} else {
			c.log.Warn("natsched: cannot watch the leader bucket; retrying", "err", err)
		}
		if ctx.Err() != nil {
			return
		}
		wait, stop := clock.After(c.clk, time.Second)
		select {
		case <-ctx.Done():
			stop()
			return
		case <-wait:
		case <-reconnected:
			stop()
		}
	}
}

// follow applies w's entries until it ends, ctx ends or the connection
// comes back.
func (c *coordinator) follow(ctx context.Context, w js.KeyWatcher, reconnected <-chan nats.Status) {
	c.mu.Lock()
	c.bal.reset()
	c.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-reconnected:
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			c.apply(e)
		}
	}
}

// apply records one entry of the bucket and tells the gates.
func (c *coordinator) apply(e js.KeyValueEntry) {
	now := c.clk.Now()
	c.mu.Lock()
	if e != nil {
		key, put := e.Key(), e.Operation() == js.KeyValuePut
		expired := e.Operation() == js.KeyValuePurge // a limit marker: the TTL ran out
		if p := partitionOf(key); p >= 0 {
			var v lease.Value
			if !put || json.Unmarshal(e.Value(), &v) != nil || v.ID == "" {
				c.bal.free(p, expired, now)
			} else {
				c.bal.hold(p, v, now)
			}
		} else if tok, ok := strings.CutPrefix(key, memberPrefix); ok {
			var m member
			if put && json.Unmarshal(e.Value(), &m) == nil && m.ID != "" {
				c.bal.join(tok, m)
			} else {
				c.bal.leave(tok)
			}
		}
	}
	c.mu.Unlock()
	for _, g := range c.gates {
		g.poke()
	}
}

// gate answers one partition lease's questions from the view.
type gate struct {
	c       *coordinator
	p       int
	changed chan struct{}
	asked   atomic.Int64 // Campaign calls, for tests
}

func (g *gate) poke() {
	select {
	case g.changed <- struct{}{}:
	default:
	}
}

func (g *gate) Changed() <-chan struct{} { return g.changed }

func (g *gate) Campaign() (bool, time.Duration) {
	defer g.asked.Add(1)
	g.c.mu.Lock()
	defer g.c.mu.Unlock()
	return g.c.bal.campaign(g.p, g.c.clk.Now(), g.c.markers)
}

func (g *gate) Release() {
	g.c.mu.Lock()
	g.c.bal.release(g.p)
	g.c.mu.Unlock()
}

func (g *gate) Yield() bool {
	g.c.mu.Lock()
	defer g.c.mu.Unlock()
	return g.c.bal.yield(g.p, g.c.clk.Now(), g.c.markers)
}
