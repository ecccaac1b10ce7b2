package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/natschedtest"
	"github.com/stretchr/testify/require"
)

func TestParseArgsDefaults(t *testing.T) {
	c, err := parseArgs(nil)
	require.NoError(t, err)
	assert.Equal(t, defaultWorkloads, c.workloads)
	assert.False(t, c.compareNative)
	assert.False(t, c.raw)
	assert.True(t, c.progress)
	assert.Equal(t, 1000, c.spreadN)
	assert.Equal(t, 10*time.Second, c.spreadOver)
	assert.Equal(t, 1000, c.instantN)
	assert.Equal(t, 100_000, c.burstN)
	assert.Equal(t, 20_000, c.createN)
	assert.Equal(t, 32, c.createConc)
	assert.Equal(t, 1_000_000, c.pendingN)
	assert.Equal(t, 10_000, c.idleN)
	assert.Equal(t, 10*time.Second, c.idleFor)
	assert.Equal(t, 3*time.Second, c.failoverLease)
	assert.Equal(t, loadAsync, c.pendingLoad)
	assert.Equal(t, observeCore, c.observe)
}

func TestParseArgsFlags(t *testing.T) {
	c, err := parseArgs([]string{"--workloads", "burst, spread,burst", "--compare-native", "--raw", "--json",
		"--progress=false", "--spread-n", "50", "--spread-over=1s", "--burst-n", "7", "--nats", "nats://a:4222"})
	require.NoError(t, err)
	// Canonical order, deduplicated, raw added by --raw.
	assert.Equal(t, []string{WSpread, WBurst, WRaw}, c.workloads)
	assert.True(t, c.compareNative && c.raw && c.jsonOut)
	assert.False(t, c.progress)
	assert.Equal(t, 50, c.spreadN)
	assert.Equal(t, time.Second, c.spreadOver)
	assert.Equal(t, 7, c.burstN)
	url, _ := c.conn.Server()
	assert.Equal(t, "nats://a:4222", url)

	c, err = parseArgs([]string{"--workloads", "all,raw"})
	require.NoError(t, err)
	assert.Equal(t, append(append([]string{}, defaultWorkloads...), WRaw), c.workloads)
}

func TestMainUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--no-such-flag"},
		{"extra"},
		{"--workloads", "spread,bogus"},
		{"--workloads", ","},
		{"--spread-n", "0"},
		{"--spread-n", "x"},
		{"--spread-over", "-1s"},
		{"--idle-for", "0s"},
		{"--create-concurrency", "0"},
		{"--failover-lease", "100ms"},
		{"--pending-load", "fast"},
		{"--observe", "telepathy"},
		{"--scale-n", "0"},
		{"--scale-partitions", "0"},
		{"--scale-partitions", "257"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Main(context.Background(), args, &out, &errOut)
			assert.Equal(t, ExitUsage, code)
			assert.Empty(t, out.String())
			assert.Contains(t, errOut.String(), "natsched bench: ")
			assert.Contains(t, errOut.String(), "Run 'natsched bench -h' for usage.")
		})
	}
}

func TestMainHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		var out, errOut bytes.Buffer
		require.Equal(t, ExitOK, Main(context.Background(), []string{arg}, &out, &errOut))
		assert.Contains(t, out.String(), "Usage: natsched bench")
		assert.Contains(t, out.String(), "--compare-native")
		assert.Contains(t, out.String(), "--pending-n")
		assert.Empty(t, errOut.String())
	}
}

func TestMainUnreachableServer(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Main(context.Background(), []string{"--nats", "nats://127.0.0.1:1", "--workloads", "spread"}, &out, &errOut)
	assert.Equal(t, ExitFailure, code)
	assert.Contains(t, errOut.String(), "connect")
}

