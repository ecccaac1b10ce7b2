package integration_test

// Every input from the wire is hostile until validated: each bad request
// gets the right 4xx with a message naming the field, the daemon keeps
// serving, and no stored schedule changes.

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched/natschedtest"
)

// hostileMaxPayload is the server's max_payload in the hostile tests.
const hostileMaxPayload = 64 * 1024

const (
	hostilePutNew  = apiPrefix + ".put.hostile.new"  // a schedule that must not come to exist
	hostilePutKeep = apiPrefix + ".put.hostile.keep" // the schedule that must not change
)

// hostileBody is a valid put body with kv pairs (field, value) replaced;
// a value of hostileDel removes the field.
func hostileBody(kv ...any) map[string]any {
	m := map[string]any{"subject": "natsched.fire.hostile", "at": farFuture, "text": "x"}
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == hostileDel {
			delete(m, k)
		} else {
			m[k] = kv[i+1]
		}
	}
	return m
}

type hostileDeleted struct{}

var hostileDel = hostileDeleted{}

type hostileCase struct {
	name     string
	subject  string // default hostilePutNew
	body     any
	code     int      // default 400
	fields   []string // a 400's message starts with one of these and ": "
	contains string   // the message contains this
}

func hostileCases() []hostileCase {
	long := strings.Repeat("z", 40*1024) // echoed twice, it no longer fits a reply
	id300 := strings.Repeat("a", 300)
	bigID := "big." + strings.Repeat("d", 196)
	// Base64 data that leaves the request just under max_payload while
	// the stored schedule (state fields, a 200-character ID) exceeds it.
	bigData := strings.Repeat("A", hostileMaxPayload-200)
	return []hostileCase{
		// Not a JSON object.
		{name: "garbage JSON", body: `{not json`, fields: []string{"body"}},
		{name: "JSON array", body: `[{"subject":"natsched.fire.hostile","at":"` + farFuture + `"}]`, fields: []string{"body"}},
		{name: "empty body", body: nil, fields: []string{"body"}},
		{name: "white space body", body: " \n\t ", fields: []string{"body"}},
		{name: "JSON null", body: `null`, fields: []string{"body"}},
		{name: "JSON string", body: `"hello"`, fields: []string{"body"}},
		{name: "trailing garbage", body: `{"subject":"natsched.fire.hostile","at":"` + farFuture + `"} xyz`, fields: []string{"body"}},
		{name: "two objects", body: `{"subject":"natsched.fire.hostile","at":"` + farFuture + `"}{}`, fields: []string{"body"}},
		{name: "truncated object", subject: hostilePutKeep, body: `{"subject":"natsched.fire.hostile","at":"` + farFuture, fields: []string{"body"}},
		// Unknown fields.
		{name: "unknown field cronn", subject: hostilePutKeep, body: hostileBody("at", hostileDel, "cronn", "0 9 * * *"), fields: []string{"cronn"}},
		{name: "unknown field with the state fields", body: hostileBody("status", "active", "runs", 3, "bogus", true), fields: []string{"bogus"}},
		// Wrong types.
		{name: "at is a number", subject: hostilePutKeep, body: hostileBody("at", 5), fields: []string{"at"}},
		{name: "max_runs is a string", body: hostileBody("max_runs", "3"), fields: []string{"max_runs"}},
		{name: "max_runs is a fraction", body: hostileBody("max_runs", 1.5), fields: []string{"max_runs"}},
		{name: "max_runs overflows", body: `{"subject":"natsched.fire.hostile","at":"` + farFuture + `","max_runs":99999999999999999999}`, fields: []string{"max_runs"}},
		{name: "max_runs 1e400", body: `{"subject":"natsched.fire.hostile","at":"` + farFuture + `","max_runs":1e400}`, fields: []string{"max_runs"}},
		{name: "paused is a string", subject: hostilePutKeep, body: hostileBody("paused", "yes"), fields: []string{"paused"}},
		{name: "header is a list", body: hostileBody("header", []any{}), fields: []string{"header"}},
		{name: "header value is a number", body: hostileBody("header", map[string]any{"X-A": 5}), fields: []string{"header"}},
		{name: "every is a number", body: hostileBody("at", hostileDel, "every", 10), fields: []string{"every"}},
		{name: "subject is a number", body: hostileBody("subject", 42), fields: []string{"subject"}},
		{name: "data is a number", body: hostileBody("text", hostileDel, "data", 12), fields: []string{"data"}},
		{name: "type is not a name", body: hostileBody("type", "a b"), fields: []string{"type"}},
		// Durations.
		{name: "in in words", body: hostileBody("at", hostileDel, "in", "5 minutes"), fields: []string{"in"}},
		{name: "negative in", body: hostileBody("at", hostileDel, "in", "-1s"), fields: []string{"in"}},
		{name: "negative every", body: hostileBody("at", hostileDel, "every", "-1s"), fields: []string{"every"}},
		{name: "every below 1ms", body: hostileBody("at", hostileDel, "every", "500us"), fields: []string{"every"}},
		{name: "bad jitter", body: hostileBody("jitter", "lots"), fields: []string{"jitter"}},
		{name: "negative catchup", body: hostileBody("catchup", "-1h"), fields: []string{"catchup"}},
		// Times and kinds.
		{name: "at in words", body: hostileBody("at", "tomorrow"), fields: []string{"at"}},
		{name: "at month 13", body: hostileBody("at", "2026-13-01T00:00:00Z"), fields: []string{"at"}},
		{name: "at year 10000", body: hostileBody("at", "10000-01-01T00:00:00Z"), fields: []string{"at"}},
		{name: "at and in", body: hostileBody("in", "1h"), fields: []string{"at", "in"}},
		{name: "at and cron", body: hostileBody("cron", "0 9 * * *"), fields: []string{"at", "cron"}},
		{name: "no time at all", body: hostileBody("at", hostileDel), fields: []string{"at", "in", "every", "cron"}},
		// Cron expressions.
		{name: "cron with 8 fields", body: hostileBody("at", hostileDel, "cron", "* * * * * * * *"), fields: []string{"cron"}, contains: "8"},
		{name: "cron minute 61", subject: hostilePutKeep, body: hostileBody("at", hostileDel, "cron", "61 * * * *"), fields: []string{"cron"}},
		{name: "cron @every", body: hostileBody("at", hostileDel, "cron", "@every 5m"), fields: []string{"cron"}},
		{name: "cron that never fires", body: hostileBody("at", hostileDel, "cron", "0 0 30 2 *"), fields: []string{"cron"}},
		{name: "cron step 0", body: hostileBody("at", hostileDel, "cron", "*/0 * * * *"), fields: []string{"cron"}},
		{name: "cron #6", body: hostileBody("at", hostileDel, "cron", "0 0 * * 1#6"), fields: []string{"cron"}},
		{name: "cron backwards range", body: hostileBody("at", hostileDel, "cron", "0 0 * * 5-1"), fields: []string{"cron"}},
		{name: "cron very long", body: hostileBody("at", hostileDel, "cron", strings.Repeat("1,", 5000)+"1 * * * *"), fields: []string{"cron"}},
		{name: "cron empty fields", body: hostileBody("at", hostileDel, "cron", "   "), fields: []string{"cron", "at"}},
		// Zones and windows.
		{name: "unknown zone", body: hostileBody("at", hostileDel, "cron", "0 9 * * *", "tz", "Mars/Olympus_Mons"), fields: []string{"tz"}},
		{name: "zone Local", body: hostileBody("at", hostileDel, "cron", "0 9 * * *", "tz", "Local"), fields: []string{"tz"}},
		{name: "zone path", body: hostileBody("at", hostileDel, "cron", "0 9 * * *", "tz", "../../../etc/passwd"), fields: []string{"tz"}},
		{name: "end before start", body: hostileBody("at", hostileDel, "every", "1m", "start", "2030-01-02T00:00:00Z", "end", "2030-01-01T00:00:00Z"), fields: []string{"end"}},
		{name: "start on a one-shot", body: hostileBody("start", "2030-01-02T00:00:00Z"), fields: []string{"start"}},
		{name: "bad misfire", body: hostileBody("at", hostileDel, "every", "1m", "misfire", "sometimes"), fields: []string{"misfire"}},
		{name: "negative max_runs", body: hostileBody("at", hostileDel, "every", "1m", "max_runs", -1), fields: []string{"max_runs"}},
		// Target subjects.
		{name: "wildcard subject *", subject: hostilePutKeep, body: hostileBody("subject", "a.*"), fields: []string{"subject"}},
		{name: "wildcard subject >", body: hostileBody("subject", "a.>"), fields: []string{"subject"}},
		{name: "spaced subject", body: hostileBody("subject", "natsched.fire.a b"), fields: []string{"subject"}},
		{name: "empty subject token", body: hostileBody("subject", "a..b"), fields: []string{"subject"}},
		{name: "leading dot subject", body: hostileBody("subject", ".a"), fields: []string{"subject"}},
		{name: "control character in subject", body: hostileBody("subject", "natsched.fire.a\x00b"), fields: []string{"subject"}},
		{name: "missing subject", body: hostileBody("subject", hostileDel), fields: []string{"subject"}},
		{name: "no stream captures the subject", body: hostileBody("subject", "nostream.here"), fields: []string{"subject"}, contains: "nostream.here"},
		// IDs.
		{name: "id with $ in the subject", subject: apiPrefix + ".put.a$b", body: hostileBody(), fields: []string{"id"}},
		{name: "id %41 in the subject", subject: apiPrefix + ".put.%41", body: hostileBody(), fields: []string{"id"}},
		{name: "id with a wildcard in the subject", subject: apiPrefix + ".put.a.*", body: hostileBody(), fields: []string{"id"}},
		{name: "300-character id", subject: apiPrefix + ".put." + id300, body: hostileBody(), fields: []string{"id"}},
		{name: "id mismatch", body: hostileBody("id", "hostile.other"), fields: []string{"id"}},
		{name: "id mismatch on an existing schedule", subject: hostilePutKeep, body: hostileBody("id", "hostile.new"), fields: []string{"id"}},
		{name: "get %41", subject: apiPrefix + ".get.%41", fields: []string{"id"}},
		{name: "get with a wildcard", subject: apiPrefix + ".get.a.>", fields: []string{"id"}},
		{name: "cancel a$b", subject: apiPrefix + ".cancel.a$b", fields: []string{"id"}},
		{name: "pause a$b", subject: apiPrefix + ".pause.a$b", fields: []string{"id"}},
		{name: "resume a$b", subject: apiPrefix + ".resume.a$b", fields: []string{"id"}},
		{name: "trigger 300-character id", subject: apiPrefix + ".trigger." + id300, fields: []string{"id"}},
		// Payloads.
		{name: "oversize data", subject: apiPrefix + ".put." + bigID, body: hostileBody("text", hostileDel, "data", bigData), code: 413},
		{name: "oversize text", body: hostileBody("text", strings.Repeat("t", 60*1024)), code: 413},
		{name: "text and data", subject: hostilePutKeep, body: hostileBody("data", b64("y")), fields: []string{"text", "data"}},
		{name: "invalid base64", body: hostileBody("text", hostileDel, "data", "!!!"), fields: []string{"data"}},
		{name: "URL-safe base64", body: hostileBody("text", hostileDel, "data", "-_-_"), fields: []string{"data"}},
		// Headers.
		{name: "reserved header Nats-Msg-Id", subject: hostilePutKeep, body: hostileBody("header", map[string]any{"Nats-Msg-Id": []string{"x"}}), fields: []string{"header"}},
		{name: "reserved header Natsched-Id", body: hostileBody("header", map[string]any{"Natsched-Id": []string{"x"}}), fields: []string{"header"}},
		{name: "reserved header in lower case", body: hostileBody("header", map[string]any{"nats-expected-stream": []string{"x"}}), fields: []string{"header"}},
		{name: "header value with a newline", body: hostileBody("header", map[string]any{"X-A": []string{"a\r\nNats-Msg-Id: evil"}}), fields: []string{"header"}},
		{name: "header name with a space", body: hostileBody("header", map[string]any{"X A": []string{"v"}}), fields: []string{"header"}},
		{name: "header name with a colon", body: hostileBody("header", map[string]any{"X:A": []string{"v"}}), fields: []string{"header"}},
		// Revisions.
		{name: "revision is a string", subject: hostilePutKeep, body: hostileBody("revision", "3"), fields: []string{"revision"}},
		{name: "negative revision", body: hostileBody("revision", -1), fields: []string{"revision"}},
		{name: "stale revision", subject: hostilePutKeep, body: hostileBody("revision", 1), code: 409},
		// List bodies and prefixes.
		{name: "list limit is a string", subject: apiPrefix + ".list", body: `{"limit":"x"}`, fields: []string{"limit"}},
		{name: "list bogus status", subject: apiPrefix + ".list", body: `{"status":"bogus"}`, fields: []string{"status"}},
		{name: "list unknown field", subject: apiPrefix + ".list", body: `{"bogus":1}`, fields: []string{"bogus"}},
		{name: "list negative limit", subject: apiPrefix + ".list.hostile", body: `{"limit":-1}`, fields: []string{"limit"}},
		{name: "list bad cursor", subject: apiPrefix + ".list", body: `{"after":"a b"}`, fields: []string{"after"}},
		{name: "list JSON array", subject: apiPrefix + ".list", body: `[]`, fields: []string{"body"}},
		{name: "list garbage", subject: apiPrefix + ".list", body: `{"limit":`, fields: []string{"body"}},
		{name: "list trailing garbage", subject: apiPrefix + ".list", body: `{} x`, fields: []string{"body"}},
		{name: "list bad prefix", subject: apiPrefix + ".list.a$b", fields: []string{"prefix"}},
		// Values the reply echoes back. A reply that quotes a 40 KiB value
		// in both its header and its body exceeds max_payload and is never
		// sent: the client times out.
		{name: "unknown field with a 40 KiB name", body: `{"subject":"natsched.fire.hostile","at":"` + farFuture + `","` + long + `":1}`},
		{name: "40 KiB id in the body", body: hostileBody("id", long), fields: []string{"id"}},
		{name: "40 KiB duration", body: hostileBody("at", hostileDel, "every", long), fields: []string{"every"}},
		{name: "40 KiB time", body: hostileBody("at", long), fields: []string{"at"}},
		{name: "list unknown field with a 40 KiB name", subject: apiPrefix + ".list", body: `{"` + long + `":1}`},
		// A field name with a line break: the header cannot carry it as
		// the body does.
		{name: "unknown field with a line break", subject: hostilePutKeep,
			body: `{"subject":"natsched.fire.hostile","at":"` + farFuture + `","x\r\nNats-Service-Error-Code: 200":1}`},
	}
}

