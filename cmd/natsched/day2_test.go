package main

// Day-2 commands through the real binary: version, tail, dead ls, dead
// replay, edit and add --revision.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
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

func TestVersion(t *testing.T) {
	t.Parallel()
	out := ok(t, "version")
	require.Regexp(t, `^natsched \S+\nmodule:   github.com/natsched/natsched\nrevision: .+\n`, out)
	var v struct {
		Module, Version, Go string
	}
	require.NoError(t, json.Unmarshal([]byte(ok(t, "version", "--json")), &v))
	require.Equal(t, "github.com/natsched/natsched", v.Module)
	require.NotEmpty(t, v.Version)
	require.True(t, strings.HasPrefix(v.Go, "go"), v.Go)
}

// tailProc is a running `natsched tail`.
type tailProc struct {
	lines chan string
	done  chan error
	cmd   *exec.Cmd
}

func startTail(t *testing.T, args ...string) *tailProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandWait)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, binary, append([]string{"tail"}, args...)...)
	cmd.Env = childEnv()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &tailProc{lines: make(chan string, 64), done: make(chan error, 1), cmd: cmd}
	ready := make(chan struct{})
	go func() { // ends when tail closes stderr, at its exit
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "tailing ") {
				close(ready)
			}
		}
	}()
	go func() { // ends at tail's exit
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		p.done <- cmd.Wait()
	}()
	select {
	case <-ready:
	case err := <-p.done:
		t.Fatalf("tail exited before it was ready: %v", err)
	case <-time.After(readyWait):
		t.Fatalf("tail not ready within %s", readyWait)
	}
	return p
}

func (p *tailProc) next(t *testing.T) string {
	t.Helper()
	select {
	case l := <-p.lines:
		return l
	case <-time.After(fireWait):
		t.Fatalf("no line from tail within %s", fireWait)
		return ""
	}
}

func TestTail(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, t.TempDir(), "127.0.0.1:0")
	s := d.url

	// PREFIX keeps tail.keep's fires; -n 2 ends it after two.
	p := startTail(t, "tail.keep", "--json", "-n", "2", "-s", s)
	ok(t, "add", "tail.other", "--subject", "natsched.fire.other", "--in", "0s", "-s", s)
	ok(t, "add", "tail.keep.a", "--subject", "natsched.fire.tail", "--every", "300ms", "--max-runs", "2", "-s", s)
	for run := 1; run <= 2; run++ {
		var l struct {
			Time, Lateness, ID, Run, Subject, Planned string
			LatenessSeconds                           float64 `json:"lateness_seconds"`
			Seq                                       uint64
		}
		require.NoError(t, json.Unmarshal([]byte(p.next(t)), &l))
		require.Equal(t, "tail.keep.a", l.ID)
		require.Equal(t, strconv.Itoa(run), l.Run)
		require.Equal(t, "natsched.fire.tail", l.Subject)
		require.NotEmpty(t, l.Time)
		require.NotEmpty(t, l.Planned)
		require.Greater(t, l.LatenessSeconds, -1.0)
		require.Less(t, l.LatenessSeconds, fireWait.Seconds())
		require.NotZero(t, l.Seq)
	}
	select {
	case err := <-p.done:
		require.NoError(t, err, "tail -n 2 exits 0 after two")
	case <-time.After(exitWait):
		t.Fatal("tail -n 2 still running")
	}

	// Without --json: one line a fire; SIGINT ends it with 0.
	p = startTail(t, "-s", s)
	ok(t, "add", "tail.plain", "--subject", "natsched.fire.plain", "--in", "0s", "-s", s)
	require.Regexp(t, `^\S+Z  late \S+\s+  tail\.plain  run 1  natsched\.fire\.plain$`, p.next(t))
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	select {
	case err := <-p.done:
		require.NoError(t, err)
	case <-time.After(exitWait):
		t.Fatal("tail still running after SIGINT")
	}
	d.stop(t, syscall.SIGTERM)
}

type deadList struct {
	Messages []struct {
		Seq                            uint64
		Kind, Subject, ID, Error, Data string
		ReplayTo                       string `json:"replay_to"`
		Header                         map[string][]string
	}
}

