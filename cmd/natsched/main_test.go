package main

// End-to-end tests: the natsched binary, built once, runs as a daemon
// subprocess with an embedded NATS server; the client commands run as
// subprocesses against it.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/natschedtest"
)

// binary is the natsched binary under test, built by TestMain.
var binary string

// configHome is the HOME and XDG_CONFIG_HOME of the subprocesses: empty, so
// that no nats context of the machine's user leaks into the tests.
var configHome string

// Bounds of the waits: generous, because -race and two cores slow the
// daemon down; none of them is a sleep.
const (
	readyWait   = 30 * time.Second
	fireWait    = 15 * time.Second
	exitWait    = 5 * time.Second // the contract's bound after SIGTERM
	commandWait = 30 * time.Second
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "natsched-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "natsched")
	configHome = filepath.Join(dir, "home")
	if err := os.Mkdir(configHome, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	args := []string{"build", "-o", binary}
	// Under go test -race the daemon is built with the race detector too:
	// a race makes it exit 66 and fails the test.
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build natsched:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is a `natsched server` subprocess.
type daemon struct {
	cmd    *exec.Cmd
	url    string
	port   string
	logs   *natschedtest.Buffer
	exited chan struct{}
	err    error // of Wait, once exited is closed
}

var readyLine = regexp.MustCompile(`msg="natsched: ready" url=(nats://127\.0\.0\.1:(\d+))`)

// startDaemon runs `natsched server` with an embedded NATS server on store
// and listen and waits for its ready line.
func startDaemon(t *testing.T, store, listen string) *daemon {
	t.Helper()
	return startServer(t, "--store", store, "--listen", listen, "--lease", "1s")
}

// startServer runs `natsched server args...` and waits for its ready line.
// It is killed in t.Cleanup if still running.
func startServer(t *testing.T, args ...string) *daemon {
	t.Helper()
	return startServerEnv(t, nil, args...)
}

// startServerEnv is startServer with extra environment variables.
func startServerEnv(t *testing.T, env []string, args ...string) *daemon {
	t.Helper()
	d := &daemon{logs: &natschedtest.Buffer{}, exited: make(chan struct{})}
	d.cmd = exec.Command(binary, append([]string{"server"}, args...)...)
	d.cmd.Env = childEnv(env...)
	stderr, err := d.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, d.cmd.Start())
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			_, _ = d.logs.Write([]byte(line + "\n"))
			if m := readyLine.FindStringSubmatch(line); m != nil {
				select {
				case ready <- m:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.logs.String())
		}
	})
	select {
	case m := <-ready:
		d.url, d.port = m[1], m[2]
	case <-d.exited:
		t.Fatalf("natsched server exited before ready (%v):\n%s", d.err, d.logs.String())
	case <-time.After(readyWait):
		t.Fatalf("natsched server not ready within %s:\n%s", readyWait, d.logs.String())
	}
	return d
}

// stop signals the daemon and requires a clean exit within the contract's
// 5 s.
func (d *daemon) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	start := time.Now()
	require.NoError(t, d.cmd.Process.Signal(sig))
	select {
	case <-d.exited:
	case <-time.After(exitWait):
		t.Fatalf("natsched server still running %s after %s:\n%s", exitWait, sig, d.logs.String())
	}
	require.NoError(t, d.err, "exit status after %s; log:\n%s", sig, d.logs.String())
	t.Logf("exited %s after %s", time.Since(start).Round(time.Millisecond), sig)
}

