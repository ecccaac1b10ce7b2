package integration_test

// The wire contract end to end: every request/reply verb, fired message
// headers, durable intake and allow rules, driven by a client that uses
// plain nats.go and JSON only, as a service in another language would.

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched/jetstream"
	"github.com/natsched/natsched/natschedtest"
)

// TestWireAPI drives put, get, cancel, pause, resume, trigger and status
// through natsched.api.<verb>.<id>.
func TestWireAPI(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "wire-api", nil)
	d.waitLeader(t)

	t.Run("put text with in", func(t *testing.T) {
		before := time.Now()
		r := ok(t, d.api(t, "put", "wire.text", map[string]any{
			"subject": "natsched.fire.wire", "in": "1h", "text": "héllo",
		}))
		after := time.Now()
		checkSchedule(t, r)
		require.Equal(t, "wire.text", str(t, r, "id"))
		require.Equal(t, "natsched.fire.wire", str(t, r, "subject"))
		require.Equal(t, b64("héllo"), str(t, r, "data"))
		require.Equal(t, "active", str(t, r, "status"))
		at := timeField(t, r, "at")
		// The instance's clock may differ from this host's by the few
		// milliseconds of its server clock estimate.
		require.False(t, at.Before(before.Add(time.Hour).Add(-clockSlack)), "at %s is before acceptance+in (%s)", at, before.Add(time.Hour))
		require.False(t, at.After(after.Add(time.Hour).Add(clockSlack)), "at %s is after acceptance+in (%s)", at, after.Add(time.Hour))
		require.Equal(t, str(t, r, "at"), str(t, r, "next_run"))
		timeField(t, r, "created")
		timeField(t, r, "updated")
	})

	t.Run("put base64 data with at", func(t *testing.T) {
		payload := string([]byte{0, 1, 2, 0xfe, 0xff})
		r := ok(t, d.api(t, "put", "wire.data", map[string]any{
			"subject": "natsched.fire.wire", "at": "2098-12-31T23:30:00.25+01:00", "data": b64(payload),
		}))
		checkSchedule(t, r)
		require.Equal(t, b64(payload), str(t, r, "data"))
		require.Equal(t, "2098-12-31T22:30:00.25Z", str(t, r, "at"), "UTC, sub-second precision kept")
	})

	t.Run("get", func(t *testing.T) {
		r := ok(t, d.api(t, "get", "wire.text", nil))
		checkSchedule(t, r)
		require.Equal(t, "wire.text", str(t, r, "id"))
		require.Equal(t, b64("héllo"), str(t, r, "data"))
		apiError(t, d.api(t, "get", "wire.nope", nil), 404)
	})

	t.Run("pause and resume", func(t *testing.T) {
		rev := num(t, ok(t, d.api(t, "get", "wire.text", nil)), "revision")
		r := ok(t, d.api(t, "pause", "wire.text", nil))
		checkSchedule(t, r)
		require.Equal(t, "paused", str(t, r, "status"))
		require.Equal(t, true, r["paused"])
		require.Greater(t, num(t, r, "revision"), rev)
		require.Equal(t, "paused", str(t, ok(t, d.api(t, "get", "wire.text", nil)), "status"))

		r = ok(t, d.api(t, "resume", "wire.text", nil))
		checkSchedule(t, r)
		require.Equal(t, "active", str(t, r, "status"))
		require.Equal(t, false, r["paused"])
		require.Equal(t, "active", str(t, ok(t, d.api(t, "get", "wire.text", nil)), "status"))

		for _, verb := range []string{"pause", "resume"} {
			apiError(t, d.api(t, verb, "wire.nope", nil), 404)
		}
	})

	t.Run("put with revision is a compare-and-set", func(t *testing.T) {
		cur := num(t, ok(t, d.api(t, "get", "wire.text", nil)), "revision")
		r := ok(t, d.api(t, "put", "wire.text", map[string]any{
			"subject": "natsched.fire.wire", "in": "2h", "text": "v2", "revision": cur,
		}))
		require.Greater(t, num(t, r, "revision"), cur)
		require.Equal(t, b64("v2"), str(t, r, "data"))

		msg := apiError(t, d.api(t, "put", "wire.text", map[string]any{
			"subject": "natsched.fire.wire", "in": "3h", "text": "v3", "revision": cur,
		}), 409)
		require.Contains(t, msg, "revision")
		require.Equal(t, b64("v2"), str(t, ok(t, d.api(t, "get", "wire.text", nil)), "data"), "a stale put changes nothing")

		apiError(t, d.api(t, "put", "wire.absent", map[string]any{
			"subject": "natsched.fire.wire", "in": "1h", "revision": 7,
		}), 409)
		apiError(t, d.api(t, "get", "wire.absent", nil), 404)
	})

	t.Run("get, edit and put back", func(t *testing.T) {
		got := ok(t, d.api(t, "get", "wire.text", nil))
		got["data"] = b64("edited") // state fields and revision go back as they came
		r := ok(t, d.api(t, "put", "wire.text", got))
		require.Equal(t, b64("edited"), str(t, r, "data"))
		require.Greater(t, num(t, r, "revision"), num(t, got, "revision"))
		require.Equal(t, str(t, got, "at"), str(t, r, "at"))
	})

	t.Run("cancel", func(t *testing.T) {
		was := ok(t, d.api(t, "get", "wire.data", nil))
		r := ok(t, d.api(t, "cancel", "wire.data", nil))
		checkSchedule(t, r)
		require.Equal(t, was, r, "cancel replies with the schedule as it was")
		apiError(t, d.api(t, "get", "wire.data", nil), 404)
		apiError(t, d.api(t, "cancel", "wire.data", nil), 404)
	})

	t.Run("trigger", func(t *testing.T) {
		fired := subscribe(t, d.nc, "natsched.fire.trig")
		ok(t, d.api(t, "put", "wire.trig", map[string]any{
			"subject": "natsched.fire.trig", "at": farFuture, "text": "tick",
		}))
		ok(t, d.api(t, "pause", "wire.trig", nil))

		before := time.Now()
		r := ok(t, d.api(t, "trigger", "wire.trig", nil))
		after := time.Now()
		checkSchedule(t, r)
		require.Equal(t, "paused", str(t, r, "status"), "trigger works on a paused schedule and leaves it paused")

		m := next(t, fired, "triggered message")
		require.Equal(t, "tick", string(m.Data))
		require.Equal(t, "wire.trig", m.Header.Get("Natsched-Id"))
		require.Equal(t, "1", m.Header.Get("Natsched-Run"))
		first := m.Header.Get("Nats-Msg-Id")
		require.NotEmpty(t, first)
		planned := parseUTC(t, "Natsched-Planned", m.Header.Get("Natsched-Planned"))
		require.False(t, planned.Before(before.Add(-clockSlack)) || planned.After(after.Add(clockSlack)),
			"planned %s is the moment the trigger was accepted (%s..%s)", planned, before, after)

		got := d.waitSchedule(t, "wire.trig", func(m map[string]any) bool { return num(t, m, "runs") == 1 }, "runs 1")
		require.Equal(t, "paused", str(t, got, "status"))
		require.Equal(t, farFuture, str(t, got, "next_run"), "trigger leaves next_run alone")

		ok(t, d.api(t, "trigger", "wire.trig", nil))
		m = next(t, fired, "second triggered message")
		require.Equal(t, "2", m.Header.Get("Natsched-Run"))
		require.NotEqual(t, first, m.Header.Get("Nats-Msg-Id"))

		apiError(t, d.api(t, "trigger", "wire.nope", nil), 404)
	})

	t.Run("trigger on a done schedule", func(t *testing.T) {
		fired := subscribe(t, d.nc, "natsched.fire.once")
		ok(t, d.api(t, "put", "wire.once", map[string]any{
			"subject": "natsched.fire.once", "in": "10ms", "text": "once",
		}))
		require.Equal(t, "once", string(next(t, fired, "one-shot").Data))
		d.waitSchedule(t, "wire.once", func(m map[string]any) bool { return str(t, m, "status") == "done" }, "done")
		apiError(t, d.api(t, "trigger", "wire.once", nil), 409)
		select {
		case m := <-fired:
			t.Fatalf("a refused trigger fired: %v", m.Header)
		default:
		}
	})

	t.Run("fired message headers", func(t *testing.T) {
		fired := subscribe(t, d.nc, "natsched.fire.hdr")
		r := ok(t, d.api(t, "put", "wire.hdr", map[string]any{
			"subject": "natsched.fire.hdr", "in": "200ms", "text": "payload",
			"header": map[string]any{"X-Trace": []string{"abc"}},
		}))
		require.Equal(t, map[string]any{"X-Trace": []any{"abc"}}, r["header"])
		m := next(t, fired, "fired message")
		require.Equal(t, "payload", string(m.Data))
		require.Equal(t, "abc", m.Header.Get("X-Trace"))
		require.Equal(t, "wire.hdr", m.Header.Get("Natsched-Id"))
		require.Equal(t, str(t, r, "at"), m.Header.Get("Natsched-Planned"), "planned is the schedule's at")
		require.Equal(t, "1", m.Header.Get("Natsched-Run"))
		require.NotEmpty(t, m.Header.Get("Nats-Msg-Id"))
		require.Empty(t, m.Header.Get("Natsched-Type"), "only typed payloads carry a type")
		require.Empty(t, m.Header.Get("Natsched-Jitter"), "no jitter, no header")

		got := d.waitSchedule(t, "wire.hdr", func(m map[string]any) bool { return str(t, m, "status") == "done" }, "done")
		checkSchedule(t, got)
		require.EqualValues(t, 1, num(t, got, "runs"))
		timeField(t, got, "last_run")
	})

	t.Run("status", func(t *testing.T) {
		st := d.status(t)
		require.Equal(t, "wire-api", str(t, st, "instance"))
		require.Equal(t, "wire-api", str(t, st, "leader"))
		// Fired: 2 triggers, a one-shot and the header test, counted once
		// their state is written (just after the messages arrive).
		natschedtest.Eventually(t, fireTimeout, func() bool { return num(t, d.status(t), "fired") >= 4 }, "fired >= 4 (status %v)", st)
		// Pending: wire.text and wire.trig are not done.
		natschedtest.Eventually(t, fireTimeout, func() bool { return num(t, d.status(t), "pending") == 2 }, "pending 2 (status %v)", st)
	})
}

