package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/natschedtest"
)

// TestServerInProcess runs `server` inside the test process, so that the
// race detector sees the daemon and the client commands together, and
// stops it by cancelling its context as a signal would.
func TestServerInProcess(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &natschedtest.Buffer{}
	exit := make(chan int, 1)
	done := make(chan struct{})
	store := t.TempDir()
	go func() {
		defer close(done)
		e := &env{stdin: bytes.NewReader(nil), stdout: logs, stderr: logs, getenv: func(string) string { return "" }}
		exit <- run(ctx, e, []string{"server", "--store", store, "--listen", "127.0.0.1:0", "--name", "inproc"})
	}()
	// Registered after TempDir's, so it runs first: the store is removed
	// only once the server is down.
	t.Cleanup(func() {
		cancel()
		<-done
	})
	ready := regexp.MustCompile(`msg="natsched: ready" url=(nats://\S+) store=\S+ prefix=natsched instance=inproc`)
	var url string
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for url == "" {
		select {
		case code := <-exit:
			t.Fatalf("server exited with %d before ready:\n%s", code, logs.String())
		case <-deadline:
			t.Fatalf("no ready line within 30s:\n%s", logs.String())
		case <-tick.C:
			if m := ready.FindStringSubmatch(logs.String()); m != nil {
				url = m[1]
			}
		}
	}

	code, out, errOut := runCLI(t, "", "add", "in.proc", "--subject", "natsched.fire.inproc", "--every", "1h", "--data", "x", "-s", url)
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "every 1h0m0s")
	code, out, errOut = runCLI(t, "", "get", "in.proc", "--json", "-s", url)
	require.Equal(t, ExitOK, code, errOut)
	var s natsched.Schedule
	require.NoError(t, json.Unmarshal([]byte(out), &s))
	require.Equal(t, time.Hour, s.Every)
	code, out, errOut = runCLI(t, "", "status", "-s", url)
	require.Equal(t, ExitOK, code, errOut)
	require.Regexp(t, `instance:\s+inproc`, out)

	cancel()
	select {
	case code := <-exit:
		require.Equal(t, ExitOK, code, logs.String())
	case <-time.After(5 * time.Second):
		t.Fatalf("server still running 5s after cancel:\n%s", logs.String())
	}
	require.Contains(t, logs.String(), `msg="natsched: stopped"`)
}
