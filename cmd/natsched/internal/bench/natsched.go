package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsched/natsched"
	nsjs "github.com/natsched/natsched/jetstream"
)

// instance is a natsched scheduler on its own connection.
type instance struct {
	s  *nsjs.Scheduler
	nc *nats.Conn
	js jetstream.JetStream
}

// newInstance creates (does not start) a scheduler named name with prefix
// on a new connection.
func (b *bench) newInstance(prefix, name string, opts ...nsjs.Option) (*instance, error) {
	nc, err := b.connect(name)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	opts = append([]nsjs.Option{nsjs.WithPrefix(prefix), nsjs.WithName(name), nsjs.WithLogger(b.log)}, opts...)
	s, err := nsjs.New(js, opts...)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &instance{s: s, nc: nc, js: js}, nil
}

// startInstance creates and starts a scheduler.
func (b *bench) startInstance(ctx context.Context, prefix, name string, opts ...nsjs.Option) (*instance, error) {
	in, err := b.newInstance(prefix, name, opts...)
	if err != nil {
		return nil, err
	}
	if err := in.s.Start(ctx); err != nil {
		in.nc.Close()
		return nil, fmt.Errorf("start scheduler: %w", err)
	}
	return in, nil
}

// stop closes the scheduler (bounded) and its connection.
func (in *instance) stop() {
	if in == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = in.s.Close(ctx)
	in.nc.Close()
}

// leading waits until the instance leads.
func (in *instance) leading(ctx context.Context, timeout time.Duration) error {
	if err := waitUntil(ctx, timeout, 5*time.Millisecond, in.s.IsLeader); err != nil {
		return fmt.Errorf("scheduler %s did not lead within %s: %w", in.s.Name(), timeout, err)
	}
	return nil
}

// pendingAtLeast waits until the instance's index counts n pending schedules.
func (in *instance) pendingAtLeast(ctx context.Context, n int, timeout time.Duration) error {
	err := waitUntil(ctx, timeout, 5*time.Millisecond, func() bool {
		st, err := in.s.Status(ctx)
		return err == nil && st.Pending >= n
	})
	if err != nil {
		return fmt.Errorf("scheduler %s did not index %d schedules within %s: %w", in.s.Name(), n, timeout, err)
	}
	return nil
}

// cleanup deletes the buckets and streams of prefix.
func (b *bench) cleanup(prefix string) {
	nc, err := b.connect("cleanup")
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := nsjs.NamesFor(prefix)
	for _, s := range []string{n.FireStream, n.DeadStream, n.IntakeStream} {
		_ = js.DeleteStream(ctx, s)
	}
	for _, kv := range []string{n.SchedulesBucket, n.LeaderBucket} {
		_ = js.DeleteKeyValue(ctx, kv)
	}
}

// storedSchedule renders a one-shot as the scheduler stores it after Put:
// status active, next_run set, a non-zero generation.
func storedSchedule(id, subject string, at, now time.Time, generation uint64) ([]byte, error) {
	s := natsched.Schedule{
		ID: id, Subject: subject, At: at.UTC(),
		Status: natsched.StatusActive, NextRun: at.UTC(),
		Created: now.UTC(), Updated: now.UTC(), Generation: generation,
	}
	return json.Marshal(s)
}

// Placeholders of storedTemplate; they need no JSON escaping and occur
// nowhere else in the rendering.
const (
	tmplID         = "BENCHIDPLACEHOLDER"
	tmplGeneration = 1234567890123456789
)

var tmplAt = time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)

// storedTemplate renders stored one-shots fast: Schedule.MarshalJSON once
// with placeholders, then only the ID, the due time (at and next_run) and
// the generation are substituted. The output is byte for byte what
// storedSchedule returns for the same values.
type storedTemplate struct {
	parts [][]byte // the rendering split at the placeholders
	kinds []byte   // what goes between parts[i] and parts[i+1]: 'i'd, 'a't, 'g'eneration
}