// TestWireList: whole-token prefixes, byte-wise order, the status filter
// and paging.
func TestWireList(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "wire-list", nil)

	all := []string{"billing", "billing.x", "billing.x.y", "billing.A", "billing.a-b", "billing.a_b",
		"billing.a.b", "billing.9", "billingx", "bill", "other.billing"}
	for _, id := range all {
		ok(t, d.api(t, "put", id, map[string]any{"subject": "natsched.fire.list", "at": farFuture}))
	}
	sorted := slices.Clone(all)
	sort.Strings(sorted) // byte-wise

	t.Run("all", func(t *testing.T) {
		page := ok(t, d.api(t, "list", "", nil))
		require.Equal(t, sorted, ids(t, page))
		require.Equal(t, "", str(t, page, "next"))
		// An empty JSON object is the same request.
		require.Equal(t, sorted, ids(t, ok(t, d.api(t, "list", "", map[string]any{}))))
	})

	var billing []string
	for _, id := range sorted {
		if id == "billing" || len(id) > 8 && id[:8] == "billing." {
			billing = append(billing, id)
		}
	}
	t.Run("prefix matches whole tokens", func(t *testing.T) {
		require.Equal(t, billing, ids(t, ok(t, d.api(t, "list", "billing", nil))))
		require.Equal(t, []string{"billing.x", "billing.x.y"}, ids(t, ok(t, d.api(t, "list", "billing.x", nil))))
		require.Empty(t, ids(t, ok(t, d.api(t, "list", "bil", nil))))
		require.Empty(t, ids(t, ok(t, d.api(t, "list", "nothing.here", nil))))
	})

	t.Run("status filter", func(t *testing.T) {
		ok(t, d.api(t, "pause", "billing.x", nil))
		fired := subscribe(t, d.nc, "natsched.fire.list")
		ok(t, d.api(t, "put", "billing.done", map[string]any{"subject": "natsched.fire.list", "in": "1ms"}))
		next(t, fired, "billing.done fired")
		d.waitSchedule(t, "billing.done", func(m map[string]any) bool { return str(t, m, "status") == "done" }, "done")

		require.Equal(t, []string{"billing.x"}, ids(t, ok(t, d.api(t, "list", "billing", map[string]any{"status": "paused"}))))
		require.Equal(t, []string{"billing.done"}, ids(t, ok(t, d.api(t, "list", "billing", map[string]any{"status": "done"}))))
		var active []string
		for _, id := range billing {
			if id != "billing.x" {
				active = append(active, id)
			}
		}
		require.Equal(t, active, ids(t, ok(t, d.api(t, "list", "billing", map[string]any{"status": "active"}))))
		withDone := append(slices.Clone(billing), "billing.done")
		sort.Strings(withDone)
		require.Equal(t, withDone, ids(t, ok(t, d.api(t, "list", "billing", map[string]any{"status": ""}))), "empty status lists done too")

		page := ok(t, d.api(t, "list", "billing", map[string]any{"status": "paused"}))
		items := page["schedules"].([]any)
		require.Equal(t, "paused", str(t, items[0].(map[string]any), "status"))
	})

	t.Run("paging", func(t *testing.T) {
		want := ids(t, ok(t, d.api(t, "list", "billing", nil)))
		var got []string
		after := ""
		for pages := 0; ; pages++ {
			require.Less(t, pages, len(want)+1, "paging does not end")
			req := map[string]any{"limit": 3}
			if after != "" {
				req["after"] = after
			}
			page := ok(t, d.api(t, "list", "billing", req))
			p := ids(t, page)
			require.LessOrEqual(t, len(p), 3)
			got = append(got, p...)
			after = str(t, page, "next")
			if after == "" {
				break
			}
		}
		require.Equal(t, want, got)
	})
}

