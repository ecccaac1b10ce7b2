package jetstream

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/natschedtest"
)

// BenchmarkFire10k fires 10,000 one-shots on one embedded server and
// reports fires per second and lateness (arrival at a subscriber minus
// planned time). Run with -benchtime=1x: each iteration is the whole
// scenario.
//
//	spread: due over 5 s (0.5 ms apart); burst: all due at the same instant.
func BenchmarkFire10k(b *testing.B) {
	for _, bc := range []struct {
		name   string
		spread time.Duration
	}{{"spread", 5 * time.Second}, {"burst", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				benchFire(b, 10_000, bc.spread)
			}
		})
	}
}

func benchFire(b *testing.B, n int, spread time.Duration) {
	srv := natschedtest.RunServer(b)
	nc := srv.Conn(b)
	s, err := New(srv.JetStream(b), WithName("bench"), WithLogger(quietLogger()))
	require.NoError(b, err)
	require.NoError(b, s.Start(context.Background()))
	defer s.Close(context.Background())

	var mu sync.Mutex
	late := make([]time.Duration, 0, n)
	var first, last time.Time
	done := make(chan struct{})
	seen := map[string]bool{}
	_, err = nc.Subscribe("natsched.fire.bench", func(m *nats.Msg) {
		now := time.Now()
		msg := natsched.Message{Header: m.Header}
		mu.Lock()
		defer mu.Unlock()
		id := msg.ScheduleID()
		if seen[id] {
			return // a republish JetStream dropped; the core subscription still sees it
		}
		seen[id] = true
		late = append(late, now.Sub(msg.Planned()))
		if first.IsZero() {
			first = now
		}
		last = now
		if len(late) == n {
			close(done)
		}
	})
	require.NoError(b, err)

	// Create from 16 goroutines, all due after creation ends.
	start := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				at := start
				if spread > 0 {
					at = start.Add(time.Duration(i) * spread / time.Duration(n))
				}
				_, err := s.Put(context.Background(), &natsched.Schedule{
					ID: fmt.Sprintf("bench.%05d", i), Subject: "natsched.fire.bench", At: at})
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if time.Now().After(start) {
		b.Fatalf("creating %d schedules took longer than the lead time", n)
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		b.Fatal("not all fired")
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(late)
	pct := func(p float64) float64 { return float64(late[int(p*float64(len(late)-1))]) / 1e6 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(late[len(late)-1])/1e6, "max-ms")
	window := last.Sub(first)
	if spread == 0 {
		window = last.Sub(start)
	}
	b.ReportMetric(float64(n)/window.Seconds(), "fires/s")
}

// BenchmarkIndexMemory reports the heap the leader's index takes per
// pending schedule at 100k (entries as the watch creates them: ID, due
// time, revision, heap position, status, and their place in the map, the
// heap and the status B-tree).
func BenchmarkIndexMemory(b *testing.B) {
	const n = 100_000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("tenant-a.invoice.%07d", i) // a 24-byte ID
	}
	for b.Loop() {
		before := heapInUse()
		x := newIndex(1)
		base := time.Now().UnixNano()
		for i, id := range ids {
			// set keeps its own copy of the key: it is counted.
			x.set(id, uint64(i+1), base+int64(i)*int64(time.Millisecond), statusActive, nil)
		}
		after := heapInUse()
		b.ReportMetric(float64(after-before)/n, "B/pending")
		runtime.KeepAlive(x)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkListByStatus lists one page of paused schedules
// ({"status":"paused","limit":1}) out of 100,000, of which the last ten
// by ID are paused: a scan of the bucket reads nearly every value first.
func BenchmarkListByStatus(b *testing.B) {
	const n, paused = 100_000, 10
	srv := natschedtest.RunServer(b)
	s, err := New(srv.JetStream(b), WithName("bench"), WithLogger(quietLogger()))
	require.NoError(b, err)
	require.NoError(b, s.Start(context.Background()))
	defer s.Close(context.Background())
	at := time.Now().Add(time.Hour)
	key := func(i int) string { return fmt.Sprintf("bench.k%06d", i) }
	storeRaw(b, srv.JetStream(b), s, n, key, func(i int) []byte {
		st := natsched.StatusActive
		if i >= n-paused {
			st = natsched.StatusPaused
		}
		return stored(b, key(i), at, st)
	})
	for b.Loop() {
		page, err := s.List(context.Background(), natsched.ListOptions{Status: natsched.StatusPaused, Limit: 1})
		require.NoError(b, err)
		require.Len(b, page.Schedules, 1)
		require.Equal(b, key(n-paused), page.Schedules[0].ID)
	}
}
