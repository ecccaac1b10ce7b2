package integration_test

// Hostile targets and hostile data: what an API user with no special
// rights, or anyone who can write the schedules bucket's KV subjects, can
// make the scheduler do with its own credentials. Nothing, is the answer
// these tests pin down.

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/jetstream"
	"github.com/natsched/natsched/natschedtest"
)

// reservedTargets are subjects no schedule may target, whatever --allow
// says.
var reservedTargets = []string{
	"$KV.natsched_schedules.victim", // rewrite another namespace's schedule
	"$KV.natsched_leader.leader",    // steal or break the lease
	"$JS.API.STREAM.DELETE.VICTIM",  // act as the scheduler on JetStream
	"$JS.API.CONSUMER.DELETE.NATSCHED_INTAKE.natsched_intake",
	"$O.store.x", "$SYS.REQ.SERVER.PING", "$SRV.PING", "$JS.FC.x",
	"_INBOX.abc.def",
	"natsched.api.put.tenant-b.x", "natsched.api.status",
	"natsched.in.tenant-b.x", // would create a schedule in another namespace
	"natsched.dead.x", "natsched.rejected.tenant-b.x",
}

func TestReservedTargetsRefusedAtPutAndIntake(t *testing.T) {
	t.Parallel()
	// A rule that allows everything must not open reserved subjects.
	d := startDaemon(t, "reserved", nil, jetstream.WithAllow(jetstream.AllowRule{IDPattern: ">", SubjectPattern: ">"}))
	for _, subj := range reservedTargets {
		msg := apiError(t, d.api(t, "put", "tenant-a.evil", map[string]any{"subject": subj, "at": farFuture}), 400, "subject")
		require.True(t, strings.HasPrefix(msg, "subject: reserved"), "%s: %s", subj, msg)
	}
	apiError(t, d.api(t, "get", "tenant-a.evil", nil), 404)

	rejected := subscribe(t, d.nc, rejectedPrefix+".tenant-a.>")
	for _, subj := range reservedTargets[:4] {
		d.publishIntake(t, "tenant-a.evil", nats.Header{
			"Natsched-Schedule": {"@in 1s"}, "Natsched-Target": {subj},
		}, "x")
		m := next(t, rejected, "rejected intake for "+subj)
		require.True(t, strings.HasPrefix(m.Header.Get(natsched.HeaderError), "Natsched-Target: reserved"),
			"%s: %s", subj, m.Header.Get(natsched.HeaderError))
	}
	apiError(t, d.api(t, "get", "tenant-a.evil", nil), 404)

	// The default home of targets stays open.
	ok(t, d.api(t, "put", "tenant-a.fine", map[string]any{"subject": "natsched.fire.tenant-a", "at": farFuture}))
}

// attacker writes raw values into the schedules bucket, as anyone with
// publish rights on $KV.natsched_schedules.> can.
type attacker struct {
	kv js.KeyValue
}

func newAttacker(t *testing.T, d *daemon) *attacker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), reqTimeout)
	defer cancel()
	kv, err := d.js.KeyValue(ctx, "natsched_schedules")
	require.NoError(t, err)
	return &attacker{kv: kv}
}

// plant stores value (a map rendered as JSON, or raw bytes) under key.
func (a *attacker) plant(t *testing.T, key string, value any) {
	t.Helper()
	b, isRaw := value.([]byte)
	if !isRaw {
		var err error
		b, err = json.Marshal(value)
		require.NoError(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), reqTimeout)
	defer cancel()
	_, err := a.kv.Put(ctx, key, b)
	require.NoError(t, err)
}

func (a *attacker) raw(t *testing.T, key string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), reqTimeout)
	defer cancel()
	e, err := a.kv.Get(ctx, key)
	require.NoError(t, err)
	return e.Value()
}

