package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what one run prints: with --json, as one JSON object.
type Report struct {
	Workloads   []Result `json:"workloads"`
	Env         Env      `json:"env"`
	WallSeconds float64  `json:"wall_seconds"`
}

// Env describes where the numbers come from.
type Env struct {
	Server     string `json:"server"`
	GoVersion  string `json:"go_version"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	// Observe is how natsched fires were observed: core or consumer.
	Observe string `json:"observe"`
	// LoadAvg is the machine's 1/5/15-minute load average (from
	// /proc/loadavg where there is one) before and after the run: other
	// processes on the machine skew every figure.
	LoadAvgBefore string `json:"loadavg_before,omitempty"`
	LoadAvgAfter  string `json:"loadavg_after,omitempty"`
}

// Lateness is a distribution in milliseconds.
type Lateness struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Result is one row: one workload on one system. Optional measurements are
// omitted when they do not apply.
type Result struct {
	Name   string `json:"name"`
	System string `json:"system"`
	// N is the number of schedules (or messages) the workload used.
	N int `json:"n,omitempty"`
	// LatenessMs: received by the subscriber minus planned time.
	LatenessMs *Lateness `json:"lateness_ms,omitempty"`
	// PerSecond: fires/s (burst, sustained between the first and the last
	// fire), creates/s (create), messages/s the scheduler's connection sent
	// (idle), PubAcked messages/s (raw).
	PerSecond *float64 `json:"per_second,omitempty"`
	// BytesPerSchedule: heap per pending schedule retained by the
	// scheduler side of the process (pending).
	BytesPerSchedule *float64 `json:"bytes_per_schedule,omitempty"`

	// burst: lateness of the first and the last fire.
	FirstMs *float64 `json:"first_ms,omitempty"`
	LastMs  *float64 `json:"last_ms,omitempty"`
	// burst: fires per second from the due instant to the last fire.
	PerSecondFromDue *float64 `json:"per_second_from_due,omitempty"`
	// sustained: p99 lateness of each window of planned time, and
	// whether lateness stayed bounded (see fillSustained).
	WindowP99Ms []float64 `json:"window_p99_ms,omitempty"`
	Bounded     *bool     `json:"bounded,omitempty"`
	// scale: instances firing, and each one's share of the fires.
	Instances int       `json:"instances,omitempty"`
	Shares    []float64 `json:"shares,omitempty"`
	// create: request latency.
	LatencyMs *Lateness `json:"latency_ms,omitempty"`
	// pending.
	HeapDeltaBytesPerSchedule   *float64 `json:"heap_delta_bytes_per_schedule,omitempty"`
	ProcessHeapBytesPerSchedule *float64 `json:"process_heap_bytes_per_schedule,omitempty"`
	RebuildSeconds              *float64 `json:"rebuild_s,omitempty"`
	SentinelSeconds             *float64 `json:"sentinel_s,omitempty"`
	LoadPerSecond               *float64 `json:"load_per_second,omitempty"`
	// failover.
	GapMs      *float64 `json:"gap_ms,omitempty"`
	TakeoverMs *float64 `json:"takeover_ms,omitempty"`
	Duplicates *int     `json:"duplicates,omitempty"`
	Missing    *int     `json:"missing,omitempty"`
	// idle.
	InPerSecond        *float64 `json:"in_per_second,omitempty"`
	WildcardPerSecond  *float64 `json:"wildcard_per_second,omitempty"`
	ServerInPerSecond  *float64 `json:"server_in_per_second,omitempty"`
	ServerOutPerSecond *float64 `json:"server_out_per_second,omitempty"`
	CPUPercent         *float64 `json:"cpu_percent,omitempty"`

	// VsNative: natsched/native for the measurements both have. Lateness
	// ratios (p50, p99, max, first_ms) read lower-is-better for natsched;
	// per_second reads higher-is-better.
	VsNative map[string]float64 `json:"vs_native,omitempty"`

	Notes   string  `json:"notes,omitempty"`
	Error   string  `json:"error,omitempty"`
	Seconds float64 `json:"seconds"` // wall time of the workload
}

func f64(v float64) *float64 { return &v }
func intp(v int) *int        { return &v }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 1) of
// sorted values; 0 when there are none.
func percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(n))) - 1
	return sorted[min(max(i, 0), n-1)]
}

// latenessOf summarises durations in milliseconds.
func latenessOf(ds []time.Duration) *Lateness {
	if len(ds) == 0 {
		return nil
	}
	ms := make([]float64, len(ds))
	for i, d := range ds {
		ms[i] = float64(d) / float64(time.Millisecond)
	}
	slices.Sort(ms)
	return &Lateness{
		P50: round(percentile(ms, 0.50), 3), P90: round(percentile(ms, 0.90), 3),
		P99: round(percentile(ms, 0.99), 3), Max: round(ms[len(ms)-1], 3),
	}
}

// ratio is a/b, rounded; 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return round(a/b, 3)
}

// compare fills VsNative of every natsched row that has a native row of
// the same name.
func compare(rs []Result) {
	native := map[string]*Result{}
	for i := range rs {
		if rs[i].System == SystemNative && rs[i].Error == "" {
			native[rs[i].Name] = &rs[i]
		}
	}
	for i := range rs {
		r := &rs[i]
		nr := native[r.Name]
		if r.System != SystemNatsched || nr == nil || r.Error != "" {
			continue
		}
		v := map[string]float64{}
		if r.LatenessMs != nil && nr.LatenessMs != nil {
			v["p50"] = ratio(r.LatenessMs.P50, nr.LatenessMs.P50)
			v["p99"] = ratio(r.LatenessMs.P99, nr.LatenessMs.P99)
			v["max"] = ratio(r.LatenessMs.Max, nr.LatenessMs.Max)
		}
		if r.FirstMs != nil && nr.FirstMs != nil {
			v["first_ms"] = ratio(*r.FirstMs, *nr.FirstMs)
		}
		if r.PerSecond != nil && nr.PerSecond != nil {
			v["per_second"] = ratio(*r.PerSecond, *nr.PerSecond)
		}
		if len(v) > 0 {
			r.VsNative = v
		}
	}
}

func writeJSON(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// fmtNum renders a number for the table: "-" when absent.
func fmtNum(p *float64, digits int) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p, 'f', digits, 64)
}

func fmtMs(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func fmtRate(p *float64) string {
	if p == nil {
		return "-"
	}
	v := *p
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// vsNative renders the ratio column: which measurement, the ratio, and
// which way it reads.
func vsNative(r *Result) string {
	if len(r.VsNative) == 0 {
		return ""
	}
	var parts []string
	if v, ok := r.VsNative["per_second"]; ok {
		parts = append(parts, fmt.Sprintf("rate %.2fx (higher=better)", v))
	}
	if v, ok := r.VsNative["first_ms"]; ok {
		parts = append(parts, fmt.Sprintf("first %.3fx (lower=better)", v))
	}
	if v, ok := r.VsNative["p99"]; ok {
		parts = append(parts, fmt.Sprintf("p99 %.3fx (lower=better)", v))
	}
	return strings.Join(parts, ", ")
}

// notes renders the row's extra measurements and notes.
func notes(r *Result) string {
	var parts []string
	add := func(format string, args ...any) { parts = append(parts, fmt.Sprintf(format, args...)) }
	if r.N > 0 {
		add("n=%d", r.N)
	}
	if r.FirstMs != nil {
		add("first %s ms", fmtMs(*r.FirstMs))
	}
	if r.LastMs != nil {
		add("last %s ms", fmtMs(*r.LastMs))
	}
	if r.PerSecondFromDue != nil {
		add("%s/s from due", fmtRate(r.PerSecondFromDue))
	}
	if l := r.LatencyMs; l != nil {
		add("latency p50 %s p99 %s ms", fmtMs(l.P50), fmtMs(l.P99))
	}
	if r.RebuildSeconds != nil {
		add("rebuild %.2f s", *r.RebuildSeconds)
	}
	if r.SentinelSeconds != nil {
		add("sentinel fired %.2f s after Start", *r.SentinelSeconds)
	}
	if r.HeapDeltaBytesPerSchedule != nil {
		add("heap delta %s B/sched", fmtNum(r.HeapDeltaBytesPerSchedule, 0))
	}
	if r.ProcessHeapBytesPerSchedule != nil {
		add("process heap %s B/sched", fmtNum(r.ProcessHeapBytesPerSchedule, 0))
	}
	if r.LoadPerSecond != nil {
		add("loaded at %s/s", fmtRate(r.LoadPerSecond))
	}
	if r.GapMs != nil {
		add("gap %s ms", fmtMs(*r.GapMs))
	}
	if r.TakeoverMs != nil {
		add("kill->next fire %s ms", fmtMs(*r.TakeoverMs))
	}
	if r.Duplicates != nil {
		add("duplicates %d", *r.Duplicates)
	}
	if r.Missing != nil {
		add("missing %d", *r.Missing)
	}
	if r.InPerSecond != nil {
		add("in %s/s", fmtRate(r.InPerSecond))
	}
	if r.WildcardPerSecond != nil {
		add("on '>' %s/s", fmtRate(r.WildcardPerSecond))
	}
	if r.ServerInPerSecond != nil {
		add("server in %s/s out %s/s", fmtRate(r.ServerInPerSecond), fmtRate(r.ServerOutPerSecond))
	}
	if r.CPUPercent != nil {
		add("cpu %.1f%%", *r.CPUPercent)
	}
	if r.Notes != "" {
		parts = append(parts, r.Notes)
	}
	if r.Error != "" {
		parts = append(parts, "ERROR: "+r.Error)
	}
	return strings.Join(parts, "; ")
}

// writeTable prints one row per workload per system.
func writeTable(w io.Writer, rep *Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\tsystem\tper_second\tp50_ms\tp90_ms\tp99_ms\tmax_ms\tbytes/sched\tvs native (natsched/native)\tnotes")
	for i := range rep.Workloads {
		r := &rep.Workloads[i]
		p50, p90, p99, mx := "-", "-", "-", "-"
		if l := r.LatenessMs; l != nil {
			p50, p90, p99, mx = fmtMs(l.P50), fmtMs(l.P90), fmtMs(l.P99), fmtMs(l.Max)
		}
		vs := vsNative(r)
		if vs == "" {
			vs = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.System, fmtRate(r.PerSecond),
			p50, p90, p99, mx, fmtNum(r.BytesPerSchedule, 0), vs, notes(r))
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%s; go %s, %d CPUs (GOMAXPROCS %d); natsched fires observed by %s; wall time %.1f s\n",
		rep.Env.Server, rep.Env.GoVersion, rep.Env.CPUs, rep.Env.GOMAXPROCS, observedBy(rep.Env.Observe), rep.WallSeconds)
	if rep.Env.LoadAvgBefore != "" {
		fmt.Fprintf(w, "load average before %s, after %s (other processes skew the figures)\n", rep.Env.LoadAvgBefore, rep.Env.LoadAvgAfter)
	}
	fmt.Fprintln(w, "lateness = received by a subscriber in this process minus planned time; native fires are observed by an ordered JetStream consumer (a core subscription does not see them)")
}

func observedBy(mode string) string {
	if mode == observeConsumer {
		return "an ordered JetStream consumer"
	}
	return "a core subscription"
}