// childEnv is the environment of the subprocesses: none of the nats CLI's
// connection variables or contexts to confuse them, and no 1 s pause at
// exit under -race (a race still makes the exit status 66). extra comes
// last and wins.
func childEnv(extra ...string) []string {
	env := append(os.Environ(), "GORACE=atexit_sleep_ms=0 halt_on_error=1", "HOME="+configHome, "XDG_CONFIG_HOME="+configHome)
	for _, k := range []string{"NATS_URL", "NATS_CONTEXT", "NATS_CREDS", "NATS_NKEY", "NATS_USER", "NATS_PASSWORD",
		"NATS_TOKEN", "NATS_CERT", "NATS_KEY", "NATS_CA", "NATS_INBOX_PREFIX", "NATS_JS_DOMAIN"} {
		env = append(env, k+"=")
	}
	return append(env, extra...)
}

// runBin runs the binary with args and returns its exit status, stdout
// and stderr.
func runBin(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runBinEnv(t, nil, args...)
}

// runBinEnv is runBin with extra environment variables (NAME=value).
func runBinEnv(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = childEnv(env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errOut.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errOut.String()
	}
	t.Fatalf("natsched %v: %v", args, err)
	return -1, "", ""
}

// ok runs a command that must succeed and returns its stdout.
func ok(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runBin(t, args...)
	require.Equal(t, 0, code, "natsched %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), out, errOut)
	return out
}

func subscribe(t *testing.T, url, subject string) <-chan *nats.Msg {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	ch := make(chan *nats.Msg, 16)
	_, err = nc.ChanSubscribe(subject, ch)
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	return ch
}

func receive(t *testing.T, ch <-chan *nats.Msg, what string) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(fireWait):
		t.Fatalf("%s: no message within %s", what, fireWait)
		return nil
	}
}