// planted is a stored schedule as the bucket holds them, due now.
func planted(id, subject string, extra ...any) map[string]any {
	now := natsched.FormatTime(time.Now())
	m := map[string]any{
		"id": id, "subject": subject, "at": now, "status": "active", "next_run": now,
		"created": now, "updated": now, "data": b64("planted"), "generation": 7,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i].(string)] = extra[i+1]
	}
	return m
}

// waitRefused waits until the leader recorded that it refused key, and
// returns the last_error.
func waitRefused(t *testing.T, a *attacker, key string) string {
	t.Helper()
	var lastErr string
	natschedtest.Eventually(t, fireTimeout, func() bool {
		var v struct {
			LastError string `json:"last_error"`
		}
		if err := json.Unmarshal(a.raw(t, key), &v); err != nil {
			return false
		}
		lastErr = v.LastError
		return strings.HasPrefix(lastErr, "not fired: ")
	}, "%s refused (last_error %q)", key, &lastErr)
	return lastErr
}

func TestBucketWritesAreRecheckedBeforeFiring(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "recheck", nil)
	d.waitLeader(t)
	a := newAttacker(t, d)
	d.createStream(t, "VICTIM", "victim.>")

	// Another namespace's schedule, which a fire into its KV subject would
	// rewrite.
	ok(t, d.api(t, "put", "victim", map[string]any{"subject": "natsched.fire.victim", "at": farFuture}))
	victimBefore := a.raw(t, "victim")
	leaseKV, err := d.js.KeyValue(context.Background(), "natsched_leader")
	require.NoError(t, err)
	leaseBefore, err := leaseKV.Get(context.Background(), "leader")
	require.NoError(t, err)

	// A bystander keeps firing throughout.
	fires := subscribe(t, d.nc, "natsched.fire.bystander")
	ok(t, d.api(t, "put", "bystander", map[string]any{"subject": "natsched.fire.bystander", "every": "250ms"}))

	cases := []struct {
		key    string
		value  map[string]any
		reason string // what last_error names after "not fired: "
	}{
		{"evil.delete", planted("evil.delete", "$JS.API.STREAM.DELETE.VICTIM"), "subject: reserved"},
		{"evil.rewrite", planted("evil.rewrite", "$KV.natsched_schedules.victim"), "subject: reserved"},
		{"evil.lease", planted("evil.lease", "$KV.natsched_leader.leader", "at", "", "every", "10ms", "anchor", natsched.FormatTime(time.Now())), "subject: reserved"},
		{"evil.intake", planted("evil.intake", "natsched.in.victim"), "subject: reserved"},
		{"evil.fast", planted("evil.fast", "natsched.fire.evil", "at", "", "every", "1ns", "anchor", natsched.FormatTime(time.Now())), "every: "},
		{"evil/x", planted("evil/x", "natsched.fire.evil"), "id: "},
		{"evil.header", planted("evil.header", "natsched.fire.evil", "header", map[string]any{"Nats-Msg-Id": []string{"victim/1/1"}}), "header: "},
	}
	evil := subscribe(t, d.nc, "natsched.fire.evil")
	for _, c := range cases {
		a.plant(t, c.key, c.value)
	}
	for _, c := range cases {
		lastErr := waitRefused(t, a, c.key)
		require.True(t, strings.HasPrefix(lastErr, "not fired: "+c.reason), "%s: %s", c.key, lastErr)
	}

	// Nothing was fired: the victim stream exists, the victim schedule and
	// the lease are as they were, no message reached a planted target.
	_, err = d.js.Stream(context.Background(), "VICTIM")
	require.NoError(t, err, "stream VICTIM must survive")
	require.JSONEq(t, string(victimBefore), string(a.raw(t, "victim")), "the victim schedule is unchanged")
	lease, err := leaseKV.Get(context.Background(), "leader")
	require.NoError(t, err)
	require.Equal(t, decode(t, leaseBefore.Value())["term"], decode(t, lease.Value())["term"], "the lease was not taken over")
	select {
	case m := <-evil:
		t.Fatalf("a refused schedule fired: %v %q", m.Header, m.Data)
	default:
	}
	for _, id := range []string{"evil.delete", "evil.rewrite", "evil.lease", "evil.fast", "evil.header"} {
		require.Zero(t, streamCount(t, d, "NATSCHED_FIRE", id), "%s must not fire", id)
	}
	st := d.status(t)
	require.GreaterOrEqual(t, num(t, st, "refused"), int64(len(cases)))

	// The bystander went on at its cadence: 10 fires take 2.5s.
	for i := range 10 {
		next(t, fires, "bystander fire "+string(rune('0'+i)))
	}

	// A refused schedule can be read (its last_error says why) and
	// cancelled through the API.
	got := ok(t, d.api(t, "get", "evil.delete", nil))
	require.Contains(t, str(t, got, "last_error"), "reserved")
	ok(t, d.api(t, "cancel", "evil.delete", nil))
	apiError(t, d.api(t, "get", "evil.delete", nil), 404)
}

