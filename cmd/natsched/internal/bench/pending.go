package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsched/natsched"
	nsjs "github.com/natsched/natsched/jetstream"
)

// pendingKey is a 24-byte schedule ID, as in DESIGN.md's example.
func pendingKey(i int) string { return fmt.Sprintf("tenant-a.invoice.%07d", i) }

// storePending stores n one-shots due from an hour ahead in the schedules
// bucket of prefix, the way --pending-load says. The bucket is created by a
// first scheduler instance (so it has the scheduler's own configuration),
// which is closed before the caller starts the instance it measures.
func (b *bench) storePending(ctx context.Context, w, p string, n int) (time.Duration, error) {
	loader, err := b.startInstance(ctx, p, p+"-loader", nsjs.WithoutAPI(), nsjs.WithoutIntake())
	if err != nil {
		return 0, err
	}
	defer loader.stop()
	subject := p + ".fire.bench"
	far := time.Now().Add(time.Hour)
	at := func(i int) time.Time { return far.Add(time.Duration(i) * time.Millisecond) }
	var done atomic.Int64
	progress := func() { b.progressf("%s: %d/%d stored (%s)", w, done.Load(), n, b.cfg.pendingLoad) }
	var start time.Time
	switch b.cfg.pendingLoad {
	case loadAPI:
		stop := b.ticker(2*time.Second, progress)
		start = time.Now()
		err = parallel(ctx, n, max(b.cfg.createConc, 64), func(ctx context.Context, i int) error {
			_, err := loader.s.Put(ctx, &natsched.Schedule{ID: pendingKey(i), Subject: subject, At: at(i)})
			done.Add(1)
			return err
		})
		stop()
		loader.stop()
	case loadCreate:
		loader.stop()
		nc, cerr := b.connect("loader")
		if cerr != nil {
			return 0, cerr
		}
		defer nc.Close()
		js, cerr := jetstream.New(nc)
		if cerr != nil {
			return 0, cerr
		}
		kv, cerr := js.KeyValue(ctx, nsjs.NamesFor(p).SchedulesBucket)
		if cerr != nil {
			return 0, cerr
		}
		stop := b.ticker(2*time.Second, progress)
		now := time.Now()
		start = now
		err = parallel(ctx, n, 64, func(ctx context.Context, i int) error {
			v, err := storedSchedule(pendingKey(i), subject, at(i), now, rand.Uint64()|1)
			if err == nil {
				_, err = kv.Create(ctx, pendingKey(i), v)
			}
			done.Add(1)
			return err
		})
		stop()
	default:
		loader.stop()
		start = time.Now()
		_, err = b.loadBucket(ctx, p, n, pendingKey, subject, at, func(k int) {
			done.Store(int64(k))
			progress()
		})
	}
	if err != nil {
		return 0, fmt.Errorf("store %d schedules: %w", n, err)
	}
	return time.Since(start), nil
}

// pending stores --pending-n schedules, then starts a fresh instance and
// measures (1) how long from its Start until it leads with every schedule
// indexed (polling IsLeader and Status().Pending every 10 ms), (2) when a
// sentinel one-shot due 1 s after Start fires, and (3) the heap the
// instance built: the heap profile's live bytes allocated outside
// nats-server packages (the scheduler and the nats.go client), before
// Start and once indexed; the plain heap delta over the same span, which
// also holds the server's block cache for the messages the index watch
// read; and the whole process's heap delta from before the schedules were
// stored, the server's copy of them included.
func (b *bench) pending(ctx context.Context) (Result, error) {
	n := b.cfg.pendingN
	res := Result{Name: WPending, System: SystemNatsched, N: n}
	p := b.prefix(WPending)
	defer b.cleanup(p)
	h0 := heapAlloc()
	loadTime, err := b.storePending(ctx, WPending, p, n)
	if err != nil {
		return res, err
	}
	res.LoadPerSecond = f64(round(float64(n)/loadTime.Seconds(), 0))

	// The sentinel's subscriber and writer.
	snc, err := b.connect("sentinel")
	if err != nil {
		return res, err
	}
	defer snc.Close()
	sjs, err := jetstream.New(snc)
	if err != nil {
		return res, err
	}
	kv, err := sjs.KeyValue(ctx, nsjs.NamesFor(p).SchedulesBucket)
	if err != nil {
		return res, err
	}
	sentinelSubject := p + ".fire.sentinel"
	obs := natschedObserver(1)
	stopObs, err := subscribeCore(snc, sentinelSubject, obs)
	if err != nil {
		return res, err
	}
	defer stopObs()
	fresh, err := b.newInstance(p, p+"-fresh")
	if err != nil {
		return res, err
	}
	defer fresh.stop()

	// Sample the heap finely while the index is built (see heapBySide).
	defer setMemProfileRate(setMemProfileRate(16 << 10))
	h1 := heapAlloc()
	_, other1 := heapBySide()
	v, err := storedSchedule("sentinel", sentinelSubject, time.Now().Add(time.Second), time.Now(), rand.Uint64()|1)
	if err != nil {
		return res, err
	}
	if _, err := kv.Create(ctx, "sentinel", v); err != nil {
		return res, fmt.Errorf("sentinel: %w", err)
	}
	b.progressf("%s: %d stored in %.1fs; starting a fresh instance", WPending, n, loadTime.Seconds())
	tStart := time.Now()
	if err := fresh.s.Start(ctx); err != nil {
		return res, fmt.Errorf("start fresh instance: %w", err)
	}
	var pend atomic.Int64
	stop := b.ticker(2*time.Second, func() { b.progressf("%s: fresh instance indexed %d/%d", WPending, pend.Load(), n) })
	err = waitUntil(ctx, max(time.Minute, time.Duration(n)*100*time.Microsecond), 10*time.Millisecond, func() bool {
		st, err := fresh.s.Status(ctx)
		if err != nil {
			return false
		}
		pend.Store(int64(st.Pending))
		return st.IsLeader && st.Pending >= n
	})
	loaded := time.Since(tStart)
	stop()
	if err != nil {
		return res, fmt.Errorf("fresh instance did not lead with %d schedules indexed: %w", n, err)
	}
	h2 := heapAlloc()
	_, other2 := heapBySide()
	res.RebuildSeconds = f64(round(loaded.Seconds(), 3))
	res.BytesPerSchedule = f64(round((other2-other1)/float64(n), 0))
	res.HeapDeltaBytesPerSchedule = f64(round((float64(h2)-float64(h1))/float64(n), 0))
	res.ProcessHeapBytesPerSchedule = f64(round((float64(h2)-float64(h0))/float64(n), 0))
	if _, err := obs.wait(ctx, time.Now().Add(30*time.Second)); err != nil {
		return res, err
	}
	if as := obs.snapshot(); len(as) > 0 {
		res.SentinelSeconds = f64(round(as[0].at.Sub(tStart).Seconds(), 3))
	} else {
		return res, errors.New("the sentinel (due 1s after Start) did not fire within 30s of indexing")
	}
	res.Notes = fmt.Sprintf("stored with --pending-load=%s; rebuild = Start until IsLeader and Status().Pending >= n; "+
		"bytes/sched = heap-profile live bytes not allocated by nats-server code (scheduler + nats.go), "+
		"heap delta = HeapAlloc over the same span (also the server's block cache the watch read), "+
		"process heap = HeapAlloc since before storing (embedded server's copy included)", b.cfg.pendingLoad)
	return res, nil
}