// TestWireListPaging: 1,000 schedules listed 100 at a time come back
// exactly once each, in byte-wise order, in 10 pages.
func TestWireListPaging(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "wire-paging", nil)

	const n = 1000
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("page.k%d", i) // byte-wise order differs from numeric
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan string)
	for range 16 {
		wg.Go(func() {
			for id := range work {
				m, err := d.nc.Request(apiPrefix+".put."+id,
					[]byte(`{"subject":"natsched.fire.page","at":"`+farFuture+`"}`), reqTimeout)
				switch {
				case err != nil:
					errs <- fmt.Errorf("put %s: %w", id, err)
				case m.Header.Get(hdrErrCode) != "":
					errs <- fmt.Errorf("put %s: %s", id, m.Data)
				}
			}
		})
	}
	for _, id := range want {
		work <- id
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// A neighbour outside the prefix must not show up.
	ok(t, d.api(t, "put", "pagex", map[string]any{"subject": "natsched.fire.page", "at": farFuture}))
	sort.Strings(want)

	var got []string
	after, pages := "", 0
	for {
		req := map[string]any{"limit": 100}
		if after != "" {
			req["after"] = after
		}
		page := ok(t, d.api(t, "list", "page", req))
		pages++
		p := ids(t, page)
		require.Len(t, p, 100, "page %d", pages)
		got = append(got, p...)
		after = str(t, page, "next")
		if after == "" {
			break
		}
		require.Less(t, pages, 10, "a 10th page with a next cursor")
	}
	require.Equal(t, 10, pages)
	require.Equal(t, want, got, "every schedule exactly once, in byte-wise order")
}

