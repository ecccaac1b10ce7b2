package bench

import (
	"testing"
	"time"
)

func TestFillSustainedTellsBoundedFromGrowing(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	run := func(late func(i int) time.Duration) Result {
		var as []arrival
		for i := 0; i < 1000; i++ {
			p := t0.Add(time.Duration(i) * 20 * time.Millisecond) // 20 s
			as = append(as, arrival{planned: p, at: p.Add(late(i))})
		}
		var r Result
		fillSustained(&r, as, t0)
		return r
	}
	flat := run(func(int) time.Duration { return 3 * time.Millisecond })
	if flat.Bounded == nil || !*flat.Bounded || len(flat.WindowP99Ms) != 4 {
		t.Fatalf("flat: bounded %v windows %v", flat.Bounded, flat.WindowP99Ms)
	}
	if flat.PerSecond == nil || *flat.PerSecond < 49 || *flat.PerSecond > 51 {
		t.Fatalf("flat: per second %v", flat.PerSecond)
	}
	growing := run(func(i int) time.Duration { return time.Duration(i) * time.Millisecond })
	if growing.Bounded == nil || *growing.Bounded {
		t.Fatalf("growing: bounded %v windows %v", growing.Bounded, growing.WindowP99Ms)
	}
}