func TestPercentile(t *testing.T) {
	assert.Equal(t, 0.0, percentile(nil, 0.5))
	one := []float64{7}
	for _, p := range []float64{0.01, 0.5, 0.99, 1} {
		assert.Equal(t, 7.0, percentile(one, p))
	}
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i + 1)
	}
	// Nearest rank: the smallest value with at least p of the values at or below it.
	assert.Equal(t, 50.0, percentile(hundred, 0.50))
	assert.Equal(t, 90.0, percentile(hundred, 0.90))
	assert.Equal(t, 99.0, percentile(hundred, 0.99))
	assert.Equal(t, 100.0, percentile(hundred, 1))
	assert.Equal(t, 1.0, percentile(hundred, 0.001))
	ten := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	assert.Equal(t, 5.0, percentile(ten, 0.5))
	assert.Equal(t, 10.0, percentile(ten, 0.99))

	l := latenessOf([]time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond, 1500 * time.Microsecond})
	require.NotNil(t, l)
	assert.Equal(t, Lateness{P50: 1.5, P90: 3, P99: 3, Max: 3}, *l)
	assert.Nil(t, latenessOf(nil))
}

func TestCheckCadence(t *testing.T) {
	t0 := time.Unix(1000, 0)
	every := 50 * time.Millisecond
	at := func(k int) time.Time { return t0.Add(time.Duration(k) * every) }
	dups, missing := checkCadence([]time.Time{at(0), at(1), at(2), at(3)}, every)
	assert.Equal(t, 0, dups)
	assert.Equal(t, 0, missing)
	dups, missing = checkCadence([]time.Time{at(0), at(1), at(1), at(4), at(3)}, every)
	assert.Equal(t, 1, dups)
	assert.Equal(t, 1, missing) // at(2)
}

func sampleReport() *Report {
	rs := []Result{
		{Name: WSpread, System: SystemNatsched, N: 1000, LatenessMs: &Lateness{P50: 1, P90: 2, P99: 4, Max: 5}, Seconds: 12},
		{Name: WSpread, System: SystemNative, N: 1000, LatenessMs: &Lateness{P50: 100, P90: 200, P99: 200, Max: 250}},
		{Name: WBurst, System: SystemNatsched, N: 100000, LatenessMs: &Lateness{P50: 900, P90: 1500, P99: 1700, Max: 1800},
			PerSecond: f64(60000), FirstMs: f64(10), LastMs: f64(1800)},
		{Name: WBurst, System: SystemNative, N: 100000, LatenessMs: &Lateness{P50: 1500, P90: 2600, P99: 2900, Max: 3000},
			PerSecond: f64(40000), FirstMs: f64(400), LastMs: f64(3000)},
		{Name: WPending, System: SystemNatsched, N: 1000000, BytesPerSchedule: f64(180), RebuildSeconds: f64(4.2),
			ProcessHeapBytesPerSchedule: f64(500)},
		{Name: WFailover, System: SystemNatsched, GapMs: f64(3400), Duplicates: intp(0), Missing: intp(0)},
		{Name: WIdle, System: SystemNatsched, PerSecond: f64(1.33), CPUPercent: f64(0.5)},
		{Name: WRaw, System: SystemRaw, PerSecond: f64(100000)},
		{Name: WCreate, System: SystemNatsched, Error: "boom"},
	}
	compare(rs)
	return &Report{Workloads: rs, Env: Env{Server: "embedded", GoVersion: "go1.26", CPUs: 2, GOMAXPROCS: 2, Observe: observeCore}, WallSeconds: 100}
}