// TestHostilePut: at least 30 hostile requests, each answered with the
// right 4xx naming the field, none a 500 or a timeout; after each the
// daemon still answers and an existing schedule is byte-for-byte the same.
func TestHostilePut(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "hostile", []natschedtest.Option{natschedtest.WithMaxPayload(hostileMaxPayload)})

	for range 2 { // twice, so that revision 1 is stale
		ok(t, d.api(t, "put", "hostile.keep", map[string]any{
			"subject": "natsched.fire.hostile", "at": farFuture, "text": "keep me",
			"header": map[string]any{"X-Trace": []string{"abc"}},
		}))
	}
	keep := d.api(t, "get", "hostile.keep", nil)
	ok(t, keep)
	keepRev := num(t, decode(t, keep.Data), "revision")
	require.Greater(t, keepRev, int64(1), "the stale-revision case needs a revision above 1")

	cases := hostileCases()
	require.GreaterOrEqual(t, len(cases), 30)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			subject := c.subject
			if subject == "" {
				subject = hostilePutNew
			}
			b := body(t, c.body)
			require.Less(t, len(b), hostileMaxPayload, "the request itself must fit")
			code := c.code
			if code == 0 {
				code = 400
			}
			msg := apiError(t, request(t, d.nc, subject, b), code, c.fields...)
			if c.contains != "" {
				require.Contains(t, msg, c.contains)
			}

			// The daemon keeps serving, and nothing stored changed.
			ok(t, d.api(t, "status", "", nil))
			got := d.api(t, "get", "hostile.keep", nil)
			require.Equal(t, string(keep.Data), string(got.Data), "hostile.keep changed")
			apiError(t, d.api(t, "get", "hostile.new", nil), 404)
		})
	}

	// The same echo through durable intake: the rejected message carries
	// the original headers and an error quoting the bad value.
	t.Run("intake with a 40 KiB bad header value", func(t *testing.T) {
		rejected := subscribe(t, d.nc, rejectedPrefix+".hostile.intake")
		d.publishIntake(t, "hostile.intake", nats.Header{
			"Natsched-Schedule": {"@every 1m"}, "Natsched-Target": {"natsched.fire.hostile"},
			"Natsched-Start": {strings.Repeat("9", 40*1024)},
		}, "x")
		m := next(t, rejected, "rejected message")
		require.Regexp(t, "^Natsched-Start: ", m.Header.Get("Natsched-Error"))
	})

	// Sanity: the keep schedule can still be changed by a valid put with
	// its current revision, so the cases above were refused for what they
	// are.
	r := ok(t, d.api(t, "put", "hostile.keep", map[string]any{
		"subject": "natsched.fire.hostile", "at": farFuture, "text": "changed", "revision": keepRev,
	}))
	require.Greater(t, num(t, r, "revision"), keepRev)
}