// TestWireIntake: durable intake through JetStream with headers.
func TestWireIntake(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "intake", nil)

	t.Run("@in with extra headers", func(t *testing.T) {
		fired := subscribe(t, d.nc, "natsched.fire.intake")
		before := time.Now()
		d.publishIntake(t, "intake.one", nats.Header{
			"Natsched-Schedule": {"@in 1s"},
			"Natsched-Target":   {"natsched.fire.intake"},
			"X-Foo":             {"bar"},
		}, "hi")
		after := time.Now()

		got := d.waitSchedule(t, "intake.one", func(map[string]any) bool { return true }, "exists")
		checkSchedule(t, got)
		require.Equal(t, "natsched.fire.intake", str(t, got, "subject"))
		require.Equal(t, b64("hi"), str(t, got, "data"))
		require.Equal(t, map[string]any{"X-Foo": []any{"bar"}}, got["header"], "only non-natsched headers are carried")
		at := timeField(t, got, "at")
		require.False(t, at.Before(before.Add(time.Second-clockSlack)) || at.After(after.Add(time.Second+clockSlack)),
			"at %s is the JetStream timestamp + 1s (published %s..%s)", at, before, after)

		m := next(t, fired, "intake one-shot")
		require.Equal(t, "hi", string(m.Data))
		require.Equal(t, "bar", m.Header.Get("X-Foo"))
		require.Equal(t, "intake.one", m.Header.Get("Natsched-Id"))
		require.Equal(t, str(t, got, "at"), m.Header.Get("Natsched-Planned"))
		require.Equal(t, "1", m.Header.Get("Natsched-Run"))
		require.NotEmpty(t, m.Header.Get("Nats-Msg-Id"))
		require.Empty(t, m.Header.Get("Natsched-Target"), "intake headers are not carried")
		require.Empty(t, m.Header.Get("Natsched-Schedule"), "intake headers are not carried")
	})

	t.Run("@at", func(t *testing.T) {
		fired := subscribe(t, d.nc, "natsched.fire.at")
		at := time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)
		d.publishIntake(t, "intake.at", nats.Header{
			"Natsched-Schedule": {"@at " + at},
			"Natsched-Target":   {"natsched.fire.at"},
		}, "at")
		got := d.waitSchedule(t, "intake.at", func(map[string]any) bool { return true }, "exists")
		require.Equal(t, at, str(t, got, "at"))
		m := next(t, fired, "@at fire")
		require.Equal(t, at, m.Header.Get("Natsched-Planned"))
		require.Equal(t, "at", string(m.Data))
	})

	t.Run("@every with max runs", func(t *testing.T) {
		fired := subscribe(t, d.nc, "natsched.fire.every")
		d.publishIntake(t, "intake.every", nats.Header{
			"Natsched-Schedule": {"@every 1s"},
			"Natsched-Target":   {"natsched.fire.every"},
			"Natsched-Max-Runs": {"2"},
		}, "tick")
		m1 := next(t, fired, "first @every fire")
		m2 := next(t, fired, "second @every fire")
		require.Equal(t, "1", m1.Header.Get("Natsched-Run"))
		require.Equal(t, "2", m2.Header.Get("Natsched-Run"))
		p1 := parseUTC(t, "planned", m1.Header.Get("Natsched-Planned"))
		p2 := parseUTC(t, "planned", m2.Header.Get("Natsched-Planned"))
		require.Equal(t, time.Second, p2.Sub(p1))
		got := d.waitSchedule(t, "intake.every", func(m map[string]any) bool { return str(t, m, "status") == "done" }, "done")
		require.EqualValues(t, 2, num(t, got, "runs"))
		require.EqualValues(t, 2, num(t, got, "max_runs"))
		require.Equal(t, "1s", str(t, got, "every"))
	})

	t.Run("cron with time zone, then cancel", func(t *testing.T) {
		fired := subscribe(t, d.nc, "natsched.fire.cron")
		d.publishIntake(t, "intake.cron", nats.Header{
			"Natsched-Schedule":  {"* * * * * *"}, // six fields: every second
			"Natsched-Target":    {"natsched.fire.cron"},
			"Natsched-Time-Zone": {"America/New_York"},
		}, "cron")
		got := d.waitSchedule(t, "intake.cron", func(map[string]any) bool { return true }, "exists")
		require.Equal(t, "* * * * * *", str(t, got, "cron"))
		require.Equal(t, "America/New_York", str(t, got, "tz"))
		m := next(t, fired, "cron fire")
		planned := parseUTC(t, "planned", m.Header.Get("Natsched-Planned"))
		require.Zero(t, planned.Nanosecond(), "six-field cron fires on whole seconds")
		require.Equal(t, "cron", string(m.Data))

		d.publishIntake(t, "intake.cron", nats.Header{"Natsched-Cancel": {"true"}, "Natsched-Schedule": {"not even a cron"}}, "")
		d.waitGone(t, "intake.cron")
	})

	t.Run("intake replaces an existing schedule", func(t *testing.T) {
		old := ok(t, d.api(t, "put", "intake.rep", map[string]any{"subject": "natsched.fire.old", "at": farFuture, "text": "old"}))
		fired := subscribe(t, d.nc, "natsched.fire.new")
		d.publishIntake(t, "intake.rep", nats.Header{
			"Natsched-Schedule": {"@in 300ms"},
			"Natsched-Target":   {"natsched.fire.new"},
		}, "new")
		got := d.waitSchedule(t, "intake.rep", func(m map[string]any) bool { return str(t, m, "subject") == "natsched.fire.new" }, "replaced")
		require.Greater(t, num(t, got, "revision"), num(t, old, "revision"))
		require.Equal(t, b64("new"), str(t, got, "data"))
		require.Equal(t, "new", string(next(t, fired, "replacement fire").Data))
	})

	// Header names are case-insensitive (the scheduler reads
	// natsched-target, natsched-time-zone, ... in any case, and tells Nats-
	// and Natsched- headers apart in any case): a client that spells them
	// in lower case must get the same schedule, or the same cancel.
	t.Run("lower-case header names", func(t *testing.T) {
		fired := subscribe(t, d.nc, "natsched.fire.lower")
		d.publishIntake(t, "intake.lower", nats.Header{
			"natsched-schedule": {"@in 10ms"}, "natsched-target": {"natsched.fire.lower"},
		}, "lower")
		require.Equal(t, "lower", string(next(t, fired, "fire of a lower-case intake").Data))

		ok(t, d.api(t, "put", "intake.lowercancel", map[string]any{"subject": "natsched.fire.lower", "at": farFuture}))
		d.publishIntake(t, "intake.lowercancel", nats.Header{"natsched-cancel": {"true"}}, "")
		d.waitGone(t, "intake.lowercancel")
	})

	t.Run("intake stream drained", func(t *testing.T) { d.intakeEmpty(t) })
}