func TestCompare(t *testing.T) {
	rep := sampleReport()
	spread := rep.Workloads[0]
	assert.Equal(t, map[string]float64{"p50": 0.01, "p99": 0.02, "max": 0.02}, spread.VsNative)
	burst := rep.Workloads[2]
	assert.Equal(t, 1.5, burst.VsNative["per_second"])
	assert.Equal(t, 0.025, burst.VsNative["first_ms"])
	assert.Nil(t, rep.Workloads[1].VsNative, "native rows carry no ratio")
	assert.Nil(t, rep.Workloads[4].VsNative, "no native counterpart")
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	writeTable(&buf, sampleReport())
	out := buf.String()
	lines := strings.Split(out, "\n")
	assert.Regexp(t, `^workload\s+system\s+per_second\s+p50_ms\s+p90_ms\s+p99_ms\s+max_ms\s+bytes/sched\s+vs native`, lines[0])
	assert.Regexp(t, `(?m)^spread\s+natsched\s+-\s+1\.00\s+2\.00\s+4\.00\s+5\.00\s+-\s+p99 0\.020x \(lower=better\)`, out)
	assert.Regexp(t, `(?m)^spread\s+native\s+-\s+100\.0\s+200\.0\s+200\.0\s+250\.0`, out)
	assert.Regexp(t, `(?m)^burst\s+natsched\s+60000\s+.*rate 1\.50x \(higher=better\), first 0\.025x \(lower=better\)`, out)
	assert.Regexp(t, `(?m)^pending\s+natsched\s+-\s+-\s+-\s+-\s+-\s+180\s+-\s+n=1000000; rebuild 4\.20 s`, out)
	assert.Regexp(t, `(?m)^failover\s+natsched\s+.*gap 3400 ms; duplicates 0; missing 0`, out)
	assert.Regexp(t, `(?m)^idle\s+natsched\s+1\.33\s+.*cpu 0\.5%`, out)
	assert.Regexp(t, `(?m)^create\s+natsched\s+.*ERROR: boom`, out)
	assert.Contains(t, out, "wall time 100.0 s")
}

func TestWriteJSON(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, writeJSON(&buf, sampleReport()))
	var got struct {
		Workloads []map[string]any `json:"workloads"`
	}
	require.NoError(t, json.Unmarshal(buf.Bytes(), &got))
	require.Len(t, got.Workloads, 9)
	spread := got.Workloads[0]
	assert.Equal(t, "spread", spread["name"])
	assert.Equal(t, "natsched", spread["system"])
	assert.Equal(t, map[string]any{"p50": 1.0, "p90": 2.0, "p99": 4.0, "max": 5.0}, spread["lateness_ms"])
	assert.NotContains(t, spread, "per_second")
	assert.Equal(t, 60000.0, got.Workloads[2]["per_second"])
	assert.Equal(t, 180.0, got.Workloads[4]["bytes_per_schedule"])
	// Zero counts are kept: they are results.
	assert.Equal(t, 0.0, got.Workloads[5]["duplicates"])
	assert.Equal(t, "boom", got.Workloads[8]["error"])
}