// TestHostileFlood: a flood of concurrent bad requests is answered, every
// one with a 400, and leaves stored schedules alone.
func TestHostileFlood(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "flood", nil)
	ok(t, d.api(t, "put", "flood.keep", map[string]any{"subject": "natsched.fire.flood", "at": farFuture}))
	keep := d.api(t, "get", "flood.keep", nil)

	bodies := [][]byte{
		[]byte(`{not json`),
		[]byte(`{"subject":"a.*","at":"` + farFuture + `"}`),
		[]byte(`{"subject":"natsched.fire.flood","cron":"61 * * * *"}`),
		[]byte(`{"subject":"natsched.fire.flood","at":"` + farFuture + `","cronn":"x"}`),
	}
	// One after the other (the race detector catches apiRaceBug most
	// reliably so), then many at once.
	for i := range 300 {
		apiError(t, request(t, d.nc, apiPrefix+".put.flood.keep", bodies[i%len(bodies)]), 400)
	}
	const n = 800
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 32 {
		wg.Go(func() {
			for i := w; i < n; i += 32 {
				b := bodies[i%len(bodies)]
				m, err := d.nc.Request(apiPrefix+".put.flood.keep", b, reqTimeout)
				switch {
				case err != nil:
					errs <- fmt.Errorf("request %d: %w", i, err)
				case m.Header.Get(hdrErrCode) != "400":
					errs <- fmt.Errorf("request %d (%s): %s %s", i, b, m.Header.Get(hdrErrCode), m.Data)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	ok(t, d.api(t, "status", "", nil))
	got := d.api(t, "get", "flood.keep", nil)
	require.True(t, bytes.Equal(keep.Data, got.Data), "flood.keep changed:\n%s\n%s", keep.Data, got.Data)
}