func newStoredTemplate(subject string, now time.Time) (*storedTemplate, error) {
	b, err := json.Marshal(natsched.Schedule{
		ID: tmplID, Subject: subject, At: tmplAt, Status: natsched.StatusActive, NextRun: tmplAt,
		Created: now.UTC(), Updated: now.UTC(), Generation: tmplGeneration,
	})
	if err != nil {
		return nil, err
	}
	marks := map[byte][]byte{
		'i': []byte(`"` + tmplID + `"`), 'a': []byte(`"` + natsched.FormatTime(tmplAt) + `"`),
		'g': []byte(`"generation":` + strconv.FormatUint(tmplGeneration, 10)),
	}
	t := &storedTemplate{}
	for len(b) > 0 {
		best, kind := -1, byte(0)
		for k, m := range marks {
			if i := bytes.Index(b, m); i >= 0 && (best < 0 || i < best) {
				best, kind = i, k
			}
		}
		if best < 0 {
			t.parts = append(t.parts, b)
			break
		}
		t.parts = append(t.parts, b[:best])
		t.kinds = append(t.kinds, kind)
		b = b[best+len(marks[kind]):]
	}
	if len(t.parts) == len(t.kinds) {
		t.parts = append(t.parts, nil)
	}
	count := map[byte]int{}
	for _, k := range t.kinds {
		count[k]++
	}
	if count['i'] != 1 || count['a'] != 2 || count['g'] != 1 {
		return nil, errors.New("stored schedule template: unexpected rendering of the placeholders")
	}
	return t, nil
}

func (t *storedTemplate) render(dst []byte, id string, at time.Time, generation uint64) []byte {
	ts := natsched.FormatTime(at)
	for i, k := range t.kinds {
		dst = append(dst, t.parts[i]...)
		switch k {
		case 'i':
			dst = strconv.AppendQuote(dst, id)
		case 'a':
			dst = append(dst, '"')
			dst = append(dst, ts...)
			dst = append(dst, '"')
		case 'g':
			dst = append(dst, `"generation":`...)
			dst = strconv.AppendUint(dst, generation, 10)
		}
	}
	return append(dst, t.parts[len(t.parts)-1]...)
}

// loadBucket writes n stored schedules (key(i), at(i)) straight into the
// schedules bucket of prefix with pipelined PublishAsync from a few
// goroutines, and waits for every PubAck. progress, if not nil, is called
// with the number published so far.
func (b *bench) loadBucket(ctx context.Context, prefix string, n int, key func(int) string, subject string, at func(int) time.Time, progress func(int)) (time.Duration, error) {
	pub, err := b.newAsyncPublisher("loader")
	if err != nil {
		return 0, err
	}
	defer pub.close()
	bucket := nsjs.NamesFor(prefix).SchedulesBucket
	tmpl, err := newStoredTemplate(subject, time.Now())
	if err != nil {
		return 0, err
	}
	start := time.Now()
	var published atomic.Int64
	const workers = 2
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if ctx.Err() != nil {
					errs <- ctx.Err()
					return
				}
				k := key(i)
				v := tmpl.render(make([]byte, 0, 384), k, at(i), rand.Uint64()|1)
				if _, err := pub.js.PublishMsgAsync(&nats.Msg{Subject: "$KV." + bucket + "." + k, Data: v}, stallWait); err != nil {
					errs <- fmt.Errorf("publish %s: %w", k, err)
					return
				}
				published.Add(1)
			}
		}()
	}
	stopProgress := func() {}
	if progress != nil {
		stopProgress = b.ticker(2*time.Second, func() { progress(int(published.Load())) })
	}
	wg.Wait()
	stopProgress()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	if err := pub.wait(ctx, n, "bucket writes"); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// leadTime is how far ahead the schedules of a fire workload are due, so
// that creating n of them (and the leader indexing them) ends first.
func leadTime(n int) time.Duration {
	return 1500*time.Millisecond + time.Duration(n)*40*time.Microsecond
}

// bulkLeadTime is leadTime for schedules written straight into the bucket:
// writing is faster than the Go API, but the leader must also read every
// one from its watch before they are due.
func bulkLeadTime(n int) time.Duration {
	return 1500*time.Millisecond + time.Duration(n)*80*time.Microsecond
}