func getJSON(t *testing.T, s, id string) *natsched.Schedule {
	t.Helper()
	var sch natsched.Schedule
	require.NoError(t, json.Unmarshal([]byte(ok(t, "get", id, "--json", "-s", s)), &sch))
	return &sch
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, t.TempDir(), "127.0.0.1:0")
	s := d.url

	t.Run("in fires", func(t *testing.T) {
		fired := subscribe(t, s, "natsched.fire.cli")
		out := ok(t, "add", "cli.in", "--subject", "natsched.fire.cli", "--in", "1s", "--data", "hello", "--header", "X-Trace:abc", "-s", s)
		require.Regexp(t, `id:\s+cli\.in`, out)
		require.Regexp(t, `status:\s+active`, out)
		m := receive(t, fired, "add --in 1s")
		require.Equal(t, "hello", string(m.Data))
		require.Equal(t, "cli.in", m.Header.Get("Natsched-Id"))
		require.Equal(t, "abc", m.Header.Get("X-Trace"))
		require.Equal(t, "1", m.Header.Get("Natsched-Run"))
		require.NotEmpty(t, m.Header.Get("Nats-Msg-Id"))
	})

	at := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	t.Run("add each kind", func(t *testing.T) {
		out := ok(t, "--server", s, "add", "--at", at.Format(time.RFC3339Nano), "cli.at", "--subject", "natsched.fire.at")
		require.Regexp(t, `when:\s+at `+regexp.QuoteMeta(at.Format("2006-01-02T15:04:05.999Z07:00")), out)

		out = ok(t, "add", "cli.every", "--subject=natsched.fire.every", "--every=1h", "--max-runs", "5", "-s", s, "--json")
		var every natsched.Schedule
		require.NoError(t, json.Unmarshal([]byte(out), &every))
		require.Equal(t, time.Hour, every.Every)
		require.EqualValues(t, 5, every.MaxRuns)

		ok(t, "add", "other.cron", "--subject", "natsched.fire.cron", "--cron", "0 9 * * MON-FRI", "--tz", "Europe/Berlin", "--misfire", "skip", "-s", s)
		cron := getJSON(t, s, "other.cron")
		require.Equal(t, "0 9 * * MON-FRI", cron.Cron)
		require.Equal(t, "Europe/Berlin", cron.TZ)
		require.Equal(t, natsched.MisfireSkip, cron.Misfire)
		// The service and `next` agree on the next fire time.
		want := strings.SplitN(ok(t, "next", "0 9 * * MON-FRI", "--tz", "Europe/Berlin", "-n", "1"), "\n", 2)[0]
		require.Equal(t, want, natsched.FormatTime(cron.NextRun))
	})

	t.Run("ls", func(t *testing.T) {
		out := ok(t, "ls", "-s", s)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Regexp(t, `^ID\s+STATUS\s+NEXT RUN\s+RUNS\s+SUBJECT\s+WHEN$`, lines[0])
		require.Len(t, lines, 5, out) // header, cli.at, cli.every, cli.in (done), other.cron
		require.Regexp(t, `^cli\.at\s+active\s+\S+\s+0\s+natsched\.fire\.at\s+at `, lines[1])
		require.Regexp(t, `^cli\.every\s+active\s+\S+\s+0\s+natsched\.fire\.every\s+every 1h0m0s$`, lines[2])
		require.Regexp(t, `^cli\.in\s+done\s+-\s+1\s+natsched\.fire\.cli\s+at `, lines[3])
		require.Regexp(t, `^other\.cron\s+active\s+\S+\s+0\s+natsched\.fire\.cron\s+cron 0 9 \* \* MON-FRI \(Europe/Berlin\)$`, lines[4])

		var list struct {
			Schedules []natsched.Schedule `json:"schedules"`
		}
		require.NoError(t, json.Unmarshal([]byte(ok(t, "ls", "cli", "--json", "-s", s)), &list))
		var ids []string
		for _, sch := range list.Schedules {
			ids = append(ids, sch.ID)
		}
		require.Equal(t, []string{"cli.at", "cli.every", "cli.in"}, ids)

		require.NoError(t, json.Unmarshal([]byte(ok(t, "ls", "--status", "done", "--json", "-s", s)), &list))
		require.Len(t, list.Schedules, 1)
		require.Equal(t, "cli.in", list.Schedules[0].ID)

		require.NoError(t, json.Unmarshal([]byte(ok(t, "ls", "--limit", "2", "--json", "-s", s)), &list))
		require.Len(t, list.Schedules, 2)
	})

	t.Run("get", func(t *testing.T) {
		sch := getJSON(t, s, "cli.at")
		require.Equal(t, at, sch.At)
		require.Equal(t, at, sch.NextRun)
		require.Equal(t, "natsched.fire.at", sch.Subject)
		out := ok(t, "get", "cli.at", "-s", s)
		require.Regexp(t, `next run:\s+\S+ \(in (59m|1h0m)`, out)
	})

	t.Run("pause resume trigger cancel", func(t *testing.T) {
		out := ok(t, "pause", "cli.every", "-s", s)
		require.Regexp(t, `status:\s+paused`, out)
		require.Equal(t, natsched.StatusPaused, getJSON(t, s, "cli.every").Status)

		// A trigger fires a paused schedule now, and it stays paused.
		fired := subscribe(t, s, "natsched.fire.every")
		out = ok(t, "trigger", "cli.every", "-s", s)
		require.Contains(t, out, "Triggered cli.every")
		m := receive(t, fired, "trigger")
		require.Equal(t, "cli.every", m.Header.Get("Natsched-Id"))
		require.Eventually(t, func() bool { return getJSON(t, s, "cli.every").Runs == 1 }, fireWait, 50*time.Millisecond)
		require.Equal(t, natsched.StatusPaused, getJSON(t, s, "cli.every").Status)

		out = ok(t, "resume", "cli.every", "-s", s)
		require.Regexp(t, `status:\s+active`, out)

		out = ok(t, "cancel", "cli.every", "-s", s, "--json")
		var was natsched.Schedule
		require.NoError(t, json.Unmarshal([]byte(out), &was))
		require.Equal(t, "cli.every", was.ID)

		code, out, errOut := runBin(t, "get", "cli.every", "-s", s)
		require.Equal(t, 1, code)
		require.Empty(t, out)
		require.Contains(t, errOut, "natsched get: ")
		require.Contains(t, errOut, "not found")
		require.Contains(t, errOut, "(404)")
	})

	t.Run("status", func(t *testing.T) {
		out := ok(t, "status", "-s", s)
		require.Regexp(t, `leader:\s+\S+-\d+`, out)
		require.Regexp(t, `fired:\s+[1-9]`, out)
		var st map[string]any
		require.NoError(t, json.Unmarshal([]byte(ok(t, "status", "--json", "-s", s)), &st))
		require.Equal(t, st["instance"], st["leader"])
	})

	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name string
			args []string
			code int
			msg  string
		}{
			{"missing id", []string{"get", "no.such.id"}, 1, "(404)"},
			{"bad cron is local", []string{"add", "x", "--subject", "natsched.fire.x", "--cron", "0 0 0 * * * * *"}, 2, "cron: expected 5, 6 or 7 fields, got 8"},
			{"uncaptured target", []string{"add", "x", "--subject", "nowhere.x", "--in", "1m"}, 1, "subject:"},
			{"wrong prefix", []string{"status", "--prefix", "other"}, 1, "no natsched service answers"},
			{"unknown flag", []string{"ls", "--bogus"}, 2, "unknown flag --bogus"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				code, out, errOut := runBin(t, append(tt.args, "-s", s)...)
				require.Equal(t, tt.code, code, "stderr: %s", errOut)
				require.Empty(t, out)
				require.Contains(t, errOut, tt.msg)
			})
		}
		// Nothing of that was stored.
		code, _, _ := runBin(t, "get", "x", "-s", s)
		require.Equal(t, 1, code)
	})

	t.Run("too large", func(t *testing.T) {
		// Over max payload once base64-encoded: nats.go will not send it,
		// and the CLI says why in the service's terms.
		big := filepath.Join(t.TempDir(), "big")
		require.NoError(t, os.WriteFile(big, bytes.Repeat([]byte("x"), 900<<10), 0o600))
		code, out, errOut := runBin(t, "add", "big.data", "--subject", "natsched.fire.big", "--in", "1h", "--data-file", big, "-s", s)
		require.Equal(t, 1, code, errOut)
		require.Empty(t, out)
		require.Regexp(t, `^natsched add: data: the request takes \d+ bytes, over the server's max payload of 1048576 bytes \(the payload travels base64-encoded, a third larger\) \(413\)\n$`, errOut)

		// Small enough to send, too large to fire: the service's own 413.
		code, out, errOut = runBin(t, "add", "big.header", "--subject", "natsched.fire.big", "--in", "1h",
			"--header", "X-Big:"+strings.Repeat("h", 70<<10), "-s", s)
		require.Equal(t, 1, code, errOut)
		require.Empty(t, out)
		require.Regexp(t, `^natsched add: header: the fired message's headers would take \d+ bytes, over JetStream's limit of 65535 \(413\)\n$`, errOut)
		for _, id := range []string{"big.data", "big.header"} {
			code, _, _ := runBin(t, "get", id, "-s", s)
			require.Equal(t, 1, code, "%s was not stored", id)
		}
	})

	d.stop(t, syscall.SIGINT)
	require.Contains(t, d.logs.String(), `msg="natsched: stopped"`)
}

