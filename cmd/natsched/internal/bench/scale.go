package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	nsjs "github.com/natsched/natsched/jetstream"
)

// scale runs a burst of --scale-n schedules through 1, 2 and 3 instances
// of --scale-partitions partitions, each instance on its own connection to
// the same NATS system, and reports fires/s and each instance's share
// (occurrences it fired and recorded) for each count.
func (b *bench) scale(ctx context.Context) ([]Result, error) {
	var out []Result
	for k := 1; k <= 3; k++ {
		r, err := b.scaleWith(ctx, k)
		if err != nil {
			r.Error = err.Error()
		}
		out = append(out, r)
	}
	return out, nil
}

func (b *bench) scaleWith(ctx context.Context, k int) (Result, error) {
	n, parts := b.cfg.scaleN, b.cfg.scalePartitions
	res := Result{Name: WScale, System: SystemNatsched, N: n, Instances: k}
	p := b.prefix(fmt.Sprintf("%s%d", WScale, k))
	defer b.cleanup(p)
	var insts []*instance
	defer func() {
		for _, in := range insts {
			in.stop()
		}
	}()
	for i := range k {
		in, err := b.startInstance(ctx, p, fmt.Sprintf("%s-%c", p, 'a'+i), nsjs.WithPartitions(parts))
		if err != nil {
			return res, err
		}
		insts = append(insts, in)
	}
	// Every partition held, none by an instance with more than
	// ceil(parts/k).
	spread := func() bool {
		held, most := 0, 0
		for _, in := range insts {
			st, err := in.s.Status(ctx)
			if err != nil {
				return false
			}
			held += len(st.HeldPartitions)
			most = max(most, len(st.HeldPartitions))
		}
		return held == parts && most <= (parts+k-1)/k
	}
	if err := waitUntil(ctx, 30*time.Second, 10*time.Millisecond, spread); err != nil {
		return res, fmt.Errorf("the %d partitions did not spread over %d instances: %w", parts, k, err)
	}

	subject := p + ".fire.bench"
	obs := natschedObserver(n)
	snc, err := b.connect("subscriber")
	if err != nil {
		return res, err
	}
	defer snc.Close()
	stopObs, err := subscribeCore(snc, subject, obs)
	if err != nil {
		return res, err
	}
	defer stopObs()

	t0 := time.Now().Add(bulkLeadTime(n))
	id := func(i int) string { return fmt.Sprintf("bench.%s.%07d", WScale, i) }
	if _, err := b.loadBucket(ctx, p, n, id, subject, func(int) time.Time { return t0 }, nil); err != nil {
		return res, fmt.Errorf("create: %w", err)
	}
	var note string
	for _, in := range insts {
		if err := in.pendingAtLeast(ctx, n, max(time.Until(t0), 0)); err != nil {
			note = "an instance had not indexed every schedule by the due time"
		}
	}
	if late := time.Since(t0); late > 0 {
		note = joinNote(note, fmt.Sprintf("setup overran the due time by %s", late.Round(time.Millisecond)))
	}
	stop := b.ticker(2*time.Second, func() { b.progressf("%s x%d: %d/%d fired", WScale, k, obs.count(), n) })
	got, err := obs.wait(ctx, t0.Add(fireWait(n)))
	stop()
	if err != nil {
		return res, err
	}
	fillFires(&res, WBurst, obs.snapshot(), t0)
	// An instance counts a fire once its state is recorded, just after the
	// subscriber may have seen it.
	fired := make([]uint64, len(insts))
	recorded := func() bool {
		var total uint64
		for i, in := range insts {
			st, err := in.s.Status(ctx)
			if err != nil {
				return false
			}
			fired[i] = st.Fired
			total += st.Fired
		}
		return total >= uint64(got)
	}
	if err := waitUntil(ctx, 10*time.Second, 10*time.Millisecond, recorded); err != nil {
		note = joinNote(note, "not every fire was recorded 10s after the last arrived")
	}
	var shares []string
	for i, in := range insts {
		st, err := in.s.Status(ctx)
		if err != nil {
			return res, err
		}
		share := float64(fired[i]) / float64(n)
		res.Shares = append(res.Shares, round(share, 3))
		shares = append(shares, fmt.Sprintf("%.1f%% (partitions %v)", 100*share, st.HeldPartitions))
	}
	res.Notes = joinNote(note, fmt.Sprintf("%d instance(s), %d partitions, one burst of %d due at once; shares %s",
		k, parts, n, strings.Join(shares, ", ")))
	if got < n {
		res.Error = fmt.Sprintf("only %d of %d fires arrived", got, n)
	}
	return res, nil
}
