package integration_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/jetstream"
	"github.com/natsched/natsched/natschedtest"
)

// scrape fetches url and returns the body and status code.
func scrape(t *testing.T, url string) (string, int) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b), resp.StatusCode
}

// metric returns the value of the sample whose name and labels (in
// exposition order, e.g. `natsched_fires_total{result="ok"}`) start line.
func metric(t *testing.T, text, sample string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, sample+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, sample)), 64)
			require.NoError(t, err, line)
			return v
		}
	}
	return 0
}

func TestMetricsAndHealth(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	router := natsched.NewRouter(nil)
	require.NoError(t, router.HandleSubject("natsched.fire.obs.fail", func(context.Context, *natsched.Message) error {
		return errors.New("obs: this handler fails")
	}))
	srv := natschedtest.RunServer(t)
	s, err := jetstream.New(srv.JetStream(t), jetstream.WithName("obs"), jetstream.WithLeaseTTL(time.Second),
		jetstream.WithRegisterer(reg), jetstream.WithRouter(router, jetstream.ConsumerConfig{
			Group: "obs", MaxDeliver: 2, Backoff: []time.Duration{10 * time.Millisecond}}))
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	web := httptest.NewServer(jetstream.HTTPHandler(s, reg))
	t.Cleanup(web.Close)
	nc := srv.Conn(t)
	jsc, err := js.New(nc)
	require.NoError(t, err)
	d := &daemon{srv: srv, nc: nc, js: jsc, name: "obs"}
	natschedtest.Eventually(t, fireTimeout, func() bool {
		_, code := scrape(t, web.URL+"/healthz")
		return code == 200
	}, "healthy")
	body, _ := scrape(t, web.URL+"/healthz")
	require.JSONEq(t, `{"status":"ok"}`, body)

	// Real fires, API calls (a 404 among them), an intake reject, a
	// handler failure.
	fired := subscribe(t, nc, "natsched.fire.obs.ok")
	for i := range 3 {
		ok(t, d.api(t, "put", "obs.ok."+strconv.Itoa(i), map[string]any{"subject": "natsched.fire.obs.ok", "in": "10ms"}))
	}
	ok(t, d.api(t, "put", "obs.fail", map[string]any{"subject": "natsched.fire.obs.fail", "in": "10ms"}))
	for range 3 {
		next(t, fired, "a fire")
	}
	apiError(t, d.api(t, "get", "obs.missing", nil), 404)
	apiError(t, d.api(t, "put", "obs.bad", map[string]any{"subject": "natsched.fire.obs", "cronn": "x"}), 400)
	d.publishIntake(t, "obs.rejected", nats.Header{"Natsched-Schedule": {"@in 1s"}}, "")
	d.publishIntake(t, "obs.accepted", nats.Header{"Natsched-Schedule": {"@in 1h"}, "Natsched-Target": {"natsched.fire.obs"}}, "")

	var text string
	natschedtest.Eventually(t, fireTimeout, func() bool {
		text, _ = scrape(t, web.URL+"/metrics")
		return metric(t, text, `natsched_fires_total{result="ok"}`) >= 4 &&
			metric(t, text, `natsched_handler_messages_total{group="obs",result="dead"}`) >= 1 &&
			metric(t, text, `natsched_intake_messages_total{result="rejected"}`) >= 1 &&
			metric(t, text, `natsched_intake_messages_total{result="accepted"}`) >= 1
	}, "metrics after fires, intake and a failing handler")
	require.GreaterOrEqual(t, metric(t, text, `natsched_fire_lateness_seconds_count`), 4.0)
	require.Equal(t, 1.0, metric(t, text, `natsched_api_requests_total{code="404",verb="get"}`))
	require.Equal(t, 1.0, metric(t, text, `natsched_api_requests_total{code="400",verb="put"}`))
	require.GreaterOrEqual(t, metric(t, text, `natsched_api_requests_total{code="200",verb="put"}`), 4.0)
	require.GreaterOrEqual(t, metric(t, text, `natsched_api_request_duration_seconds_count{verb="put"}`), 5.0)
	require.GreaterOrEqual(t, metric(t, text, `natsched_handler_messages_total{group="obs",result="retry"}`), 1.0)
	require.Equal(t, 1.0, metric(t, text, `natsched_leader`))
	require.GreaterOrEqual(t, metric(t, text, `natsched_lease_changes_total`), 1.0)
	require.GreaterOrEqual(t, metric(t, text, `natsched_schedules{status="done"}`), 4.0)
	require.GreaterOrEqual(t, metric(t, text, `natsched_schedules{status="active"}`), 1.0)
	require.Contains(t, text, "natsched_clock_offset_seconds ")
	require.Contains(t, text, "go_goroutines ")
	require.Contains(t, text, "process_cpu_seconds_total ")

	// micro's own stats tell the truth: the 404 and the 400 are errors of
	// their endpoints, and processing time is measured.
	m, err := nc.Request("$SRV.STATS.natsched", nil, reqTimeout)
	require.NoError(t, err)
	var stats struct {
		Endpoints []struct {
			Name           string `json:"name"`
			NumRequests    int    `json:"num_requests"`
			NumErrors      int    `json:"num_errors"`
			ProcessingTime int64  `json:"processing_time"`
		} `json:"endpoints"`
	}
	require.NoError(t, json.Unmarshal(m.Data, &stats))
	byName := map[string][3]int64{}
	for _, e := range stats.Endpoints {
		v := byName[e.Name]
		byName[e.Name] = [3]int64{v[0] + int64(e.NumRequests), v[1] + int64(e.NumErrors), v[2] + e.ProcessingTime}
	}
	require.EqualValues(t, 1, byName["get"][1], "the 404 counts as an error of get")
	require.EqualValues(t, 1, byName["put"][1], "the 400 counts as an error of put")
	require.GreaterOrEqual(t, byName["put"][0], int64(5))
	require.Greater(t, time.Duration(byName["put"][2]/byName["put"][0]), 20*time.Microsecond,
		"average processing time includes the bucket write, not just a hand-off")

	// status reports version, started and clock offset.
	st := d.status(t)
	require.NotEmpty(t, str(t, st, "version"))
	timeField(t, st, "started")
	require.Contains(t, st, "clock_offset")

	// Health follows the connection.
	srv.Shutdown()
	natschedtest.Eventually(t, fireTimeout, func() bool {
		_, code := scrape(t, web.URL+"/healthz")
		return code == 503
	}, "unhealthy while NATS is down")
	body, _ = scrape(t, web.URL+"/healthz")
	require.Contains(t, body, `"status":"unavailable"`)
	require.Contains(t, body, "not connected")
	srv.Restart(t)
	natschedtest.Eventually(t, 3*fireTimeout, func() bool {
		_, code := scrape(t, web.URL+"/healthz")
		return code == 200
	}, "healthy again after the reconnect")
}