// fireWait is how long after the last planned time a fire workload waits
// for the last fire.
func fireWait(n int) time.Duration {
	return 30*time.Second + time.Duration(n)*500*time.Microsecond
}

// natschedFires runs spread (over > 0), instant or burst through natsched.
// Schedules are created through the Go API (Put, with --create-concurrency
// callers); for burst, where creating 100k through the API would take longer
// than the lead time allows, they are written straight into the bucket as
// the scheduler stores them, while the scheduler runs and indexes them.
func (b *bench) natschedFires(ctx context.Context, w string, n int, over time.Duration) (Result, error) {
	res := Result{Name: w, System: SystemNatsched, N: n}
	p := b.prefix(w)
	defer b.cleanup(p)
	in, err := b.startInstance(ctx, p, p+"-a")
	if err != nil {
		return res, err
	}
	defer in.stop()
	if err := in.leading(ctx, 15*time.Second); err != nil {
		return res, err
	}
	subject := p + ".fire.bench"
	obs := natschedObserver(n)
	var stopObs func()
	if b.cfg.observe == observeConsumer {
		stopObs, err = subscribeConsumer(ctx, in.js, in.s.Names().FireStream, subject, obs)
	} else {
		var snc *nats.Conn
		if snc, err = b.connect("subscriber"); err != nil {
			return res, err
		}
		defer snc.Close()
		stopObs, err = subscribeCore(snc, subject, obs)
	}
	if err != nil {
		return res, err
	}
	defer stopObs()

	bulk := w == WBurst || w == WSustained
	lead := leadTime(n)
	switch w {
	case WBurst:
		lead = bulkLeadTime(n)
	case WSustained:
		// Long enough to store and index 1.5M on a quiet 2-core machine
		// (about 100k/s each); a run that overran says so in its notes.
		lead = 1500*time.Millisecond + time.Duration(n)*30*time.Microsecond
	}
	t0 := time.Now().Add(lead)
	planned := func(i int) time.Time {
		if over <= 0 {
			return t0
		}
		return t0.Add(time.Duration(i) * over / time.Duration(n))
	}
	id := func(i int) string { return fmt.Sprintf("bench.%s.%07d", w, i) }
	if bulk {
		_, err = b.loadBucket(ctx, p, n, id, subject, planned, func(k int) {
			b.progressf("%s (natsched): %d/%d stored", w, k, n)
		})
	} else {
		err = parallel(ctx, n, b.cfg.createConc, func(ctx context.Context, i int) error {
			_, err := in.s.Put(ctx, &natsched.Schedule{ID: id(i), Subject: subject, At: planned(i)})
			return err
		})
	}
	if err != nil {
		return res, fmt.Errorf("create: %w", err)
	}
	var setupNote string
	if bulk {
		// The leader must have indexed them before they are due.
		if err := in.pendingAtLeast(ctx, n, max(time.Until(t0), 0)); err != nil {
			setupNote = "the leader had not indexed every schedule by the due time"
		}
		setupNote = joinNote(setupNote, "schedules written straight into the bucket as stored by Put")
	}
	if late := time.Since(t0); late > 0 {
		setupNote = joinNote(setupNote, fmt.Sprintf("setup overran the first due time by %s: lateness is inflated", late.Round(time.Millisecond)))
	}
	stop := b.ticker(2*time.Second, func() { b.progressf("%s (natsched): %d/%d fired", w, obs.count(), n) })
	got, err := obs.wait(ctx, planned(n-1).Add(fireWait(n)))
	stop()
	if err != nil {
		return res, err
	}
	as := obs.snapshot()
	fillFires(&res, w, as, t0)
	res.Notes = joinNote(setupNote, res.Notes)
	if got < n {
		res.Error = fmt.Sprintf("only %d of %d fires arrived", got, n)
	}
	return res, nil
}