func TestRestartKeepsSchedules(t *testing.T) {
	t.Parallel()
	store := t.TempDir()
	d := startDaemon(t, store, "127.0.0.1:0")
	ok(t, "add", "keep.me", "--subject", "natsched.fire.keep", "--every", "1h", "--data", "still here", "-s", d.url)
	before := getJSON(t, d.url, "keep.me")

	d.stop(t, syscall.SIGTERM)
	code, _, errOut := runBin(t, "get", "keep.me", "-s", d.url, "--timeout", "1s")
	require.Equal(t, 1, code, "the daemon is down")
	require.Contains(t, errOut, "cannot connect")

	d2 := startDaemon(t, store, "127.0.0.1:"+d.port)
	require.Equal(t, d.url, d2.url)
	after := getJSON(t, d2.url, "keep.me")
	require.Equal(t, []byte("still here"), after.Data)
	require.Equal(t, before.NextRun, after.NextRun)
	require.Equal(t, before.Created, after.Created)
	d2.stop(t, syscall.SIGTERM)
}

func TestServerPortInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	code, out, errOut := runBin(t, "server", "--store", t.TempDir(), "--listen", l.Addr().String())
	require.Equal(t, 1, code, errOut)
	require.Empty(t, out)
	require.Contains(t, errOut, "natsched server: embedded nats-server on "+l.Addr().String())
}

