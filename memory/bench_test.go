package memory_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/clock"
	"github.com/natsched/natsched/memory"
)

func BenchmarkPut(b *testing.B) {
	c := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s, err := memory.New(memory.WithClock(c))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			_, err := s.Put(context.Background(), &natsched.Schedule{
				ID: "bench." + strconv.FormatInt(i, 10), Subject: "natsched.fire.bench",
				In: time.Hour + time.Duration(i)*time.Millisecond, Data: []byte("payload"),
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFireWith1MPending measures one fire (heap pop, state step,
// message build, dispatch) while a million other schedules wait, and the
// heap bytes each pending schedule costs.
func BenchmarkFireWith1MPending(b *testing.B) {
	const pending = 1_000_000
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := clock.NewFake(start)
	var fired atomic.Int64
	s, err := memory.New(memory.WithClock(c), memory.WithDispatcher(natsched.DispatcherFunc(
		func(context.Context, *natsched.Message) error { fired.Add(1); return nil })))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())

	before := heapAlloc()
	ctx := context.Background()
	for i := range pending {
		_, err := s.Put(ctx, &natsched.Schedule{
			ID: "pending." + strconv.Itoa(i), Subject: "natsched.fire.pending",
			At: start.Add(24*time.Hour + time.Duration(i)*time.Millisecond), Data: []byte("payload-16-bytes"),
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	perSchedule := float64(heapAlloc()-before) / pending
	if _, err := s.Put(ctx, &natsched.Schedule{ID: "hot", Subject: "natsched.fire.hot", Every: time.Millisecond}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		c.Advance(time.Millisecond)
	}
	b.StopTimer()
	if got := fired.Load(); got != int64(b.N) {
		b.Fatalf("fired %d, want %d", got, b.N)
	}
	b.ReportMetric(perSchedule, "B/pending")
	runtime.KeepAlive(s)
}

func heapAlloc() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

var _ = fmt.Sprint
