package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
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

// validateServer parses args as `natsched server` would and validates
// them, binding nothing.
func validateServer(t *testing.T, vars map[string]string, args ...string) (*serverFlags, error) {
	t.Helper()
	f := &serverFlags{}
	cmd := serverCommandFor(&env{getenv: func(string) string { return "" }}, f)
	cmd.SetFlagErrorFunc(flagError)
	if err := cmd.ParseFlags(args); err != nil {
		return nil, flagError(cmd, err)
	}
	f.set = setFlags(cmd.Flags())
	return f, f.validate(func(k string) string { return vars[k] })
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nats.conf")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func TestEmbeddedServerOptions(t *testing.T) {
	t.Parallel()
	users := `listen: 0.0.0.0:4333
jetstream { store_dir: "/from/the/file" }
http: 127.0.0.1:8222
authorization { users: [ { user: sched, password: pw } ] }
`
	authConf := writeConfig(t, users)
	openConf := writeConfig(t, "listen: 0.0.0.0:4333\n")
	noAuthUser := writeConfig(t, "listen: 0.0.0.0:4333\naccounts { A { users: [ {user: u, password: p} ] } }\nno_auth_user: u\n")
	portOnly := writeConfig(t, "port: 4444\n")

	t.Run("the file wins over the defaults", func(t *testing.T) {
		f, err := validateServer(t, nil, "--config", authConf, "--user", "sched", "--password", "pw")
		require.NoError(t, err)
		require.True(t, f.embedded)
		require.Equal(t, "0.0.0.0", f.serverOpts.Host, "authorization makes a non-loopback listen fine")
		require.Equal(t, 4333, f.serverOpts.Port)
		require.Equal(t, "/from/the/file", f.serverOpts.StoreDir)
		require.Equal(t, 8222, f.serverOpts.HTTPPort)
		require.True(t, f.serverOpts.JetStream)
		require.Equal(t, "user", f.settings.AuthMethod())
	})
	t.Run("explicit flags win over the file", func(t *testing.T) {
		f, err := validateServer(t, nil, "--config", authConf, "--user", "sched", "--password", "pw",
			"--listen", "127.0.0.1:0", "--store", "/explicit", "--monitor", "127.0.0.1:0")
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1", f.serverOpts.Host)
		require.Equal(t, -1, f.serverOpts.Port, "port 0 is any port")
		require.Equal(t, "/explicit", f.serverOpts.StoreDir)
		require.Equal(t, -1, f.serverOpts.HTTPPort)
	})
	t.Run("unset parts of the address keep natsched's defaults", func(t *testing.T) {
		f, err := validateServer(t, nil, "--config", portOnly)
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1", f.serverOpts.Host, "not nats-server's 0.0.0.0")
		require.Equal(t, 4444, f.serverOpts.Port)
		require.Equal(t, defaultStore, f.serverOpts.StoreDir)
	})
	t.Run("--insecure", func(t *testing.T) {
		_, err := validateServer(t, nil, "--listen", "0.0.0.0:4222", "--insecure")
		require.NoError(t, err)
	})
	t.Run("a NATS_URL joins it instead", func(t *testing.T) {
		f, err := validateServer(t, map[string]string{"NATS_URL": "nats://elsewhere:4222"})
		require.NoError(t, err)
		require.False(t, f.embedded)
	})
	for _, tt := range []struct {
		name string
		args []string
		msg  string
	}{
		{"every interface without auth", []string{"--listen", "0.0.0.0:4222"}, "--listen 0.0.0.0:4222 is not a loopback address and the embedded server has no authorization"},
		{"empty host", []string{"--listen", ":4222"}, "is not a loopback address"},
		{"a host name", []string{"--listen", "sched.example.com:4222"}, "is not a loopback address"},
		{"the file's listen without auth", []string{"--config", openConf}, "--listen 0.0.0.0:4333 is not a loopback address"},
		{"no_auth_user lets anyone in", []string{"--config", noAuthUser}, "is not a loopback address"},
		{"auth without the daemon's credentials", []string{"--config", authConf}, "requires authentication, and natsched server connects to it as a client"},
		{"credentials without auth", []string{"--user", "u", "--password", "p"}, "--user, --password apply to --nats/--server"},
		{"TLS in process", []string{"--config", authConf, "--user", "sched", "--password", "pw", "--tlsca", "ca.pem"}, "--tlsca apply to a server natsched joins"},
		{"missing config", []string{"--config", "/no/such.conf"}, "--config /no/such.conf"},
		{"config with --nats", []string{"--nats", "nats://h:1", "--config", authConf}, "--config configure the embedded server"},
		{"bad monitor", []string{"--monitor", "8222"}, "--monitor"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := validateServer(t, nil, tt.args...)
			var ue *usageError
			require.ErrorAs(t, err, &ue)
			require.ErrorContains(t, err, tt.msg)
			require.NotContains(t, err.Error(), "pw")
		})
	}
}