// fillFires computes the fire measurements of spread, instant and burst.
func fillFires(res *Result, w string, as []arrival, t0 time.Time) {
	if len(as) == 0 {
		return
	}
	res.LatenessMs = latenessOf(latenesses(as))
	if w == WSustained {
		fillSustained(res, as, t0)
		return
	}
	if w != WBurst {
		return
	}
	first, last := firstLast(as)
	res.FirstMs = f64(round(ms(first.Sub(t0)), 3))
	res.LastMs = f64(round(ms(last.Sub(t0)), 3))
	if len(as) > 1 && last.After(first) {
		res.PerSecond = f64(round(float64(len(as)-1)/last.Sub(first).Seconds(), 0))
	}
	if last.After(t0) {
		res.PerSecondFromDue = f64(round(float64(len(as))/last.Sub(t0).Seconds(), 0))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func joinNote(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

// natschedCreate measures creating schedules through the Go API and through
// the micro API, each with --create-concurrency callers. The schedules are
// due in an hour, so nothing fires meanwhile.
func (b *bench) natschedCreate(ctx context.Context) ([]Result, error) {
	n, conc := b.cfg.createN, b.cfg.createConc
	p := b.prefix(WCreate)
	defer b.cleanup(p)
	in, err := b.startInstance(ctx, p, p+"-a")
	if err != nil {
		return nil, err
	}
	defer in.stop()
	if err := in.leading(ctx, 15*time.Second); err != nil {
		return nil, err
	}
	subject := p + ".fire.bench"
	at := time.Now().Add(time.Hour)
	note := fmt.Sprintf("%d callers; one-shots due in 1h; the leader indexes them meanwhile", conc)

	// Go API.
	lat := make([]time.Duration, n)
	var done atomic.Int64
	stop := b.ticker(2*time.Second, func() { b.progressf("create (natsched, Go API): %d/%d", done.Load(), n) })
	start := time.Now()
	err = parallel(ctx, n, conc, func(ctx context.Context, i int) error {
		t := time.Now()
		_, err := in.s.Put(ctx, &natsched.Schedule{ID: fmt.Sprintf("create.go.%07d", i), Subject: subject, At: at.Add(time.Duration(i) * time.Millisecond)})
		lat[i] = time.Since(t)
		done.Add(1)
		return err
	})
	elapsed := time.Since(start)
	stop()
	if err != nil {
		return nil, fmt.Errorf("Go API put: %w", err)
	}
	goRes := Result{Name: WCreate, System: SystemNatsched, N: n,
		PerSecond: f64(round(float64(n)/elapsed.Seconds(), 0)), LatencyMs: latenessOf(lat),
		Notes: "Go API Put; " + note, Seconds: round(elapsed.Seconds(), 2)}

	// micro API, from a client connection of its own.
	cnc, err := b.connect("micro client")
	if err != nil {
		return nil, err
	}
	defer cnc.Close()
	api := in.s.Names().APIPrefix
	done.Store(0)
	stop = b.ticker(2*time.Second, func() { b.progressf("create (natsched, micro API): %d/%d", done.Load(), n) })
	start = time.Now()
	err = parallel(ctx, n, conc, func(ctx context.Context, i int) error {
		id := fmt.Sprintf("create.micro.%07d", i)
		body := fmt.Sprintf(`{"subject":%q,"at":%q}`, subject, natsched.FormatTime(at.Add(time.Duration(i)*time.Millisecond)))
		t := time.Now()
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		m, err := cnc.RequestWithContext(rctx, api+".put."+id, []byte(body))
		lat[i] = time.Since(t)
		done.Add(1)
		if err != nil {
			return err
		}
		if code := m.Header.Get("Nats-Service-Error-Code"); code != "" {
			return fmt.Errorf("put %s: %s %s", id, code, m.Header.Get("Nats-Service-Error"))
		}
		return nil
	})
	elapsed = time.Since(start)
	stop()
	if err != nil {
		return []Result{goRes, {Name: WCreate + "-micro", System: SystemNatsched, N: n, Error: "micro API put: " + err.Error()}}, nil
	}
	microRes := Result{Name: WCreate + "-micro", System: SystemNatsched, N: n,
		PerSecond: f64(round(float64(n)/elapsed.Seconds(), 0)), LatencyMs: latenessOf(lat),
		Notes: "micro API requests to " + api + ".put.<id>; " + note, Seconds: round(elapsed.Seconds(), 2)}
	return []Result{goRes, microRes}, nil
}
