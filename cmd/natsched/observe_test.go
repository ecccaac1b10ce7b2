package main

import (
	"bytes"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched/natschedtest"
)

var httpLine = regexp.MustCompile(`http=(http://127\.0\.0\.1:\d+)`)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestDaemonHTTPAndStatusAll: `server --http` serves /healthz and
// /metrics; `status --all` shows one row per instance.
func TestDaemonHTTPAndStatusAll(t *testing.T) {
	t.Parallel()
	d := startServer(t, "--store", t.TempDir(), "--listen", "127.0.0.1:0", "--lease", "1s", "--name", "obs-a",
		"--http", "127.0.0.1:0")
	m := httpLine.FindStringSubmatch(d.logs.String())
	require.NotNil(t, m, "the ready line names the HTTP address:\n%s", d.logs.String())
	web := m[1]
	natschedtest.Eventually(t, readyWait, func() bool {
		code, _ := get(t, web+"/healthz")
		return code == 200
	}, "healthy")
	code, body := get(t, web+"/healthz")
	require.Equal(t, 200, code)
	require.JSONEq(t, `{"status":"ok"}`, body)

	// Durations take days on the command line too.
	ok(t, "add", "obs.daily", "--subject", "natsched.fire.obs", "--every", "1d", "-s", d.url)
	require.Contains(t, ok(t, "get", "obs.daily", "--json", "-s", d.url), `"every":"24h0m0s"`)

	fired := subscribe(t, d.url, "natsched.fire.obs")
	ok(t, "add", "obs.x", "--subject", "natsched.fire.obs", "--in", "10ms", "-s", d.url)
	receive(t, fired, "the fire")
	natschedtest.Eventually(t, fireWait, func() bool {
		_, body = get(t, web+"/metrics")
		return strings.Contains(body, `natsched_fires_total{result="ok"} 1`)
	}, "the fire counted")
	for _, want := range []string{"natsched_fire_lateness_seconds_bucket", `natsched_api_requests_total{code="200",verb="put"} 2`,
		"natsched_leader 1", "go_goroutines", "process_resident_memory_bytes"} {
		require.Contains(t, body, want)
	}

	// A second instance joins the first's NATS server.
	startServer(t, "--nats", d.url, "--name", "obs-b", "--lease", "1s")
	var out string
	natschedtest.Eventually(t, readyWait, func() bool {
		out = ok(t, "status", "--all", "-s", d.url)
		return strings.Contains(out, "obs-a") && strings.Contains(out, "obs-b")
	}, "both instances answer status --all")
	require.Regexp(t, `(?m)^INSTANCE\s+LEADING`, out)
	require.Len(t, strings.Split(strings.TrimSpace(out), "\n"), 3, out)
	jsonOut := ok(t, "status", "--all", "--json", "-s", d.url)
	require.Len(t, bytes.Split(bytes.TrimSpace([]byte(jsonOut)), []byte("\n")), 2, jsonOut)
}