// TestTraceContextThroughIntake: an intake message's traceparent is stored
// with the schedule, not carried as a header, and the fired message is a
// new span of that trace.
func TestTraceContextThroughIntake(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "trace-intake", nil)
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	fired := subscribe(t, d.nc, "natsched.fire.traced")
	d.publishIntake(t, "traced.1", nats.Header{"Natsched-Schedule": {"@in 10ms"}, "Natsched-Target": {"natsched.fire.traced"},
		"traceparent": {parent}, "tracestate": {"v=1"}, "X-Other": {"kept"}}, "x")
	m := next(t, fired, "the fire")
	traceID, spanID, _, okTP := natsched.ParseTraceParent(m.Header.Get("traceparent"))
	require.True(t, okTP, "%v", m.Header)
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", traceID, "the creator's trace")
	require.NotEqual(t, "00f067aa0ba902b7", spanID, "a span of its own")
	require.Equal(t, "v=1", m.Header.Get("tracestate"))
	require.Equal(t, "kept", m.Header.Get("X-Other"))
	got := ok(t, d.api(t, "get", "traced.1", nil))
	require.Equal(t, parent, str(t, got, "traceparent"))
	require.Equal(t, map[string]any{"X-Other": []any{"kept"}}, got["header"], "traceparent is not a header of the schedule")
}