// streamCount counts the messages of stream whose Natsched-Id is id.
func streamCount(t *testing.T, d *daemon, stream, id string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), fireTimeout)
	defer cancel()
	s, err := d.js.Stream(ctx, stream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	n := 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		if m.Header.Get(natsched.HeaderID) == id {
			n++
		}
	}
	return n
}

func TestStricterAllowRulesStopStoredSchedules(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	nc := srv.Conn(t)
	open, err := jetstream.New(srv.JetStream(t), jetstream.WithName("open"), jetstream.WithLeaseTTL(time.Second), jetstream.WithClockSync(false))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, open.Start(ctx))
	_, err = open.Put(ctx, &natsched.Schedule{ID: "tenant-a.x", Subject: "natsched.fire.tenant-b.inbox", Every: 200 * time.Millisecond})
	require.NoError(t, err)
	_, err = open.Put(ctx, &natsched.Schedule{ID: "tenant-a.y", Subject: "natsched.fire.tenant-a.inbox", Every: 200 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, open.Close(ctx))

	// Restarted with rules that confine tenant-a to its own subjects.
	startScheduler(t, srv, "strict", jetstream.WithAllow(jetstream.AllowRule{IDPattern: "tenant-a.>", SubjectPattern: "natsched.fire.tenant-a.>"}))
	d := &daemon{srv: srv, nc: nc, name: "strict"}
	d.js, err = js.New(nc)
	require.NoError(t, err)
	own := subscribe(t, nc, "natsched.fire.tenant-a.inbox")
	other := subscribe(t, nc, "natsched.fire.tenant-b.inbox")
	a := newAttacker(t, d)
	lastErr := waitRefused(t, a, "tenant-a.x")
	require.Contains(t, lastErr, "may not target")
	next(t, own, "the allowed schedule fires")
	// Drain what fired before the restart, then nothing more may come.
	for len(other) > 0 {
		<-other
	}
	before := streamCount(t, d, "NATSCHED_FIRE", "tenant-a.x")
	next(t, own, "a second allowed fire")
	next(t, own, "a third allowed fire")
	require.Equal(t, before, streamCount(t, d, "NATSCHED_FIRE", "tenant-a.x"), "the forbidden schedule stopped firing")
	got := ok(t, d.api(t, "get", "tenant-a.x", nil))
	require.Contains(t, str(t, got, "last_error"), "not fired: subject:")
}