func TestDeadLettersAndReplay(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, t.TempDir(), "127.0.0.1:0")
	s := d.url

	code, out, errOut := runBin(t, "dead", "ls", "-s", s)
	require.Equal(t, 0, code, errOut)
	require.Empty(t, out)
	require.Equal(t, "no dead letters or rejected intake messages\n", errOut)

	nc, err := nats.Connect(s)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	jsc, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), commandWait)
	defer cancel()

	// A dead letter, as a handler group that gave up leaves it.
	dead := nats.NewMsg("natsched.dead.natsched.fire.mail")
	dead.Header.Set(natsched.HeaderID, "mail.42")
	dead.Header.Set(natsched.HeaderRun, "1")
	dead.Header.Set(natsched.HeaderError, "smtp: connection refused")
	dead.Header.Set(natsched.HeaderDeliveries, "5")
	dead.Header.Set("X-Trace", "abc")
	dead.Data = []byte("to: a@b")
	_, err = jsc.PublishMsg(ctx, dead)
	require.NoError(t, err)

	// A rejected intake message: its target is captured by no stream.
	in := nats.NewMsg("natsched.in.replay.me")
	in.Header.Set("Natsched-Schedule", "@in 1h")
	in.Header.Set("Natsched-Target", "later.x")
	in.Data = []byte("payload")
	_, err = jsc.PublishMsg(ctx, in)
	require.NoError(t, err)

	var list deadList
	natschedtest.Eventually(t, fireWait, func() bool {
		require.NoError(t, json.Unmarshal([]byte(ok(t, "dead", "ls", "--json", "-s", s)), &list))
		return len(list.Messages) == 2
	}, "a dead letter and a rejected intake message")
	dl, rj := list.Messages[0], list.Messages[1]
	require.Equal(t, "dead", dl.Kind)
	require.Equal(t, "mail.42", dl.ID)
	require.Equal(t, "natsched.fire.mail", dl.ReplayTo)
	require.Equal(t, "smtp: connection refused", dl.Error)
	require.Equal(t, "rejected", rj.Kind)
	require.Equal(t, "replay.me", rj.ID)
	require.Equal(t, "natsched.in.replay.me", rj.ReplayTo)
	require.Contains(t, rj.Error, `no JetStream stream captures "later.x"`)

	out = ok(t, "dead", "ls", "-s", s)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	require.Regexp(t, `^SEQ\s+TIME\s+KIND\s+ID\s+REPLAY TO\s+ERROR$`, lines[0])
	require.Regexp(t, fmt.Sprintf(`^%d\s+\S+\s+dead\s+mail\.42\s+natsched\.fire\.mail\s+smtp: connection refused$`, dl.Seq), lines[1])

	// Replay the dead letter: back on its subject, without the error
	// headers; a second replay is refused as a duplicate.
	fired := subscribe(t, s, "natsched.fire.mail")
	out = ok(t, "dead", "replay", strconv.FormatUint(dl.Seq, 10), "-s", s)
	require.Contains(t, out, "to natsched.fire.mail (stream NATSCHED_FIRE")
	m := receive(t, fired, "replayed dead letter")
	require.Equal(t, "to: a@b", string(m.Data))
	require.Equal(t, "mail.42", m.Header.Get(natsched.HeaderID))
	require.Equal(t, "abc", m.Header.Get("X-Trace"))
	require.Empty(t, m.Header.Get(natsched.HeaderError))
	require.Empty(t, m.Header.Get(natsched.HeaderDeliveries))
	code, _, errOut = runBin(t, "dead", "replay", strconv.FormatUint(dl.Seq, 10), "-s", s)
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, "already replayed")

	// Fix the cause of the rejection, replay it into the intake, and the
	// schedule exists; --delete removes it from the dead letters.
	_, err = jsc.CreateStream(ctx, jetstream.StreamConfig{Name: "LATER", Subjects: []string{"later.>"}})
	require.NoError(t, err)
	out = ok(t, "dead", "replay", strconv.FormatUint(rj.Seq, 10), "--delete", "-s", s)
	require.Contains(t, out, "to natsched.in.replay.me (stream NATSCHED_INTAKE")
	natschedtest.Eventually(t, fireWait, func() bool {
		code, _, _ := runBin(t, "get", "replay.me", "-s", s)
		return code == 0
	}, "the replayed intake message is a schedule")
	require.Equal(t, "later.x", getJSON(t, s, "replay.me").Subject)
	require.NoError(t, json.Unmarshal([]byte(ok(t, "dead", "ls", "--json", "-s", s)), &list))
	require.Len(t, list.Messages, 1, "the replayed rejected message was deleted")

	for _, tt := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"dead", "replay", "999"}, 1, "has no message at sequence 999"},
		{[]string{"dead", "replay", "x"}, 2, `SEQ "x"`},
		{[]string{"dead", "replay"}, 2, "missing SEQ"},
	} {
		code, _, errOut := runBin(t, append(tt.args, "-s", s)...)
		require.Equal(t, tt.code, code, "%v: %s", tt.args, errOut)
		require.Contains(t, errOut, tt.msg, "%v", tt.args)
	}
	for _, tt := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"dead"}, 2, "missing subcommand"},
		{[]string{"dead", "rm"}, 2, `unknown subcommand "rm"`},
	} {
		code, _, errOut := runBin(t, tt.args...)
		require.Equal(t, tt.code, code, "%v: %s", tt.args, errOut)
		require.Contains(t, errOut, tt.msg, "%v", tt.args)
	}
	d.stop(t, syscall.SIGTERM)
}