// TestWireIntakeRejects: invalid intake messages go to natsched.rejected.<id>
// with Natsched-Error naming the header, the body and the non-Nats
// headers; the work queue never blocks.
func TestWireIntakeRejects(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "intake-rejects", nil)

	valid := func(kv ...string) nats.Header {
		h := nats.Header{"Natsched-Schedule": {"@in 1h"}, "Natsched-Target": {"natsched.fire.rej"}}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(h, kv[i])
			} else {
				h[kv[i]] = []string{kv[i+1]}
			}
		}
		return h
	}
	cases := []struct {
		name, id string
		h        nats.Header
		field    string // Natsched-Error starts with this and ": "
	}{
		{"bad cron", "rej.cron", valid("Natsched-Schedule", "61 * * * *"), "Natsched-Schedule"},
		{"cron with 8 fields", "rej.cron8", valid("Natsched-Schedule", "* * * * * * * *"), "Natsched-Schedule"},
		{"missing target", "rej.target", valid("Natsched-Target", ""), "Natsched-Target"},
		{"missing schedule", "rej.sched", valid("Natsched-Schedule", ""), "Natsched-Schedule"},
		{"unknown zone", "rej.tz", valid("Natsched-Schedule", "0 9 * * *", "Natsched-Time-Zone", "Mars/Olympus_Mons"), "Natsched-Time-Zone"},
		{"bad @in", "rej.in", valid("Natsched-Schedule", "@in soon"), "Natsched-Schedule"},
		{"negative @in", "rej.negin", valid("Natsched-Schedule", "@in -5s"), "Natsched-Schedule"},
		{"bad @at", "rej.at", valid("Natsched-Schedule", "@at tomorrow"), "Natsched-Schedule"},
		{"bad @every", "rej.every", valid("Natsched-Schedule", "@every 0s"), "Natsched-Schedule"},
		{"unknown natsched header", "rej.foo", valid("Natsched-Foo", "1"), "Natsched-Foo"},
		{"wildcard target", "rej.wild", valid("Natsched-Target", "a.*"), "Natsched-Target"},
		{"full wildcard target", "rej.wild2", valid("Natsched-Target", "natsched.fire.>"), "Natsched-Target"},
		{"target no stream captures", "rej.nostream", valid("Natsched-Target", "nostream.here"), "Natsched-Target"},
		{"bad max runs", "rej.max", valid("Natsched-Schedule", "@every 1m", "Natsched-Max-Runs", "-1"), "Natsched-Max-Runs"},
		{"bad start", "rej.start", valid("Natsched-Schedule", "@every 1m", "Natsched-Start", "yesterday"), "Natsched-Start"},
		{"end before start", "rej.end", valid("Natsched-Schedule", "@every 1m", "Natsched-Start", "2030-01-02T00:00:00Z", "Natsched-End", "2030-01-01T00:00:00Z"), "Natsched-End"},
		{"bad misfire", "rej.misfire", valid("Natsched-Schedule", "@every 1m", "Natsched-Misfire", "sometimes"), "Natsched-Misfire"},
		{"bad jitter", "rej.jitter", valid("Natsched-Jitter", "lots"), "Natsched-Jitter"},
		{"bad cancel", "rej.cancel", valid("Natsched-Cancel", "maybe"), "Natsched-Cancel"},
		{"invalid id", "rej.a$b", valid(), "id"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rejected := subscribe(t, d.nc, rejectedPrefix+"."+c.id)
			h := nats.Header{}
			for k, vs := range c.h {
				h[k] = slices.Clone(vs)
			}
			h.Set("X-Foo", "bar")
			h.Set("Nats-Msg-Id", "rej-"+strconv.Itoa(i)) // JetStream's own: not carried
			data := "body of " + c.name
			d.publishIntake(t, c.id, h, data)

			m := next(t, rejected, "rejected message")
			e := m.Header.Get("Natsched-Error")
			require.Regexp(t, "^(?i)"+regexp.QuoteMeta(c.field)+": ", e, "Natsched-Error names the header")
			require.Equal(t, data, string(m.Data), "the body as received")
			require.Equal(t, "bar", m.Header.Get("X-Foo"), "other headers are kept")
			require.Empty(t, m.Header.Get("Nats-Msg-Id"), "Nats- headers are not carried")
			for k, vs := range c.h {
				require.Equal(t, vs, m.Header.Values(k), "header %s kept", k)
			}
			if c.id != "rej.a$b" {
				apiError(t, d.api(t, "get", c.id, nil), 404)
			}
		})
	}

	t.Run("never blocks", func(t *testing.T) {
		d.intakeEmpty(t)
		fired := subscribe(t, d.nc, "natsched.fire.rej")
		d.publishIntake(t, "rej.after", valid("Natsched-Schedule", "@in 10ms"), "still works")
		require.Equal(t, "still works", string(next(t, fired, "fire after rejects").Data))
		d.intakeEmpty(t)
	})
}

