package natschedtest

import (
	"context"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// opTimeout bounds each client operation of these tests.
const opTimeout = 5 * time.Second

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), opTimeout)
	t.Cleanup(cancel)
	return c
}

func TestServerKV(t *testing.T) {
	t.Parallel()
	s := RunServer(t)

	u, err := url.Parse(s.URL())
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", u.Hostname())
	require.NotZero(t, s.Port())
	require.DirExists(t, s.StoreDir())

	js := s.JetStream(t)
	kv, err := js.CreateKeyValue(ctx(t), jetstream.KeyValueConfig{Bucket: "jobs"})
	require.NoError(t, err)
	_, err = kv.Put(ctx(t), "job.1", []byte("every 5m"))
	require.NoError(t, err)
	e, err := kv.Get(ctx(t), "job.1")
	require.NoError(t, err)
	require.Equal(t, "every 5m", string(e.Value()))
}

func TestServerOptions(t *testing.T) {
	t.Parallel()

	t.Run("MaxPayloadStoreDirLogs", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s := RunServer(t, WithMaxPayload(4096), WithStoreDir(dir), WithLogs())
		require.Equal(t, dir, s.StoreDir())
		nc := s.Conn(t)
		require.EqualValues(t, 4096, nc.MaxPayload())
		require.ErrorIs(t, nc.Publish("big", make([]byte, 5000)), nats.ErrMaxPayload)
	})

	t.Run("ConfigUsers", func(t *testing.T) {
		t.Parallel()
		s := RunServer(t, WithConfig(func(o *server.Options) {
			o.Users = []*server.User{{
				Username: "tenant-a",
				Password: "secret",
				Permissions: &server.Permissions{
					Publish: &server.SubjectPermission{Allow: []string{"a.>"}},
				},
			}}
		}))
		_, err := nats.Connect(s.URL(), nats.MaxReconnects(0))
		require.Error(t, err, "connecting without credentials")

		errs := make(chan error, 1)
		nc := s.Conn(t, nats.UserInfo("tenant-a", "secret"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
		require.NoError(t, nc.Publish("a.ok", nil))
		require.NoError(t, nc.Publish("b.denied", nil))
		require.NoError(t, nc.Flush())
		select {
		case err := <-errs:
			require.ErrorContains(t, err, "Permissions Violation")
		case <-time.After(opTimeout):
			t.Fatal("no permissions violation reported")
		}
	})

	t.Run("Port", func(t *testing.T) {
		t.Parallel()
		first := RunServer(t)
		port := first.Port()
		first.Shutdown()
		first.Shutdown() // idempotent
		require.False(t, first.Running())
		s := RunServer(t, WithPort(port))
		require.Equal(t, port, s.Port())
		require.Equal(t, first.URL(), s.URL())
	})
}

func TestServerRestart(t *testing.T) {
	t.Parallel()
	s := RunServer(t)
	reconnected := make(chan struct{}, 1)
	nc := s.Conn(t, nats.MaxReconnects(-1), nats.ReconnectHandler(func(*nats.Conn) {
		select {
		case reconnected <- struct{}{}:
		default:
		}
	}))
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateStream(ctx(t), jetstream.StreamConfig{
		Name:     "ORDERS",
		Subjects: []string{"orders.>"},
		Storage:  jetstream.FileStorage,
	})
	require.NoError(t, err)
	for i := range 3 {
		_, err := js.Publish(ctx(t), "orders.new", fmt.Appendf(nil, "order %d", i))
		require.NoError(t, err)
	}

	s2 := s.Restart(t)
	require.False(t, s.Running())
	require.Equal(t, s.URL(), s2.URL())
	require.Equal(t, s.StoreDir(), s2.StoreDir())

	select {
	case <-reconnected:
	case <-time.After(StartTimeout):
		t.Fatal("client did not reconnect to the restarted server")
	}
	// JetStream may need a moment after the client is back.
	Eventually(t, StartTimeout, func() bool {
		c, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err := js.Publish(c, "orders.new", []byte("order 3"))
		return err == nil
	}, "publish after restart")

	stream, err := js.Stream(ctx(t), "ORDERS")
	require.NoError(t, err)
	info, err := stream.Info(ctx(t))
	require.NoError(t, err)
	require.EqualValues(t, 4, info.State.Msgs)
	m, err := stream.GetMsg(ctx(t), 1)
	require.NoError(t, err)
	require.Equal(t, "order 0", string(m.Data))
}

func TestCluster(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := RunCluster(t, 3)
	t.Logf("cluster formed in %s", time.Since(start))

	servers := c.Servers()
	require.Len(t, servers, 3)
	for i, s := range servers {
		require.Equal(t, fmt.Sprintf("n%d", i+1), s.Name())
		require.Same(t, s, c.Server(i))
	}
	require.Len(t, strings.Split(c.URLs(), ","), 3)

	js := c.JetStream(t)
	_, err := js.CreateStream(ctx(t), jetstream.StreamConfig{
		Name:     "EVENTS",
		Subjects: []string{"events.>"},
		Storage:  jetstream.FileStorage,
		Replicas: 3,
	})
	require.NoError(t, err)
	_, err = js.Publish(ctx(t), "events.a", []byte("1"))
	require.NoError(t, err)

	leader := c.StreamLeader(t, "", "EVENTS")
	require.True(t, leader >= 0 && leader < 3, "leader %d", leader)
	require.Equal(t, leader, c.StreamLeader(t, "$G", "EVENTS"))
	stream, err := js.Stream(ctx(t), "EVENTS")
	require.NoError(t, err)
	info, err := stream.Info(ctx(t))
	require.NoError(t, err)
	require.Equal(t, c.Server(leader).Name(), info.Cluster.Leader)

	failover := time.Now()
	c.Stop(leader)
	require.True(t, c.Stopped(leader))
	newLeader := c.StreamLeader(t, "", "EVENTS")
	require.NotEqual(t, leader, newLeader)
	Eventually(t, 15*time.Second, func() bool {
		pc, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err := js.Publish(pc, "events.b", []byte("2"))
		return err == nil
	}, "publish to the R3 stream after its leader n%d stopped", leader+1)
	t.Logf("failover from n%d to n%d in %s", leader+1, newLeader+1, time.Since(failover))

	rejoin := time.Now()
	back := c.Start(leader)
	require.Same(t, back, c.Server(leader))
	require.False(t, c.Stopped(leader))
	Eventually(t, 15*time.Second, func() bool {
		return back.NATSServer().JetStreamIsStreamCurrent("$G", "EVENTS")
	}, "n%d catching up with the stream", leader+1)
	t.Logf("n%d rejoined in %s", leader+1, time.Since(rejoin))

	info, err = stream.Info(ctx(t))
	require.NoError(t, err)
	require.EqualValues(t, 2, info.State.Msgs)
	require.Len(t, info.Cluster.Replicas, 2)
	require.True(t, c.MetaLeader(t) >= 0)
}

// fakeTB records Fatalf and ends the goroutine like testing does.
type fakeTB struct {
	testing.TB
	fatal string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func runFake(f func(tb testing.TB)) string {
	tb := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(tb)
	}()
	<-done
	return tb.fatal
}

func TestEventually(t *testing.T) {
	t.Parallel()

	n := 0
	Eventually(t, time.Second, func() bool { n++; return n == 3 })
	require.Equal(t, 3, n)

	start := time.Now()
	msg := runFake(func(tb testing.TB) {
		Eventually(tb, 30*time.Millisecond, func() bool { return false }, "waiting for %s", "godot")
	})
	require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
	require.Contains(t, msg, "condition not met within 30ms: waiting for godot")

	msg = runFake(func(tb testing.TB) {
		Eventually(tb, time.Millisecond, func() bool { return false })
	})
	require.Contains(t, msg, "condition not met within 1ms")
}

// Start runs a server outside tests: JetStream in a temporary store that
// Shutdown removes, or in the caller's.
func TestStart(t *testing.T) {
	t.Parallel()
	s, err := Start()
	require.NoError(t, err)
	store := s.StoreDir()
	require.DirExists(t, store)
	nc, err := nats.Connect(s.URL())
	require.NoError(t, err)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateKeyValue(ctx(t), jetstream.KeyValueConfig{Bucket: "started"})
	require.NoError(t, err)
	nc.Close()
	s.Shutdown()
	s.Shutdown() // idempotent
	require.False(t, s.Running())
	require.NoDirExists(t, store, "the temporary store is removed")

	mine := t.TempDir()
	s, err = Start(WithStoreDir(mine))
	require.NoError(t, err)
	require.Equal(t, mine, s.StoreDir())
	s.Shutdown()
	require.DirExists(t, mine, "a store given is the caller's")

	_, err = Start(WithConfig(func(o *server.Options) { o.Host = "256.0.0.1" }))
	require.Error(t, err)
}
