package bench

import (
	"fmt"
	"strings"
	"time"
)

// sustainedWindow is the span of planned time each p99 of sustained
// covers.
const sustainedWindow = 5 * time.Second

// fillSustained reports a sustained run: fires/s between the first and
// the last fire, the p99 lateness of each window of planned time, and
// whether lateness stayed bounded: the last window's p99 within twice the
// first's plus 50 ms. A scheduler that keeps up has a flat series; one
// that cannot has lateness growing with every window.
func fillSustained(res *Result, as []arrival, t0 time.Time) {
	first, last := firstLast(as)
	if len(as) > 1 && last.After(first) {
		res.PerSecond = f64(round(float64(len(as)-1)/last.Sub(first).Seconds(), 0))
	}
	var windows [][]time.Duration
	for _, a := range as {
		w := max(int(a.planned.Sub(t0)/sustainedWindow), 0)
		for len(windows) <= w {
			windows = append(windows, nil)
		}
		windows[w] = append(windows[w], a.at.Sub(a.planned))
	}
	var parts []string
	for _, ds := range windows {
		l := latenessOf(ds)
		if l == nil {
			continue
		}
		res.WindowP99Ms = append(res.WindowP99Ms, l.P99)
		parts = append(parts, fmt.Sprintf("%.1f", l.P99))
	}
	if n := len(res.WindowP99Ms); n > 0 {
		bounded := res.WindowP99Ms[n-1] <= 2*res.WindowP99Ms[0]+50
		res.Bounded = &bounded
		verdict := "lateness grows"
		if bounded {
			verdict = "lateness bounded"
		}
		res.Notes = joinNote(res.Notes, fmt.Sprintf("%s; p99 ms by %s of planned time: %s", verdict, sustainedWindow, strings.Join(parts, ", ")))
	}
}