// TestWireAllowRules: with allow rules, a target outside the ID's rules is a
// 403 on put and a rejection on intake.
func TestWireAllowRules(t *testing.T) {
	t.Parallel()
	a, err := jetstream.ParseAllow("a.>=a.>")
	require.NoError(t, err)
	b, err := jetstream.ParseAllow("b.>=b.>")
	require.NoError(t, err)
	d := startDaemon(t, "allow", nil, jetstream.WithAllow(a, b))
	d.createStream(t, "ALLOW_A", "a.>")
	d.createStream(t, "ALLOW_B", "b.>")

	r := ok(t, d.api(t, "put", "a.x", map[string]any{"subject": "a.target", "at": farFuture}))
	require.Equal(t, "a.target", str(t, r, "subject"))
	ok(t, d.api(t, "put", "b.y", map[string]any{"subject": "b.target", "at": farFuture}))

	msg := apiError(t, d.api(t, "put", "a.x", map[string]any{"subject": "b.target", "at": farFuture}), 403)
	require.Contains(t, msg, "b.target")
	require.Equal(t, "a.target", str(t, ok(t, d.api(t, "get", "a.x", nil)), "subject"), "a refused put changes nothing")
	apiError(t, d.api(t, "put", "c.z", map[string]any{"subject": "a.target", "at": farFuture}), 403)
	apiError(t, d.api(t, "put", "a.y", map[string]any{"subject": "natsched.fire.a", "at": farFuture}), 403)
	apiError(t, d.api(t, "get", "c.z", nil), 404)

	rejected := subscribe(t, d.nc, rejectedPrefix+".a.x")
	d.publishIntake(t, "a.x", nats.Header{
		"Natsched-Schedule": {"@in 1s"}, "Natsched-Target": {"b.target"}, "X-Foo": {"bar"},
	}, "sneaky")
	m := next(t, rejected, "rejected intake")
	refused := m.Header.Get("Natsched-Error")
	require.Contains(t, refused, "b.target")
	require.Equal(t, "sneaky", string(m.Data))
	require.Equal(t, "bar", m.Header.Get("X-Foo"))
	require.Equal(t, "a.target", str(t, ok(t, d.api(t, "get", "a.x", nil)), "subject"), "a rejected intake changes nothing")
	t.Run("the refusal names the intake header", func(t *testing.T) {
		require.Regexp(t, "^Natsched-Target: ", refused)
	})

	// The allowed intake goes through.
	fired := subscribe(t, d.nc, "a.target")
	d.publishIntake(t, "a.x", nats.Header{"Natsched-Schedule": {"@in 10ms"}, "Natsched-Target": {"a.target"}}, "fine")
	require.Equal(t, "fine", string(next(t, fired, "allowed intake fire").Data))
	d.intakeEmpty(t)
}
