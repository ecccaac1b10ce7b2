package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsched/natsched"
	nsjs "github.com/natsched/natsched/jetstream"
)

// failover runs two instances, each on its own connection, and one
// schedule firing every --failover-every (misfire "all", so that nothing
// is skipped and the fire stream can be checked for losses). After a
// steady period the leader's connection is closed without Close: the
// server sees the client vanish as it would after SIGKILL, and the lease is
// neither renewed nor released. The gap is the first arrival after the
// kill minus the last arrival before it. Afterwards the fire stream is read
// back: duplicates are stored copies of an occurrence beyond the first,
// missing are occurrences between the first and the last stored one that
// are not in the stream.
func (b *bench) failover(ctx context.Context) (Result, error) {
	lease, every := b.cfg.failoverLease, b.cfg.failoverEvery
	res := Result{Name: WFailover, System: SystemNatsched}
	p := b.prefix(WFailover)
	defer b.cleanup(p)
	a, err := b.startInstance(ctx, p, p+"-a", nsjs.WithLeaseTTL(lease))
	if err != nil {
		return res, err
	}
	defer a.stop()
	if err := a.leading(ctx, 3*lease+10*time.Second); err != nil {
		return res, err
	}
	c, err := b.startInstance(ctx, p, p+"-b", nsjs.WithLeaseTTL(lease))
	if err != nil {
		return res, err
	}
	defer c.stop()

	subject := p + ".fire.failover"
	obs := natschedObserver(0)
	snc, err := b.connect("subscriber")
	if err != nil {
		return res, err
	}
	defer snc.Close()
	var stopObs func()
	if b.cfg.observe == observeConsumer {
		sjs, err := jetstream.New(snc)
		if err != nil {
			return res, err
		}
		stopObs, err = subscribeConsumer(ctx, sjs, a.s.Names().FireStream, subject, obs)
		if err != nil {
			return res, err
		}
	} else if stopObs, err = subscribeCore(snc, subject, obs); err != nil {
		return res, err
	}
	defer stopObs()

	const id = "failover.tick"
	if _, err := a.s.Put(ctx, &natsched.Schedule{ID: id, Subject: subject, Every: every, Misfire: natsched.MisfireAll}); err != nil {
		return res, fmt.Errorf("put: %w", err)
	}
	if err := waitUntil(ctx, 10*time.Second+20*every, 5*time.Millisecond, func() bool { return obs.count() >= 5 }); err != nil {
		return res, fmt.Errorf("the schedule did not fire steadily before the kill: %w", err)
	}
	if err := sleep(ctx, 2*time.Second); err != nil {
		return res, err
	}
	leader, survivor := a, c
	if !a.s.IsLeader() {
		leader, survivor = c, a
	}
	if !leader.s.IsLeader() {
		return res, errors.New("no instance leads before the kill")
	}
	b.progressf("%s: closing the connection of leader %s", WFailover, leader.s.Name())
	tKill := time.Now()
	leader.nc.Close()
	after := func() (time.Time, bool) {
		var first time.Time
		for _, x := range obs.snapshot() {
			if x.at.After(tKill) && (first.IsZero() || x.at.Before(first)) {
				first = x.at
			}
		}
		return first, !first.IsZero()
	}
	err = waitUntil(ctx, 3*lease+15*time.Second, 5*time.Millisecond, func() bool { _, ok := after(); return ok })
	if err != nil {
		return res, fmt.Errorf("no fire within %s of killing the leader: %w", 3*lease+15*time.Second, err)
	}
	if err := sleep(ctx, time.Second); err != nil { // fires resumed: watch them for a while
		return res, err
	}
	firstAfter, _ := after()
	var lastBefore time.Time
	for _, x := range obs.snapshot() {
		if !x.at.After(tKill) && x.at.After(lastBefore) {
			lastBefore = x.at
		}
	}
	if _, err := survivor.s.Cancel(ctx, id); err != nil {
		return res, fmt.Errorf("cancel: %w", err)
	}
	res.GapMs = f64(round(ms(firstAfter.Sub(lastBefore)), 1))
	res.TakeoverMs = f64(round(ms(firstAfter.Sub(tKill)), 1))
	res.N = obs.count()

	// Read the fire stream back.
	if err := sleep(ctx, 200*time.Millisecond); err != nil { // let in-flight fires land
		return res, err
	}
	planned, err := readPlanned(ctx, survivor.js, survivor.s.Names().FireStream, subject)
	if err != nil {
		return res, fmt.Errorf("read fire stream: %w", err)
	}
	dups, missing := checkCadence(planned, every)
	res.Duplicates, res.Missing = intp(dups), intp(missing)
	res.Notes = fmt.Sprintf("lease %s, one schedule every %s (misfire all); leader's connection closed without Close (as SIGKILL looks to the server); %d fires stored, checked for duplicates and gaps in the cadence",
		lease, every, len(planned))
	if dups > 0 || missing > 0 {
		res.Error = fmt.Sprintf("fire stream: %d duplicates, %d missing occurrences", dups, missing)
	}
	return res, nil
}

// readPlanned returns the Natsched-Planned time of every message stored on
// subject in stream.
func readPlanned(ctx context.Context, js jetstream.JetStream, stream, subject string) ([]time.Time, error) {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return nil, err
	}
	want := int(info.State.Subjects[subject])
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil, err
	}
	var out []time.Time
	deadline := time.Now().Add(30 * time.Second)
	for len(out) < want && time.Now().Before(deadline) {
		batch, err := cons.Fetch(min(want-len(out), 1000), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, err
		}
		for m := range batch.Messages() {
			msg := natsched.Message{Header: nats.Header(m.Headers())}
			out = append(out, msg.Planned())
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, err
		}
	}
	if len(out) < want {
		return nil, fmt.Errorf("read %d of %d messages", len(out), want)
	}
	return out, nil
}

// checkCadence counts duplicate planned times and occurrences missing from
// the cadence first + k*every between the first and the last planned time.
func checkCadence(planned []time.Time, every time.Duration) (dups, missing int) {
	if len(planned) == 0 {
		return 0, 0
	}
	seen := map[int64]bool{}
	first, last := planned[0], planned[0]
	for _, t := range planned {
		if seen[t.UnixNano()] {
			dups++
			continue
		}
		seen[t.UnixNano()] = true
		if t.Before(first) {
			first = t
		}
		if t.After(last) {
			last = t
		}
	}
	for t := first; !t.After(last); t = t.Add(every) {
		if !seen[t.UnixNano()] {
			missing++
		}
	}
	return dups, missing
}