// TestEndToEnd runs the fire, create and raw workloads with tiny sizes, with
// native comparison, on an embedded server, and checks the JSON.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and runs workloads")
	}
	srv := natschedtest.RunServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	start := time.Now()
	code := Main(ctx, []string{"--nats", srv.URL(), "--workloads", "spread,instant,burst,create", "--spread-n", "50", "--spread-over", "1s",
		"--instant-n", "50", "--burst-n", "500", "--create-n", "200", "--raw-n", "2000", "--compare-native", "--raw", "--json"},
		&out, &errOut)
	t.Logf("took %s; stderr:\n%s", time.Since(start), errOut.String())
	require.Equal(t, ExitOK, code, "stdout:\n%s", out.String())
	assert.Less(t, time.Since(start), 60*time.Second)

	var rep struct {
		Workloads []Result `json:"workloads"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep), out.String())
	got := map[string]Result{}
	for _, r := range rep.Workloads {
		got[r.Name+"/"+r.System] = r
		assert.Empty(t, r.Error, "%s/%s", r.Name, r.System)
	}
	want := []string{"spread/natsched", "spread/native", "instant/natsched", "instant/native",
		"burst/natsched", "burst/native", "create/natsched", "create-micro/natsched", "create/native",
		"raw/raw", "raw-nomsgid/raw"}
	assert.Len(t, got, len(want))
	for _, k := range want {
		r, ok := got[k]
		if !assert.True(t, ok, "missing %s", k) {
			continue
		}
		switch r.Name {
		case WSpread, WInstant, WBurst:
			if assert.NotNil(t, r.LatenessMs, k) {
				l := r.LatenessMs
				assert.True(t, l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max, "%s: %+v", k, *l)
				assert.Greater(t, l.Max, 0.0, k)
			}
		}
		switch r.Name {
		case WBurst, WCreate, WCreate + "-micro", WRaw, WRaw + "-nomsgid":
			if assert.NotNil(t, r.PerSecond, k) {
				assert.Greater(t, *r.PerSecond, 0.0, k)
			}
		}
	}
	if b := got["burst/natsched"]; assert.NotNil(t, b.FirstMs) && assert.NotNil(t, b.LastMs) {
		assert.LessOrEqual(t, *b.FirstMs, *b.LastMs)
	}
	for _, k := range []string{"spread/natsched", "instant/natsched", "burst/natsched", "create/natsched"} {
		assert.NotEmpty(t, got[k].VsNative, k)
	}

	// Every workload deleted the buckets and streams it created.
	js := srv.JetStream(t)
	var left []string
	for name := range js.StreamNames(ctx).Name() {
		left = append(left, name)
	}
	assert.Empty(t, left, "streams left behind")
}

// TestEmbeddedServer runs one small workload on the embedded server, and
// the table output.
func TestEmbeddedServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code := Main(ctx, []string{"--workloads", "instant", "--instant-n", "20", "--progress=false"}, &out, &errOut)
	require.Equal(t, ExitOK, code, "stderr:\n%s", errOut.String())
	assert.Empty(t, errOut.String())
	assert.Regexp(t, `(?m)^instant\s+natsched\s+-\s+\d`, out.String())
	assert.Contains(t, out.String(), "embedded nats-server")
	assert.NotContains(t, out.String(), "ERROR")
}

// TestRunBench runs the real command when NATSCHED_BENCH_ARGS is set (a
// hook for running `natsched bench` before the CLI wires it in), e.g.
//
//	NATSCHED_BENCH_ARGS="--compare-native --raw" go test -run TestRunBench -timeout 15m -v ./internal/bench
func TestRunBench(t *testing.T) {
	args, ok := os.LookupEnv("NATSCHED_BENCH_ARGS")
	if !ok {
		t.Skip("set NATSCHED_BENCH_ARGS to run natsched bench")
	}
	start := time.Now()
	code := Main(context.Background(), strings.Fields(args), os.Stdout, os.Stderr)
	fmt.Fprintf(os.Stderr, "natsched bench exited %d after %s\n", code, time.Since(start).Round(time.Millisecond))
	require.Equal(t, ExitOK, code)
}

func TestStoredTemplate(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	tmpl, err := newStoredTemplate("p.fire.bench", now)
	require.NoError(t, err)
	for _, at := range []time.Time{
		now.Add(time.Hour), now.Add(time.Hour + 123456789), time.Date(2027, 5, 6, 7, 8, 9, 0, time.UTC),
		time.Date(2027, 5, 6, 7, 8, 9, 100_000_000, time.FixedZone("x", 3600)),
	} {
		for _, gen := range []uint64{1, 42, 1<<64 - 1} {
			want, err := storedSchedule("tenant-a.invoice.0000042", "p.fire.bench", at, now, gen)
			require.NoError(t, err)
			got := tmpl.render(nil, "tenant-a.invoice.0000042", at, gen)
			require.Equal(t, string(want), string(got))
			var s natsched.Schedule
			require.NoError(t, json.Unmarshal(got, &s))
			assert.Equal(t, natsched.StatusActive, s.Status)
			assert.True(t, s.NextRun.Equal(at))
			assert.Equal(t, gen, s.Generation)
		}
	}
}

// TestScaleWorkload: a small scale run on the embedded server reports one
// row per instance count, every fire arrived, and the shares add up to
// the whole with each instance firing some.
func TestScaleWorkload(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	code := Main(context.Background(), []string{"--workloads", "scale", "--scale-n", "600", "--json", "--progress=false"}, &out, &errOut)
	require.Equal(t, ExitOK, code, errOut.String())
	var rep Report
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep))
	require.Len(t, rep.Workloads, 3)
	for k, r := range rep.Workloads {
		require.Equal(t, WScale, r.Name)
		require.Empty(t, r.Error)
		require.Equal(t, k+1, r.Instances)
		require.Len(t, r.Shares, k+1)
		var sum float64
		for _, sh := range r.Shares {
			require.Greater(t, sh, 0.0, "an instance of %d fired nothing: %v", k+1, r.Shares)
			sum += sh
		}
		require.InDelta(t, 1.0, sum, 0.01, "shares %v", r.Shares)
		require.NotNil(t, r.PerSecond)
	}
}