func TestUnreadableStoredValues(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "unreadable", nil)
	a := newAttacker(t, d)
	ok(t, d.api(t, "put", "ok.1", map[string]any{"subject": "natsched.fire.ok", "at": farFuture}))
	ok(t, d.api(t, "put", "ok.2", map[string]any{"subject": "natsched.fire.ok", "at": farFuture}))
	a.plant(t, "ok.15", []byte("not json"))

	// list keeps working and counts what it skipped.
	for _, req := range []any{nil, map[string]any{"status": "active"}} {
		for _, subj := range []string{"list", "list.ok"} {
			page := ok(t, request(t, d.nc, apiPrefix+"."+subj, req))
			require.Equal(t, []string{"ok.1", "ok.2"}, ids(t, page), "%s %v", subj, req)
			require.EqualValues(t, 1, num(t, page, "skipped"), "%s %v", subj, req)
		}
	}
	// get says what is wrong; pause, resume and trigger too.
	msg := apiError(t, d.api(t, "get", "ok.15", nil), 422)
	require.True(t, strings.HasPrefix(msg, "stored: "), msg)
	for _, verb := range []string{"pause", "resume", "trigger"} {
		apiError(t, d.api(t, verb, "ok.15", nil), 422)
	}
	// status still answers; cancel removes it.
	d.status(t)
	got := ok(t, d.api(t, "cancel", "ok.15", nil))
	require.Equal(t, "ok.15", str(t, got, "id"))
	require.True(t, strings.HasPrefix(str(t, got, "last_error"), "stored: "), "%v", got)
	apiError(t, d.api(t, "get", "ok.15", nil), 404)

	// A put replaces an unreadable value.
	a.plant(t, "ok.16", []byte(`{"id":`))
	ok(t, d.api(t, "put", "ok.16", map[string]any{"subject": "natsched.fire.ok", "at": farFuture}))
	ok(t, d.api(t, "get", "ok.16", nil))

	// The others were never touched.
	require.Equal(t, []string{"ok.1", "ok.16", "ok.2"}, ids(t, ok(t, d.api(t, "list", "", nil))))
}

func TestHeadersOverJetStreamsLimit(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "headers", nil)
	id := "h." + strings.Repeat("x", 200)
	// Fits in a stored schedule and in an intake message, but not once
	// natsched's own headers are added to the fired message.
	big := strings.Repeat("v", 65200)
	msg := apiError(t, d.api(t, "put", id, map[string]any{
		"subject": "natsched.fire.h", "at": farFuture, "header": map[string]any{"X-Big": big},
	}), 413)
	require.True(t, strings.HasPrefix(msg, "header: "), msg)
	apiError(t, d.api(t, "get", id, nil), 404)

	rejected := subscribe(t, d.nc, rejectedPrefix+".h.>")
	d.publishIntake(t, id, nats.Header{"Natsched-Schedule": {"@in 1s"}, "Natsched-Target": {"natsched.fire.h"}, "X-Big": {big}}, "")
	m := next(t, rejected, "rejected intake")
	require.True(t, strings.HasPrefix(m.Header.Get(natsched.HeaderError), "header: "), m.Header.Get(natsched.HeaderError))
	apiError(t, d.api(t, "get", id, nil), 404)

	// Just under the limit is stored and fires.
	fired := subscribe(t, d.nc, "natsched.fire.h")
	ok(t, d.api(t, "put", "h.ok", map[string]any{
		"subject": "natsched.fire.h", "in": "10ms", "header": map[string]any{"X-Big": strings.Repeat("v", 64000)},
	}))
	require.Len(t, next(t, fired, "fire with large headers").Header.Get("X-Big"), 64000)
}

func TestJitterMustBeLessThanTheInterval(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "jitter", nil)
	apiError(t, d.api(t, "put", "j", map[string]any{"subject": "natsched.fire.j", "every": "100ms", "jitter": "5s"}), 400, "jitter")
	rejected := subscribe(t, d.nc, rejectedPrefix+".j")
	d.publishIntake(t, "j", nats.Header{"Natsched-Schedule": {"@every 100ms"}, "Natsched-Target": {"natsched.fire.j"}, "Natsched-Jitter": {"5s"}}, "")
	m := next(t, rejected, "rejected intake")
	require.True(t, strings.HasPrefix(m.Header.Get(natsched.HeaderError), "Natsched-Jitter: "), m.Header.Get(natsched.HeaderError))
}