func TestEditAndRevision(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, t.TempDir(), "127.0.0.1:0")
	s := d.url
	ok(t, "add", "edit.me", "--subject", "natsched.fire.edit", "--cron", "0 9 * * *", "--tz", "Europe/Berlin",
		"--data", "v1", "--header", "X-A:1", "--max-runs", "7", "-s", s)
	before := getJSON(t, s, "edit.me")

	// Only what the flags name changes.
	out := ok(t, "edit", "edit.me", "--data", "v2", "--jitter", "2s", "-s", s, "--json")
	var after natsched.Schedule
	require.NoError(t, json.Unmarshal([]byte(out), &after))
	require.Equal(t, []byte("v2"), after.Data)
	require.Equal(t, 2*time.Second, after.Jitter)
	require.Equal(t, "0 9 * * *", after.Cron)
	require.Equal(t, "Europe/Berlin", after.TZ)
	require.Equal(t, []string{"1"}, after.Header["X-A"])
	require.EqualValues(t, 7, after.MaxRuns)
	require.Greater(t, after.Revision, before.Revision)

	// A new way to recur replaces the old one, zone included.
	ok(t, "edit", "--every", "1h", "edit.me", "-s", s)
	after = *getJSON(t, s, "edit.me")
	require.Equal(t, time.Hour, after.Every)
	require.Empty(t, after.Cron)
	require.Empty(t, after.TZ)
	require.Equal(t, []byte("v2"), after.Data)

	// add --revision is a compare-and-set.
	code, out, errOut := runBin(t, "add", "edit.me", "--subject", "natsched.fire.edit", "--every", "2h",
		"--revision", strconv.FormatUint(before.Revision, 10), "-s", s)
	require.Equal(t, 1, code, errOut)
	require.Empty(t, out)
	require.Contains(t, errOut, fmt.Sprintf("edit.me is no longer at revision %d", before.Revision))
	require.Contains(t, errOut, "nothing was changed")
	require.Contains(t, errOut, "(409)")
	ok(t, "add", "edit.me", "--subject", "natsched.fire.edit", "--every", "2h", "--revision", strconv.FormatUint(after.Revision, 10), "-s", s)
	require.Equal(t, 2*time.Hour, getJSON(t, s, "edit.me").Every)

	for _, tt := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"edit", "edit.me"}, 2, "nothing to change"},
		{[]string{"edit", "edit.me", "--every", "1s", "--cron", "@daily"}, 2, "give only one of --every, --cron"},
		{[]string{"edit", "edit.me", "--tz", "UTC"}, 2, "--tz applies to --cron only"},
		{[]string{"edit", "no.such", "--data", "x"}, 1, "(404)"},
		{[]string{"add", "x", "--subject", "natsched.fire.x", "--in", "1s", "--revision", "0"}, 2, "--revision must be at least 1"},
	} {
		code, _, errOut := runBin(t, append(tt.args, "-s", s)...)
		require.Equal(t, tt.code, code, "%v: %s", tt.args, errOut)
		require.Contains(t, errOut, tt.msg, "%v", tt.args)
	}
	d.stop(t, syscall.SIGTERM)
}