func TestServerWithExternalNATS(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	d := startServer(t, "--nats", srv.URL(), "--name", "ext-1", "--prefix", "tenants",
		"--allow", "tenant-a.>=tenants.fire.a.>", "--allow=tenant-b.*=tenants.fire.b")
	require.Equal(t, srv.URL(), d.url)
	s := []string{"-s", srv.URL(), "--prefix", "tenants"}

	out := ok(t, append([]string{"status"}, s...)...)
	require.Regexp(t, `instance:\s+ext-1`, out)

	ok(t, append([]string{"add", "tenant-a.job", "--subject", "tenants.fire.a.jobs", "--in", "1h"}, s...)...)
	ok(t, append([]string{"add", "tenant-b.job", "--subject", "tenants.fire.b", "--in", "1h"}, s...)...)
	code, out, errOut := runBin(t, append([]string{"add", "tenant-a.job2", "--subject", "tenants.fire.b", "--in", "1h"}, s...)...)
	require.Equal(t, 1, code, errOut)
	require.Empty(t, out)
	require.Contains(t, errOut, "(403)")
	code, _, errOut = runBin(t, append([]string{"add", "tenant-b.x.y", "--subject", "tenants.fire.b", "--in", "1h"}, s...)...)
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, "(403)")

	// The default prefix has no service here.
	code, _, errOut = runBin(t, "ls", "-s", srv.URL())
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no natsched service answers on natsched.api")

	d.stop(t, syscall.SIGTERM)
	require.True(t, srv.Running(), "stopping the daemon leaves an external server alone")
}

// lockWait bounds how long a daemon refused the store may take to exit.
const lockWait = 10 * time.Second

// TestStoreLock: a second daemon on a store in use exits 1 at once, naming
// the store and the holder, and the first keeps serving; a killed daemon
// leaves no lock behind.
func TestStoreLock(t *testing.T) {
	t.Parallel()
	store := t.TempDir()
	first := startDaemon(t, store, "127.0.0.1:0")
	ok(t, "add", "lock.keep", "--subject", "natsched.fire.lock", "--every", "1h", "--data", "kept", "-s", first.url)
	lockFile := filepath.Join(store, "natsched.lock")

	start := time.Now()
	code, out, errOut := runBin(t, "server", "--store", store, "--listen", "127.0.0.1:0")
	took := time.Since(start)
	require.Equal(t, 1, code, errOut)
	require.Empty(t, out)
	require.Equal(t, fmt.Sprintf("natsched server: store %s is in use by process %d (lock %s)\n",
		store, first.cmd.Process.Pid, lockFile), errOut, "one line, and nothing started before it")
	require.Less(t, took, lockWait)

	// The first still serves, and still leads once its lease is won.
	natschedtest.Eventually(t, fireWait, func() bool {
		var st map[string]any
		require.NoError(t, json.Unmarshal([]byte(ok(t, "status", "--json", "-s", first.url)), &st))
		return st["leader"] != "" && st["leader"] == st["instance"]
	}, "the first daemon leads")
	require.Equal(t, []byte("kept"), getJSON(t, first.url, "lock.keep").Data)
	require.NotContains(t, first.logs.String(), "level=ERROR")

	require.NoError(t, first.cmd.Process.Kill())
	select {
	case <-first.exited:
	case <-time.After(exitWait):
		t.Fatalf("daemon not gone %s after SIGKILL", exitWait)
	}
	next := startDaemon(t, store, "127.0.0.1:0")
	require.Equal(t, []byte("kept"), getJSON(t, next.url, "lock.keep").Data, "the store is whole")
	b, err := os.ReadFile(lockFile)
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("%d\n", next.cmd.Process.Pid), string(b))
	next.stop(t, syscall.SIGTERM)
}

