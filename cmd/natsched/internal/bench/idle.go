package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// idle stores --idle-n schedules due from an hour ahead, lets one leading
// instance index them, and then measures for --idle-for: messages the
// scheduler's connection sent and received (nats.Conn.Stats), every message
// a wildcard subscription on ">" sees (client publishes, requests and
// replies; not the server's internal traffic), the embedded server's
// in/out message counters (Varz), and the process's CPU time
// (getrusage: the embedded server's CPU included).
func (b *bench) idle(ctx context.Context) (Result, error) {
	n, d := b.cfg.idleN, b.cfg.idleFor
	res := Result{Name: WIdle, System: SystemNatsched, N: n}
	p := b.prefix(WIdle)
	defer b.cleanup(p)
	in, err := b.startInstance(ctx, p, p+"-a")
	if err != nil {
		return res, err
	}
	defer in.stop()
	if err := in.leading(ctx, 15*time.Second); err != nil {
		return res, err
	}
	far := time.Now().Add(time.Hour)
	if _, err := b.loadBucket(ctx, p, n, pendingKey, p+".fire.bench",
		func(i int) time.Time { return far.Add(time.Duration(i) * time.Millisecond) }, nil); err != nil {
		return res, fmt.Errorf("store: %w", err)
	}
	if err := in.pendingAtLeast(ctx, n, time.Minute); err != nil {
		return res, err
	}
	if err := sleep(ctx, time.Second); err != nil { // settle
		return res, err
	}
	wnc, err := b.connect("wildcard")
	if err != nil {
		return res, err
	}
	defer wnc.Close()
	var wild atomic.Int64
	sub, err := wnc.Subscribe(">", func(*nats.Msg) { wild.Add(1) })
	if err != nil {
		return res, err
	}
	defer sub.Unsubscribe()
	if err := wnc.Flush(); err != nil {
		return res, err
	}

	s0 := in.nc.Stats()
	var vIn0, vOut0 int64
	if b.srv != nil {
		if v, err := b.srv.Varz(nil); err == nil {
			vIn0, vOut0 = v.InMsgs, v.OutMsgs
		}
	}
	cpu0, cpuOK := processCPU()
	wild.Store(0)
	t0 := time.Now()
	b.progressf("%s: %d pending, measuring for %s", WIdle, n, d)
	if err := sleep(ctx, d); err != nil {
		return res, err
	}
	el := time.Since(t0).Seconds()
	cpu1, _ := processCPU()
	s1 := in.nc.Stats()
	w := wild.Load()
	res.PerSecond = f64(round(float64(s1.OutMsgs-s0.OutMsgs)/el, 2))
	res.InPerSecond = f64(round(float64(s1.InMsgs-s0.InMsgs)/el, 2))
	res.WildcardPerSecond = f64(round(float64(w)/el, 2))
	if b.srv != nil {
		if v, err := b.srv.Varz(nil); err == nil {
			res.ServerInPerSecond = f64(round(float64(v.InMsgs-vIn0)/el, 2))
			res.ServerOutPerSecond = f64(round(float64(v.OutMsgs-vOut0)/el, 2))
		}
	}
	if cpuOK {
		res.CPUPercent = f64(round(100*(cpu1-cpu0).Seconds()/el, 2))
	}
	res.Notes = "per_second = messages the scheduler's connection sent; in = it received; " +
		"cpu = whole process (embedded server included)"
	if b.srv != nil {
		res.Notes += "; server in/out = Varz counters (the wildcard subscriber's deliveries count as out)"
	}
	return res, nil
}