// streamConfig reads a stream's configuration from the server at url.
func streamConfig(t *testing.T, url, name string) jetstream.StreamConfig {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	jsc, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), commandWait)
	defer cancel()
	st, err := jsc.Stream(ctx, name)
	require.NoError(t, err, "stream %s", name)
	return st.CachedInfo().Config
}

// TestStreamsAreTheOperators: streams are created with --fire-max-age and
// --dead-max-age; what an operator changes afterwards survives a restart.
func TestStreamsAreTheOperators(t *testing.T) {
	t.Parallel()
	t.Run("defaults, then edited", func(t *testing.T) {
		t.Parallel()
		store := t.TempDir()
		d := startDaemon(t, store, "127.0.0.1:0")
		fire := streamConfig(t, d.url, "NATSCHED_FIRE")
		require.Equal(t, 168*time.Hour, fire.MaxAge)
		require.Equal(t, 720*time.Hour, streamConfig(t, d.url, "NATSCHED_DEAD").MaxAge)

		// As `nats stream edit NATSCHED_FIRE --max-age 24h` does.
		nc, err := nats.Connect(d.url)
		require.NoError(t, err)
		jsc, err := jetstream.New(nc)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), commandWait)
		defer cancel()
		fire.MaxAge = 24 * time.Hour
		_, err = jsc.UpdateStream(ctx, fire)
		require.NoError(t, err)
		nc.Close()
		d.stop(t, syscall.SIGTERM)

		d2 := startDaemon(t, store, "127.0.0.1:0")
		require.Equal(t, 24*time.Hour, streamConfig(t, d2.url, "NATSCHED_FIRE").MaxAge, "the operator's edit survives a restart")
		require.Equal(t, 720*time.Hour, streamConfig(t, d2.url, "NATSCHED_DEAD").MaxAge)
		d2.stop(t, syscall.SIGTERM)
	})
	t.Run("flags", func(t *testing.T) {
		t.Parallel()
		d := startServer(t, "--store", t.TempDir(), "--listen", "127.0.0.1:0", "--fire-max-age", "1h", "--dead-max-age", "2h")
		require.Equal(t, time.Hour, streamConfig(t, d.url, "NATSCHED_FIRE").MaxAge)
		require.Equal(t, 2*time.Hour, streamConfig(t, d.url, "NATSCHED_DEAD").MaxAge)
		d.stop(t, syscall.SIGTERM)
	})
}

// TestShortDuplicateWindowStopsTheDaemon: a fire stream whose duplicate
// window cannot cover a failover is the one mismatch the daemon refuses.
func TestShortDuplicateWindowStopsTheDaemon(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), commandWait)
	defer cancel()
	_, err := srv.JetStream(t).CreateStream(ctx, jetstream.StreamConfig{
		Name: "NATSCHED_FIRE", Subjects: []string{"natsched.fire.>"}, Duplicates: time.Minute,
	})
	require.NoError(t, err)
	code, out, errOut := runBin(t, "server", "--nats", srv.URL(), "--lease", "1s")
	require.Equal(t, 1, code, errOut)
	require.Empty(t, out)
	require.Contains(t, errOut, "natsched server: start: natsched: duplicate window too short: "+
		"stream NATSCHED_FIRE has a duplicate window of 1m0s, natsched needs at least 2m0s")
}
