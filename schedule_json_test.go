package natsched_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
)

// sjAccepted is the acceptance time handed to ParseSchedule.
var sjAccepted = time.Date(2026, 3, 1, 12, 0, 0, 500_000_000, time.UTC)

// sjU is a UTC instant.
func sjU(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
	return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
}

// sjParse parses body with sjAccepted and requires success.
func sjParse(t testing.TB, body string) *natsched.Schedule {
	t.Helper()
	s, err := natsched.ParseSchedule([]byte(body), sjAccepted)
	require.NoError(t, err, "body %s", body)
	require.NotNil(t, s, "ParseSchedule(%s) returned a nil schedule and no error", body)
	return s
}

// sjUnmarshal decodes a stored value with UnmarshalJSON.
func sjUnmarshal(t testing.TB, b []byte) (*natsched.Schedule, error) {
	t.Helper()
	var s natsched.Schedule
	err := s.UnmarshalJSON(b)
	return &s, err
}

// sjRequireFieldError checks the error contract: ErrInvalid, a *FieldError
// for field, a message "field: ...".
func sjRequireFieldError(t testing.TB, err error, fields ...string) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, natsched.ErrInvalid)
	var fe *natsched.FieldError
	require.True(t, errors.As(err, &fe), "%T is not a *FieldError: %v", err, err)
	require.Contains(t, fields, fe.Field, "error %q", err.Error())
	require.True(t, strings.HasPrefix(err.Error(), fe.Field+": "), "message %q does not start with %q", err.Error(), fe.Field+": ")
	require.NotEmpty(t, strings.TrimPrefix(err.Error(), fe.Field+": "), "no reason in %q", err.Error())
}

// sjMarshalMap marshals s and decodes the result into a map.
func sjMarshalMap(t testing.TB, s *natsched.Schedule) (map[string]any, []byte) {
	t.Helper()
	b, err := s.MarshalJSON()
	require.NoError(t, err)
	require.True(t, json.Valid(b), "invalid JSON %s", b)
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&m))
	return m, b
}

// sjFull is a schedule with every field set, state included.
func sjFull() *natsched.Schedule {
	return &natsched.Schedule{
		ID:      "billing.invoice.42",
		Subject: "billing.reminders",
		Type:    "billing.Invoice",
		Cron:    "0 0 9 * * MON-FRI",
		TZ:      "Europe/Berlin",
		Start:   sjU(2026, 1, 1, 0, 0, 0, 0),
		End:     sjU(2027, 1, 1, 0, 0, 0, 123),
		MaxRuns: 10,
		Misfire: natsched.MisfireAll,
		Catchup: 90 * time.Minute,
		Jitter:  2500 * time.Millisecond,
		Paused:  true,
		Header:  nats.Header{"X-Trace": {"abc", "def"}, "x-lower": {"v"}},
		Data:    []byte("hello"),

		Status:     natsched.StatusPaused,
		NextRun:    sjU(2026, 11, 27, 8, 0, 0, 0),
		LastRun:    sjU(2026, 11, 26, 8, 0, 0, 250_000_000),
		Runs:       3,
		Created:    sjU(2025, 12, 1, 10, 0, 0, 1),
		Updated:    sjU(2025, 12, 2, 10, 0, 0, 999_999_999),
		Revision:   17,
		LastError:  "nats: no responders",
		Generation: 4,
		Anchor:     sjU(2026, 1, 1, 0, 0, 0, 0),
		Triggers:   []time.Time{sjU(2026, 11, 27, 7, 0, 0, 5), sjU(2026, 11, 27, 7, 0, 1, 0)},
	}
}

// sjRequireSameDefinition compares the definition fields of two schedules
// (times with Equal, an empty header or payload as absent).
func sjRequireSameDefinition(t testing.TB, want, got *natsched.Schedule) {
	t.Helper()
	require.Equal(t, want.ID, got.ID, "id")
	require.Equal(t, want.Subject, got.Subject, "subject")
	require.Equal(t, want.Type, got.Type, "type")
	require.Equal(t, want.Cron, got.Cron, "cron")
	require.Equal(t, want.TZ, got.TZ, "tz")
	require.True(t, want.At.Equal(got.At), "at: want %s, got %s", want.At, got.At)
	require.Equal(t, want.In, got.In, "in")
	require.Equal(t, want.Every, got.Every, "every")
	require.True(t, want.Start.Equal(got.Start), "start: want %s, got %s", want.Start, got.Start)
	require.True(t, want.End.Equal(got.End), "end: want %s, got %s", want.End, got.End)
	require.Equal(t, want.MaxRuns, got.MaxRuns, "max_runs")
	require.Equal(t, want.Misfire, got.Misfire, "misfire")
	require.Equal(t, want.Catchup, got.Catchup, "catchup")
	require.Equal(t, want.Jitter, got.Jitter, "jitter")
	require.Equal(t, want.Paused, got.Paused, "paused")
	require.Equal(t, len(want.Header), len(got.Header), "header: want %v, got %v", want.Header, got.Header)
	for k, v := range want.Header {
		gv, ok := got.Header[k]
		require.True(t, ok, "header %q missing: got %v", k, got.Header)
		require.Equal(t, len(v), len(gv), "header %q", k)
		if len(v) > 0 {
			require.Equal(t, v, gv, "header %q", k)
		}
	}
	require.True(t, bytes.Equal(want.Data, got.Data), "data: want %q, got %q", want.Data, got.Data)
}

// sjRequireNoState checks that no state field survived a request.
func sjRequireNoState(t testing.TB, s *natsched.Schedule) {
	t.Helper()
	require.Empty(t, s.Status, "status")
	require.True(t, s.NextRun.IsZero(), "next_run")
	require.True(t, s.LastRun.IsZero(), "last_run")
	require.Zero(t, s.Runs, "runs")
	require.True(t, s.Created.IsZero(), "created")
	require.True(t, s.Updated.IsZero(), "updated")
	require.Empty(t, s.LastError, "last_error")
	require.Zero(t, s.Generation, "generation")
	require.True(t, s.Anchor.IsZero(), "anchor")
	require.Empty(t, s.Triggers, "triggers")
}

// ---------------------------------------------------------------------------
// MarshalJSON

// sjContractFields are the reply's field names, as the wire contract spells
// them.
var sjContractFields = []string{
	"id", "subject", "cron", "tz", "at", "every", "start", "end", "max_runs", "misfire",
	"catchup", "jitter", "paused", "header", "data", "status", "next_run", "last_run", "runs",
	"created", "updated", "revision", "last_error",
}

func TestMarshalScheduleFieldNames(t *testing.T) {
	t.Parallel()
	// A full recurring schedule carries every contract field but "at".
	s := sjFull()
	m, b := sjMarshalMap(t, s)
	for _, f := range sjContractFields {
		if f == "at" || f == "every" {
			continue
		}
		require.Contains(t, m, f, "field %q missing from %s", f, b)
	}
	// One-shot and interval variants carry "at" and "every".
	at := &natsched.Schedule{ID: "a", Subject: "b", At: sjU(2026, 11, 27, 21, 0, 0, 0)}
	m, b = sjMarshalMap(t, at)
	require.Contains(t, m, "at", "%s", b)
	every := &natsched.Schedule{ID: "a", Subject: "b", Every: 30 * time.Second}
	m, b = sjMarshalMap(t, every)
	require.Equal(t, "30s", m["every"], "%s", b)

	// Nothing but the contract's names, the typed-API "type" and the
	// stored-only state (generation, anchor, triggers).
	m, b = sjMarshalMap(t, s)
	allowed := map[string]bool{"type": true, "generation": true, "anchor": true, "triggers": true}
	for _, f := range sjContractFields {
		allowed[f] = true
	}
	for k := range m {
		require.True(t, allowed[k], "unexpected field %q in %s", k, b)
	}
	require.Equal(t, "billing.invoice.42", m["id"])
	require.Equal(t, "billing.reminders", m["subject"])
	require.Equal(t, "0 0 9 * * MON-FRI", m["cron"])
	require.Equal(t, "Europe/Berlin", m["tz"])
	require.Equal(t, json.Number("10"), m["max_runs"])
	require.Equal(t, "all", m["misfire"])
	require.Equal(t, "1h30m0s", m["catchup"])
	require.Equal(t, "2.5s", m["jitter"])
	require.Equal(t, true, m["paused"])
	require.Equal(t, map[string]any{"X-Trace": []any{"abc", "def"}, "x-lower": []any{"v"}}, m["header"])
	require.Equal(t, "aGVsbG8=", m["data"])
	require.Equal(t, "paused", m["status"])
	require.Equal(t, json.Number("3"), m["runs"])
	require.Equal(t, json.Number("17"), m["revision"])
	require.Equal(t, "nats: no responders", m["last_error"])
}

func TestMarshalScheduleAlwaysPresent(t *testing.T) {
	t.Parallel()
	// The fields a reply always carries, even when zero.
	m, b := sjMarshalMap(t, &natsched.Schedule{ID: "a", Subject: "b", At: sjU(2026, 1, 1, 0, 0, 0, 0)})
	for k, want := range map[string]any{
		"id": "a", "subject": "b", "paused": false, "data": "", "runs": json.Number("0"),
		"revision": json.Number("0"), "last_error": "",
	} {
		require.Contains(t, m, k, "%s", b)
		require.Equal(t, want, m[k], "%s in %s", k, b)
	}
	// An empty (non-nil) payload is also rendered as "".
	m, b = sjMarshalMap(t, &natsched.Schedule{ID: "a", Subject: "b", Every: time.Second, Data: []byte{}})
	require.Equal(t, "", m["data"], "%s", b)
}

func TestMarshalScheduleNoInOrText(t *testing.T) {
	t.Parallel()
	// A schedule as stored (in resolved to at) never carries in or text.
	for _, s := range []*natsched.Schedule{
		sjFull(),
		{ID: "a", Subject: "b", At: sjAccepted.Add(5 * time.Minute), Data: []byte("text payload")},
		{ID: "a", Subject: "b", Every: time.Minute},
		{},
	} {
		m, b := sjMarshalMap(t, s)
		require.NotContains(t, m, "in", "%s", b)
		require.NotContains(t, m, "text", "%s", b)
	}
}

func TestMarshalScheduleTimes(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	require.NoError(t, err)
	cases := []struct {
		name string
		at   time.Time
		want string
	}{
		{"UTC whole second", sjU(2026, 11, 27, 21, 0, 0, 0), "2026-11-27T21:00:00Z"},
		{"UTC quarter second", sjU(2026, 11, 27, 21, 0, 0, 250_000_000), "2026-11-27T21:00:00.25Z"},
		{"UTC nanosecond", sjU(2026, 11, 27, 21, 0, 0, 1), "2026-11-27T21:00:00.000000001Z"},
		{"UTC all nanoseconds", sjU(2026, 11, 27, 21, 0, 0, 123_456_789), "2026-11-27T21:00:00.123456789Z"},
		{"Berlin winter", time.Date(2026, 11, 27, 22, 0, 0, 250_000_000, berlin), "2026-11-27T21:00:00.25Z"},
		{"Berlin summer", time.Date(2026, 7, 1, 2, 30, 0, 0, berlin), "2026-07-01T00:30:00Z"},
		{"Tokyo previous day", time.Date(2026, 1, 1, 5, 0, 0, 0, tokyo), "2025-12-31T20:00:00Z"},
		{"fixed zone", time.Date(2026, 11, 27, 16, 30, 0, 5, time.FixedZone("x", -(4*3600+30*60))), "2026-11-27T21:00:00.000000005Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := &natsched.Schedule{ID: "a", Subject: "b", At: c.at, Start: c.at, End: c.at, Created: c.at,
				Updated: c.at, NextRun: c.at, LastRun: c.at, Anchor: c.at, Triggers: []time.Time{c.at}}
			m, b := sjMarshalMap(t, s)
			for _, f := range []string{"at", "start", "end", "created", "updated", "next_run", "last_run", "anchor"} {
				require.Equal(t, c.want, m[f], "%s in %s", f, b)
			}
			require.Equal(t, []any{c.want}, m["triggers"], "%s", b)
			require.Equal(t, c.want, natsched.FormatTime(c.at))
		})
	}
	t.Run("now", func(t *testing.T) {
		t.Parallel()
		now := time.Now() // carries a monotonic reading and the local zone
		m, _ := sjMarshalMap(t, &natsched.Schedule{At: now})
		got, err := time.Parse(time.RFC3339Nano, m["at"].(string))
		require.NoError(t, err)
		require.True(t, got.Equal(now), "%s vs %s", got, now)
		require.True(t, strings.HasSuffix(m["at"].(string), "Z"), m["at"])
	})
	t.Run("zero times omitted", func(t *testing.T) {
		t.Parallel()
		m, b := sjMarshalMap(t, &natsched.Schedule{ID: "a", Subject: "b", Every: time.Second})
		for _, f := range []string{"at", "start", "end", "created", "updated", "next_run", "last_run", "anchor", "triggers"} {
			if v, ok := m[f]; ok {
				require.Empty(t, v, "%s in %s", f, b)
			}
		}
	})
}

func TestMarshalScheduleData(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"nil", nil, ""},
		{"empty", []byte{}, ""},
		{"hello", []byte("hello"), "aGVsbG8="},
		{"padding 2", []byte("a"), "YQ=="},
		{"std alphabet not URL", []byte{0xfb, 0xff, 0xfe}, "+//+"},
		{"binary", []byte{0, 1, 2, 0xff}, "AAEC/w=="},
		{"html kept readable", []byte("<a&b>"), "PGEmYj4="},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m, b := sjMarshalMap(t, &natsched.Schedule{ID: "a", Subject: "b", Data: c.data})
			require.Equal(t, c.want, m["data"], "%s", b)
		})
	}
}

func TestMarshalScheduleDurations(t *testing.T) {
	t.Parallel()
	s := &natsched.Schedule{ID: "a", Subject: "b", Every: 90 * time.Second, Catchup: 2 * time.Hour, Jitter: 1500 * time.Microsecond}
	m, b := sjMarshalMap(t, s)
	for f, want := range map[string]string{"every": "1m30s", "catchup": "2h0m0s", "jitter": "1.5ms"} {
		require.Equal(t, want, m[f], "%s in %s", f, b)
		d, err := time.ParseDuration(want)
		require.NoError(t, err)
		require.NotZero(t, d)
	}
}

func TestMarshalScheduleNoHTMLEscaping(t *testing.T) {
	t.Parallel()
	_, b := sjMarshalMap(t, &natsched.Schedule{ID: "a", Subject: "b", LastError: "a < b && c > d"})
	require.Contains(t, string(b), `"last_error":"a < b && c > d"`)
	require.False(t, bytes.HasSuffix(b, []byte("\n")), "trailing newline in %q", b)
}

func TestMarshalScheduleInListPage(t *testing.T) {
	t.Parallel()
	// Replies to list go through encoding/json with *Schedule elements.
	page := natsched.ListPage{Schedules: []*natsched.Schedule{sjFull()}, Next: "x"}
	b, err := json.Marshal(&page)
	require.NoError(t, err)
	var m struct {
		Schedules []map[string]any `json:"schedules"`
		Next      string           `json:"next"`
	}
	require.NoError(t, json.Unmarshal(b, &m))
	require.Len(t, m.Schedules, 1)
	require.Equal(t, "billing.invoice.42", m.Schedules[0]["id"], "%s", b)
	require.Equal(t, "aGVsbG8=", m.Schedules[0]["data"], "%s", b)
	require.Equal(t, "2026-11-27T08:00:00Z", m.Schedules[0]["next_run"], "%s", b)
	require.NotContains(t, m.Schedules[0], "ID")
}

// ---------------------------------------------------------------------------
// ParseSchedule: errors

func TestParseScheduleErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		body   string
		fields []string // acceptable field names (usually one)
		reason string   // substring of the message, optional
	}{
		// unknown fields
		{name: "typo cronn", body: `{"id":"a","subject":"b","cronn":"* * * * *"}`, fields: []string{"cronn"}, reason: "cronn: unknown field"},
		{name: "unknown first", body: `{"aaa":1,"id":"a"}`, fields: []string{"aaa"}},
		{name: "field names are case-sensitive", body: `{"ID":"a"}`, fields: []string{"ID"}},
		{name: "Subject capitalised", body: `{"Subject":"a"}`, fields: []string{"Subject"}},
		{name: "empty key", body: `{"":1}`, fields: []string{"body"}},
		// wrong types
		{name: "at number", body: `{"at":5}`, fields: []string{"at"}},
		{name: "at bool", body: `{"at":true}`, fields: []string{"at"}},
		{name: "max_runs string", body: `{"max_runs":"3"}`, fields: []string{"max_runs"}},
		{name: "max_runs bool", body: `{"max_runs":true}`, fields: []string{"max_runs"}},
		{name: "max_runs object", body: `{"max_runs":{}}`, fields: []string{"max_runs"}},
		{name: "paused string", body: `{"paused":"yes"}`, fields: []string{"paused"}},
		{name: "paused number", body: `{"paused":1}`, fields: []string{"paused"}},
		{name: "header list", body: `{"header":[]}`, fields: []string{"header"}},
		{name: "header string", body: `{"header":"X-A: b"}`, fields: []string{"header"}},
		{name: "header value number", body: `{"header":{"X-A":5}}`, fields: []string{"header"}},
		{name: "header value list of numbers", body: `{"header":{"X-A":[1,2]}}`, fields: []string{"header"}},
		{name: "header value object", body: `{"header":{"X-A":{"b":"c"}}}`, fields: []string{"header"}},
		{name: "every number", body: `{"every":10}`, fields: []string{"every"}},
		{name: "in number", body: `{"in":300}`, fields: []string{"in"}},
		{name: "catchup number", body: `{"catchup":3600}`, fields: []string{"catchup"}},
		{name: "jitter bool", body: `{"jitter":false}`, fields: []string{"jitter"}},
		{name: "id number", body: `{"id":42}`, fields: []string{"id"}},
		{name: "subject bool", body: `{"subject":true}`, fields: []string{"subject"}},
		{name: "cron list", body: `{"cron":["0","9","*","*","*"]}`, fields: []string{"cron"}},
		{name: "tz number", body: `{"tz":1}`, fields: []string{"tz"}},
		{name: "misfire number", body: `{"misfire":1}`, fields: []string{"misfire"}},
		{name: "data number", body: `{"data":5}`, fields: []string{"data"}},
		{name: "data list of bytes", body: `{"data":[104,105]}`, fields: []string{"data"}},
		{name: "text number", body: `{"text":5}`, fields: []string{"text"}},
		{name: "start number", body: `{"start":1767225600}`, fields: []string{"start"}},
		{name: "end object", body: `{"end":{}}`, fields: []string{"end"}},
		{name: "revision string", body: `{"revision":"17"}`, fields: []string{"revision"}},
		{name: "revision negative", body: `{"revision":-1}`, fields: []string{"revision"}},
		{name: "revision fraction", body: `{"revision":1.5}`, fields: []string{"revision"}},
		// bad times
		{name: "at not RFC 3339", body: `{"at":"2026-11-27 21:00:00"}`, fields: []string{"at"}},
		{name: "at no zone", body: `{"at":"2026-11-27T21:00:00"}`, fields: []string{"at"}},
		{name: "at words", body: `{"at":"tomorrow"}`, fields: []string{"at"}},
		{name: "at empty", body: `{"at":""}`, fields: []string{"at"}},
		{name: "at month 13", body: `{"at":"2026-13-01T00:00:00Z"}`, fields: []string{"at"}},
		{name: "at unix seconds string", body: `{"at":"1767225600"}`, fields: []string{"at"}},
		{name: "start bad", body: `{"start":"x"}`, fields: []string{"start"}},
		{name: "end bad", body: `{"end":"2026-02-30T00:00:00Z"}`, fields: []string{"end"}},
		// bad durations
		{name: "every words", body: `{"every":"5 minutes"}`, fields: []string{"every"}, reason: "5 minutes"},
		{name: "every no unit", body: `{"every":"10"}`, fields: []string{"every"}},
		{name: "every empty", body: `{"every":""}`, fields: []string{"every"}},
		{name: "every days in words", body: `{"every":"1 day"}`, fields: []string{"every"}},
		{name: "every days, upper case", body: `{"every":"1D"}`, fields: []string{"every"}},
		{name: "every negative", body: `{"every":"-5s"}`, fields: []string{"every"}},
		{name: "every overflow", body: `{"every":"3000000h"}`, fields: []string{"every"}},
		{name: "in negative", body: `{"in":"-1m"}`, fields: []string{"in"}},
		{name: "in bad", body: `{"in":"soon"}`, fields: []string{"in"}},
		{name: "catchup negative", body: `{"catchup":"-1h"}`, fields: []string{"catchup"}},
		{name: "jitter negative", body: `{"jitter":"-1ms"}`, fields: []string{"jitter"}},
		{name: "jitter bad", body: `{"jitter":"2"}`, fields: []string{"jitter"}},
		// integers
		{name: "max_runs negative", body: `{"max_runs":-1}`, fields: []string{"max_runs"}},
		{name: "max_runs fraction", body: `{"max_runs":1.5}`, fields: []string{"max_runs"}},
		{name: "max_runs huge", body: `{"max_runs":99999999999999999999}`, fields: []string{"max_runs"}},
		// payload
		{name: "text and data", body: `{"id":"a","subject":"b","at":"2026-11-27T21:00:00Z","text":"hello","data":"aGVsbG8="}`, fields: []string{"text"}},
		{name: "text and empty data", body: `{"text":"hello","data":""}`, fields: []string{"text"}},
		{name: "empty text and data", body: `{"text":"","data":"aGk="}`, fields: []string{"text"}},
		{name: "data not base64", body: `{"data":"!!!"}`, fields: []string{"data"}},
		{name: "data missing padding", body: `{"data":"aGVsbG8"}`, fields: []string{"data"}},
		{name: "data URL alphabet", body: `{"data":"-_8="}`, fields: []string{"data"}},
		{name: "data plain text", body: `{"data":"hello world"}`, fields: []string{"data"}},
		// in and at
		{name: "in and at", body: `{"id":"a","subject":"b","in":"5m","at":"2026-11-27T21:00:00Z"}`, fields: []string{"in", "at"}},
		// body
		{name: "empty body", body: ``, fields: []string{"body"}},
		{name: "blank body", body: " \n\t ", fields: []string{"body"}},
		{name: "array", body: `[]`, fields: []string{"body"}},
		{name: "array of object", body: `[{"id":"a"}]`, fields: []string{"body"}},
		{name: "string", body: `"x"`, fields: []string{"body"}},
		{name: "number", body: `42`, fields: []string{"body"}},
		{name: "true", body: `true`, fields: []string{"body"}},
		{name: "null", body: `null`, fields: []string{"body"}},
		{name: "truncated", body: `{"id":"a"`, fields: []string{"body"}},
		{name: "open brace", body: `{`, fields: []string{"body"}},
		{name: "trailing comma", body: `{"id":"a",}`, fields: []string{"body"}},
		{name: "single quotes", body: `{'id':'a'}`, fields: []string{"body"}},
		{name: "comment", body: `{"id":"a" /* x */}`, fields: []string{"body"}},
		{name: "garbage", body: `hello`, fields: []string{"body"}},
		{name: "trailing garbage", body: `{"id":"a"} x`, fields: []string{"body"}},
		{name: "two objects", body: `{"id":"a"}{"id":"b"}`, fields: []string{"body"}},
		{name: "two objects spaced", body: "{}\n{}", fields: []string{"body"}},
		{name: "trailing number", body: `{} 1`, fields: []string{"body"}},
		{name: "trailing close brace", body: `{"id":"a"}}`, fields: []string{"body"}},
		{name: "trailing close bracket", body: `{"id":"a"} ] junk`, fields: []string{"body"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, err := natsched.ParseSchedule([]byte(c.body), sjAccepted)
			sjRequireFieldError(t, err, c.fields...)
			require.Nil(t, s)
			if c.reason != "" {
				require.Contains(t, err.Error(), c.reason)
			}
		})
	}
}

func TestParseScheduleErrorIsStable(t *testing.T) {
	t.Parallel()
	// Several problems: the message is the same every time.
	body := []byte(`{"zeta":1,"every":"x","alpha":2,"at":5,"max_runs":-1}`)
	_, first := natsched.ParseSchedule(body, sjAccepted)
	require.Error(t, first)
	for range 50 {
		_, err := natsched.ParseSchedule(body, sjAccepted)
		require.Equal(t, first.Error(), err.Error())
	}
}

// ---------------------------------------------------------------------------
// ParseSchedule: accepted bodies

func TestParseScheduleDefinition(t *testing.T) {
	t.Parallel()
	s := sjParse(t, `{
		"id": "billing.invoice.42", "subject": "billing.reminders",
		"cron": "0 0 9 * * MON-FRI", "tz": "Europe/Berlin",
		"start": "2026-01-01T01:00:00+01:00", "end": "2027-01-01T00:00:00.000000123Z",
		"max_runs": 10, "misfire": "all", "catchup": "1h30m", "jitter": "2.5s", "paused": true,
		"header": {"X-Trace": ["abc", "def"]}, "data": "aGVsbG8="
	}`)
	want := &natsched.Schedule{
		ID: "billing.invoice.42", Subject: "billing.reminders", Cron: "0 0 9 * * MON-FRI", TZ: "Europe/Berlin",
		Start: sjU(2026, 1, 1, 0, 0, 0, 0), End: sjU(2027, 1, 1, 0, 0, 0, 123), MaxRuns: 10,
		Misfire: natsched.MisfireAll, Catchup: 90 * time.Minute, Jitter: 2500 * time.Millisecond, Paused: true,
		Header: nats.Header{"X-Trace": {"abc", "def"}}, Data: []byte("hello"),
	}
	sjRequireSameDefinition(t, want, s)
	require.Equal(t, time.UTC, s.Start.Location(), "times are kept in UTC")
	require.Zero(t, s.Revision)
	sjRequireNoState(t, s)
	require.NoError(t, s.Validate())
}

func TestParseScheduleAt(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, at string
		want     time.Time
	}{
		{"UTC", "2026-11-27T21:00:00Z", sjU(2026, 11, 27, 21, 0, 0, 0)},
		{"sub-second kept", "2026-11-27T21:00:00.25Z", sjU(2026, 11, 27, 21, 0, 0, 250_000_000)},
		{"nanoseconds kept", "2026-11-27T21:00:00.000000001Z", sjU(2026, 11, 27, 21, 0, 0, 1)},
		{"offset", "2026-11-27T22:00:00.25+01:00", sjU(2026, 11, 27, 21, 0, 0, 250_000_000)},
		{"negative offset", "2026-11-27T16:30:00-04:30", sjU(2026, 11, 27, 21, 0, 0, 0)},
		{"in the past", "2001-01-01T00:00:00Z", sjU(2001, 1, 1, 0, 0, 0, 0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := sjParse(t, `{"id":"a","subject":"b","at":"`+c.at+`"}`)
			require.True(t, c.want.Equal(s.At), "want %s, got %s", c.want, s.At)
			require.Zero(t, s.In)
			require.NoError(t, s.Validate())
			m, b := sjMarshalMap(t, s)
			require.Equal(t, natsched.FormatTime(c.want), m["at"], "%s", b)
		})
	}
}

func TestParseScheduleIn(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	cases := []struct {
		name     string
		in       string
		accepted time.Time
		want     time.Time
	}{
		{"5m", "5m", sjAccepted, sjAccepted.Add(5 * time.Minute)},
		{"1h30m", "1h30m", sjAccepted, sjAccepted.Add(90 * time.Minute)},
		{"sub-second", "1.5s", sjAccepted, sjAccepted.Add(1500 * time.Millisecond)},
		{"nanosecond", "1ns", sjAccepted, sjAccepted.Add(1)},
		{"accepted in Berlin", "90s", time.Date(2026, 3, 29, 1, 59, 0, 0, berlin), sjU(2026, 3, 29, 1, 0, 30, 0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			body := `{"id":"a","subject":"b","in":"` + c.in + `","at":null}`
			s, err := natsched.ParseSchedule([]byte(body), c.accepted)
			require.NoError(t, err)
			require.NotNil(t, s)
			require.True(t, c.want.Equal(s.At), "at: want %s, got %s", c.want, s.At)
			require.Zero(t, s.In, "in is stored as at")
			require.NoError(t, s.Validate())
			m, b := sjMarshalMap(t, s)
			require.NotContains(t, m, "in", "%s", b)
			require.Equal(t, natsched.FormatTime(c.want), m["at"], "%s", b)
		})
	}
}

func TestParseScheduleInWithoutAcceptance(t *testing.T) {
	t.Parallel()
	// With no acceptance time, in stays a delay for the caller to resolve.
	s, err := natsched.ParseSchedule([]byte(`{"id":"a","subject":"b","in":"5m"}`), time.Time{})
	require.NoError(t, err)
	require.Equal(t, 5*time.Minute, s.In)
	require.True(t, s.At.IsZero())
}

func TestParseSchedulePayload(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		body string
		want []byte
	}{
		{"text ASCII", `{"text":"hello"}`, []byte("hello")},
		{"text UTF-8", `{"text":"grüße ✓ 日本"}`, []byte("grüße ✓ 日本")},
		{"text escapes", `{"text":"a\nb\u00e9\"c\u0000"}`, []byte("a\nbé\"c\x00")},
		{"text empty", `{"text":""}`, []byte{}},
		{"data", `{"data":"aGVsbG8="}`, []byte("hello")},
		{"data binary", `{"data":"AAEC/w=="}`, []byte{0, 1, 2, 0xff}},
		{"data std alphabet", `{"data":"+//+"}`, []byte{0xfb, 0xff, 0xfe}},
		{"data empty", `{"data":""}`, []byte{}},
		{"neither", `{}`, nil},
		{"text with null data", `{"text":"hi","data":null}`, []byte("hi")},
		{"data with null text", `{"data":"aGk=","text":null}`, []byte("hi")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := sjParse(t, c.body)
			require.True(t, bytes.Equal(c.want, s.Data), "want %q, got %q", c.want, s.Data)
			m, b := sjMarshalMap(t, s)
			require.NotContains(t, m, "text", "%s", b)
			require.Contains(t, m, "data", "%s", b)
		})
	}
}

func TestParseScheduleNullIsAbsent(t *testing.T) {
	t.Parallel()
	s := sjParse(t, `{"id":"a","subject":"b","every":"1m","cron":null,"tz":null,"at":null,"in":null,
		"start":null,"end":null,"max_runs":null,"misfire":null,"catchup":null,"jitter":null,"paused":null,
		"header":null,"data":null,"text":null,"revision":null,"type":null,
		"status":null,"next_run":null,"last_run":null,"runs":null,"created":null,"updated":null,
		"last_error":null,"generation":null,"anchor":null,"triggers":null}`)
	sjRequireSameDefinition(t, &natsched.Schedule{ID: "a", Subject: "b", Every: time.Minute}, s)
	require.Zero(t, s.Revision)
	require.Empty(t, s.Data)
	sjRequireNoState(t, s)
	require.NoError(t, s.Validate())
}

func TestParseScheduleStateIgnored(t *testing.T) {
	t.Parallel()
	s := sjParse(t, `{"id":"a","subject":"b","every":"1m",
		"status":"done","next_run":"2026-11-27T21:00:00Z","last_run":"2026-11-27T20:00:00Z","runs":3,
		"created":"2026-01-01T00:00:00Z","updated":"2026-01-02T00:00:00Z","last_error":"boom",
		"generation":7,"anchor":"2026-01-01T00:00:00Z","triggers":["2026-11-27T21:00:00Z"]}`)
	sjRequireSameDefinition(t, &natsched.Schedule{ID: "a", Subject: "b", Every: time.Minute}, s)
	sjRequireNoState(t, s)

	// Ignored means not even type-checked.
	s = sjParse(t, `{"id":"a","subject":"b","every":"1m","status":5,"next_run":false,"runs":"many",
		"created":[],"last_error":{},"generation":-1,"anchor":"x","triggers":"y","last_run":1.5,"updated":"z"}`)
	sjRequireNoState(t, s)
}

func TestParseScheduleRevision(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]uint64{
		`{"revision":17}`:                  17,
		`{"revision":0}`:                   0,
		`{"revision":1}`:                   1,
		`{"revision":9223372036854775807}`: 1<<63 - 1,
	} {
		s := sjParse(t, body)
		require.Equal(t, want, s.Revision, body)
	}
}

func TestParseScheduleHeader(t *testing.T) {
	t.Parallel()
	s := sjParse(t, `{"header":{"X-Trace":["abc"],"X-Multi":["a","b"],"x-lower":["v"],"X-Empty":[]}}`)
	require.Equal(t, []string{"abc"}, s.Header["X-Trace"])
	require.Equal(t, []string{"a", "b"}, s.Header["X-Multi"])
	require.Equal(t, []string{"v"}, s.Header["x-lower"], "names are kept as given")
	require.Empty(t, s.Header["X-Empty"])
	s = sjParse(t, `{"header":{}}`)
	require.Empty(t, s.Header)
}

// TestParseScheduleGetEditPut: a reply, edited and sent back as a request,
// keeps its definition and revision and drops the state.
func TestParseScheduleGetEditPut(t *testing.T) {
	t.Parallel()
	stored := sjFull()
	b, err := stored.MarshalJSON()
	require.NoError(t, err)

	s := sjParse(t, string(b))
	sjRequireSameDefinition(t, stored, s)
	require.Equal(t, stored.Revision, s.Revision, "revision is kept for compare-and-set")
	sjRequireNoState(t, s)
	require.NoError(t, s.Validate())

	// Edit through a generic map, as a client would, and put it back.
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	m["paused"] = false
	m["cron"] = "@hourly"
	delete(m, "tz")
	edited, err := json.Marshal(m)
	require.NoError(t, err)
	s = sjParse(t, string(edited))
	want := stored.Clone()
	want.Paused, want.Cron, want.TZ = false, "@hourly", ""
	sjRequireSameDefinition(t, want, s)
	require.Equal(t, uint64(17), s.Revision)
	sjRequireNoState(t, s)
	require.NoError(t, s.Validate())
}

func TestParseScheduleDoesNotKeepBody(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":"a","subject":"b","text":"hello","header":{"X-A":["v"]}}`)
	s := sjParse(t, string(body))
	for i := range body {
		body[i] = 'x'
	}
	require.Equal(t, "hello", string(s.Data))
	require.Equal(t, []string{"v"}, s.Header["X-A"])
}

// ---------------------------------------------------------------------------
// UnmarshalJSON

func TestUnmarshalScheduleRoundTrip(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	cases := map[string]*natsched.Schedule{
		"full": sjFull(),
		"one-shot": {ID: "a", Subject: "b", At: sjU(2026, 11, 27, 21, 0, 0, 250_000_000), Data: []byte{0},
			Status: natsched.StatusDone, Runs: 1, LastRun: sjU(2026, 11, 27, 21, 0, 0, 250_000_000), Revision: 2},
		"every": {ID: "a.b-c_d", Subject: "x.y", Every: 1500 * time.Millisecond, Data: []byte("p"),
			Status: natsched.StatusActive, Anchor: sjU(2026, 1, 1, 0, 0, 1, 500_000_000), Generation: 1<<63 + 5},
		"header without values": {ID: "a", Subject: "b", Every: time.Second, Data: []byte("p"), Header: nats.Header{"X": {}}},
		"many triggers": {ID: "a", Subject: "b", Cron: "@daily", Data: []byte("p"),
			Triggers: []time.Time{sjU(2026, 1, 1, 0, 0, 0, 1), sjU(2026, 1, 1, 0, 0, 0, 2), sjU(2026, 1, 1, 0, 0, 0, 3)}},
	}
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, err := s.MarshalJSON()
			require.NoError(t, err)
			got, err := sjUnmarshal(t, b)
			require.NoError(t, err, "%s", b)
			require.Equal(t, s, got, "%s", b)

			// Through encoding/json too, as a stored value or list page is read.
			var page natsched.ListPage
			require.NoError(t, json.Unmarshal([]byte(`{"schedules":[`+string(b)+`],"next":""}`), &page))
			require.Len(t, page.Schedules, 1)
			require.Equal(t, s, page.Schedules[0])
		})
	}
	t.Run("zone normalised to UTC", func(t *testing.T) {
		t.Parallel()
		s := &natsched.Schedule{ID: "a", Subject: "b", At: time.Date(2026, 7, 1, 12, 0, 0, 7, berlin),
			Created: time.Date(2026, 7, 1, 11, 0, 0, 0, berlin), Data: []byte("x")}
		b, err := s.MarshalJSON()
		require.NoError(t, err)
		got, err := sjUnmarshal(t, b)
		require.NoError(t, err)
		require.True(t, s.At.Equal(got.At))
		require.True(t, s.Created.Equal(got.Created))
		require.Equal(t, time.UTC, got.At.Location())
	})
	t.Run("empty data", func(t *testing.T) {
		t.Parallel()
		s := &natsched.Schedule{ID: "a", Subject: "b", Every: time.Second}
		b, err := s.MarshalJSON()
		require.NoError(t, err)
		got, err := sjUnmarshal(t, b)
		require.NoError(t, err)
		require.Empty(t, got.Data)
		got.Data = nil
		require.Equal(t, s, got)
	})
}

func TestUnmarshalScheduleLenient(t *testing.T) {
	t.Parallel()
	// Stored values may come from a newer version.
	got, err := sjUnmarshal(t, []byte(`{"id":"a","subject":"b","every":"1m","runs":2,
		"future_field":{"x":[1,2,3]},"cronn":"oops","priority":5}`))
	require.NoError(t, err)
	require.Equal(t, "a", got.ID)
	require.Equal(t, time.Minute, got.Every)
	require.Equal(t, int64(2), got.Runs)
	require.Empty(t, got.Cron)
}

func TestUnmarshalScheduleErrors(t *testing.T) {
	t.Parallel()
	for body, field := range map[string]string{
		`{"runs":"many"}`:     "runs",
		`{"triggers":["x"]}`:  "triggers",
		`{"triggers":5}`:      "triggers",
		`{"generation":-1}`:   "generation",
		`{"anchor":"x"}`:      "anchor",
		`{"next_run":5}`:      "next_run",
		`{"status":1}`:        "status",
		`{"every":"forever"}`: "every",
		`[]`:                  "body",
		`{"id":"a"} x`:        "body",
	} {
		_, err := sjUnmarshal(t, []byte(body))
		sjRequireFieldError(t, err, field)
	}
}

// ---------------------------------------------------------------------------
// Validate

func TestValidateSchedule(t *testing.T) {
	t.Parallel()
	start := sjU(2026, 1, 1, 0, 0, 0, 0)
	base := func() *natsched.Schedule {
		return &natsched.Schedule{ID: "billing.invoice-42_x", Subject: "billing.reminders", Cron: "0 9 * * *"}
	}
	long := func(n int, tok string) string {
		return strings.Repeat(tok, n)
	}
	// A dotted ID of exactly n characters.
	dotted := func(n int) string {
		var b strings.Builder
		for b.Len() < n {
			if b.Len()%10 == 9 && b.Len() != n-1 {
				b.WriteByte('.')
			} else {
				b.WriteByte("aZ9_-"[b.Len()%5])
			}
		}
		return b.String()
	}
	cases := []struct {
		name   string
		mut    func(s *natsched.Schedule)
		fields []string // empty: valid
	}{
		{"base", func(s *natsched.Schedule) {}, nil},
		// ids
		{"id empty", func(s *natsched.Schedule) { s.ID = "" }, []string{"id"}},
		{"id space", func(s *natsched.Schedule) { s.ID = "a b" }, []string{"id"}},
		{"id empty token", func(s *natsched.Schedule) { s.ID = "a..b" }, []string{"id"}},
		{"id leading dot", func(s *natsched.Schedule) { s.ID = ".a" }, []string{"id"}},
		{"id trailing dot", func(s *natsched.Schedule) { s.ID = "a." }, []string{"id"}},
		{"id lone dot", func(s *natsched.Schedule) { s.ID = "." }, []string{"id"}},
		{"id star", func(s *natsched.Schedule) { s.ID = "a.*" }, []string{"id"}},
		{"id gt", func(s *natsched.Schedule) { s.ID = "a.>" }, []string{"id"}},
		{"id star inside", func(s *natsched.Schedule) { s.ID = "a*b" }, []string{"id"}},
		{"id 256 chars", func(s *natsched.Schedule) { s.ID = long(256, "a") }, []string{"id"}},
		{"id 255 chars", func(s *natsched.Schedule) { s.ID = long(255, "a") }, nil},
		{"id 255 chars dotted", func(s *natsched.Schedule) { s.ID = dotted(255) }, nil},
		{"id 256 chars dotted", func(s *natsched.Schedule) { s.ID = dotted(256) }, []string{"id"}},
		{"id unicode", func(s *natsched.Schedule) { s.ID = "café" }, []string{"id"}},
		{"id unicode letter only", func(s *natsched.Schedule) { s.ID = "ä" }, []string{"id"}},
		{"id tab", func(s *natsched.Schedule) { s.ID = "a\tb" }, []string{"id"}},
		{"id slash", func(s *natsched.Schedule) { s.ID = "a/b" }, []string{"id"}},
		{"id colon", func(s *natsched.Schedule) { s.ID = "a:b" }, []string{"id"}},
		{"id NUL", func(s *natsched.Schedule) { s.ID = "a\x00" }, []string{"id"}},
		{"id one char", func(s *natsched.Schedule) { s.ID = "a" }, nil},
		{"id underscore and dash", func(s *natsched.Schedule) { s.ID = "_.-.a_b-c.D9" }, nil},
		{"id many tokens", func(s *natsched.Schedule) { s.ID = "tenant-a.billing.invoice.2026_11" }, nil},
		// subjects
		{"subject empty", func(s *natsched.Schedule) { s.Subject = "" }, []string{"subject"}},
		{"subject star token", func(s *natsched.Schedule) { s.Subject = "a.*.b" }, []string{"subject"}},
		{"subject gt token", func(s *natsched.Schedule) { s.Subject = "a.>" }, []string{"subject"}},
		{"subject star alone", func(s *natsched.Schedule) { s.Subject = "*" }, []string{"subject"}},
		{"subject gt alone", func(s *natsched.Schedule) { s.Subject = ">" }, []string{"subject"}},
		{"subject space", func(s *natsched.Schedule) { s.Subject = "a b" }, []string{"subject"}},
		{"subject tab", func(s *natsched.Schedule) { s.Subject = "a\tb" }, []string{"subject"}},
		{"subject newline", func(s *natsched.Schedule) { s.Subject = "a\nb" }, []string{"subject"}},
		{"subject CR", func(s *natsched.Schedule) { s.Subject = "a\r" }, []string{"subject"}},
		{"subject DEL", func(s *natsched.Schedule) { s.Subject = "a\x7fb" }, []string{"subject"}},
		{"subject NUL", func(s *natsched.Schedule) { s.Subject = "a\x00b" }, []string{"subject"}},
		{"subject empty token", func(s *natsched.Schedule) { s.Subject = "a..b" }, []string{"subject"}},
		{"subject leading dot", func(s *natsched.Schedule) { s.Subject = ".a" }, []string{"subject"}},
		{"subject trailing dot", func(s *natsched.Schedule) { s.Subject = "a." }, []string{"subject"}},
		{"subject very long", func(s *natsched.Schedule) { s.Subject = long(natsched.MaxSubjectLen+1, "a") }, []string{"subject"}},
		{"subject huge", func(s *natsched.Schedule) { s.Subject = long(100_000, "a.") + "a" }, []string{"subject"}},
		{"subject at the limit", func(s *natsched.Schedule) { s.Subject = long(natsched.MaxSubjectLen, "a") }, nil},
		{"subject single token", func(s *natsched.Schedule) { s.Subject = "orders" }, nil},
		{"subject star inside token", func(s *natsched.Schedule) { s.Subject = "a.b*c" }, nil},
		{"subject with dash and colon", func(s *natsched.Schedule) { s.Subject = "natsched.fire.email-send:v2" }, nil},
		// exactly one of at, in, every, cron
		{"none", func(s *natsched.Schedule) { s.Cron = "" }, []string{"at"}},
		{"at and cron", func(s *natsched.Schedule) { s.At = start }, []string{"at", "cron"}},
		{"every and cron", func(s *natsched.Schedule) { s.Every = time.Minute }, []string{"every", "cron"}},
		{"in and every", func(s *natsched.Schedule) { s.Cron, s.In, s.Every = "", time.Minute, time.Minute }, []string{"in", "every"}},
		{"at and in", func(s *natsched.Schedule) { s.Cron, s.At, s.In = "", start, time.Minute }, []string{"at", "in"}},
		{"at and every", func(s *natsched.Schedule) { s.Cron, s.At, s.Every = "", start, time.Minute }, []string{"at", "every"}},
		{"all four", func(s *natsched.Schedule) { s.At, s.In, s.Every = start, time.Minute, time.Minute }, []string{"at", "in", "every", "cron"}},
		{"at only", func(s *natsched.Schedule) { s.Cron, s.At = "", start }, nil},
		{"at in the past", func(s *natsched.Schedule) { s.Cron, s.At = "", sjU(1999, 1, 1, 0, 0, 0, 0) }, nil},
		{"in only", func(s *natsched.Schedule) { s.Cron, s.In = "", time.Minute }, nil},
		{"in negative", func(s *natsched.Schedule) { s.Cron, s.In = "", -time.Minute }, []string{"in"}},
		// every
		{"every below 1ms", func(s *natsched.Schedule) { s.Cron, s.Every = "", 999*time.Microsecond }, []string{"every"}},
		{"every 1ns", func(s *natsched.Schedule) { s.Cron, s.Every = "", 1 }, []string{"every"}},
		{"every negative", func(s *natsched.Schedule) { s.Cron, s.Every = "", -time.Second }, []string{"every", "at"}},
		{"every 1ms", func(s *natsched.Schedule) { s.Cron, s.Every = "", time.Millisecond }, nil},
		{"every a year", func(s *natsched.Schedule) { s.Cron, s.Every = "", 365*24*time.Hour }, nil},
		// start and end
		{"end before start", func(s *natsched.Schedule) { s.Start, s.End = start, start.Add(-time.Nanosecond) }, []string{"end"}},
		{"end equal start", func(s *natsched.Schedule) { s.Start, s.End = start, start }, []string{"end"}},
		{"end after start", func(s *natsched.Schedule) { s.Start, s.End = start, start.Add(time.Nanosecond) }, nil},
		{"end before start on every", func(s *natsched.Schedule) {
			s.Cron, s.Every, s.Start, s.End = "", time.Minute, start, start.Add(-time.Hour)
		}, []string{"end"}},
		{"start only", func(s *natsched.Schedule) { s.Start = start }, nil},
		{"end only", func(s *natsched.Schedule) { s.End = start }, nil},
		{"start on at", func(s *natsched.Schedule) { s.Cron, s.At, s.Start = "", start, start }, []string{"start"}},
		{"end on at", func(s *natsched.Schedule) { s.Cron, s.At, s.End = "", start, start.Add(time.Hour) }, []string{"end"}},
		{"start on in", func(s *natsched.Schedule) { s.Cron, s.In, s.Start = "", time.Minute, start }, []string{"start"}},
		{"end on in", func(s *natsched.Schedule) { s.Cron, s.In, s.End = "", time.Minute, start }, []string{"end"}},
		// misfire
		{"misfire skip", func(s *natsched.Schedule) { s.Misfire = natsched.MisfireSkip }, nil},
		{"misfire once", func(s *natsched.Schedule) { s.Misfire = natsched.MisfireOnce }, nil},
		{"misfire all", func(s *natsched.Schedule) { s.Misfire = natsched.MisfireAll }, nil},
		{"misfire upper case", func(s *natsched.Schedule) { s.Misfire = "ONCE" }, []string{"misfire"}},
		{"misfire unknown", func(s *natsched.Schedule) { s.Misfire = "never" }, []string{"misfire"}},
		{"misfire padded", func(s *natsched.Schedule) { s.Misfire = " all" }, []string{"misfire"}},
		// other options
		{"max_runs negative", func(s *natsched.Schedule) { s.MaxRuns = -1 }, []string{"max_runs"}},
		{"max_runs set", func(s *natsched.Schedule) { s.MaxRuns = 1 }, nil},
		{"catchup negative", func(s *natsched.Schedule) { s.Catchup = -time.Second }, []string{"catchup"}},
		{"jitter negative", func(s *natsched.Schedule) { s.Jitter = -time.Second }, []string{"jitter"}},
		{"jitter and catchup", func(s *natsched.Schedule) { s.Jitter, s.Catchup = time.Second, 2*time.Hour }, nil},
		// header
		{"header ordinary", func(s *natsched.Schedule) { s.Header = nats.Header{"X-Trace": {"abc"}, "x-lower": {"", "v"}} }, nil},
		{"header Nats-", func(s *natsched.Schedule) { s.Header = nats.Header{"Nats-Msg-Id": {"x"}} }, []string{"header"}},
		{"header nats- lower", func(s *natsched.Schedule) { s.Header = nats.Header{"nats-expected-stream": {"x"}} }, []string{"header"}},
		{"header NATS- upper", func(s *natsched.Schedule) { s.Header = nats.Header{"NATS-ROLLUP": {"all"}} }, []string{"header"}},
		{"header Natsched-", func(s *natsched.Schedule) { s.Header = nats.Header{"Natsched-Type": {"x"}} }, []string{"header"}},
		{"header NATSCHED- upper", func(s *natsched.Schedule) { s.Header = nats.Header{"NATSCHED-ID": {"x"}} }, []string{"header"}},
		{"header natsched- mixed", func(s *natsched.Schedule) { s.Header = nats.Header{"nAtScHeD-Planned": {"x"}} }, []string{"header"}},
		{"header Nats- with no values", func(s *natsched.Schedule) { s.Header = nats.Header{"Nats-Msg-Id": nil} }, []string{"header"}},
		{"header X-Nats- allowed", func(s *natsched.Schedule) { s.Header = nats.Header{"X-Nats-Foo": {"x"}} }, nil},
		{"header Natschedule allowed", func(s *natsched.Schedule) { s.Header = nats.Header{"Natschedule": {"x"}} }, nil},
		{"header Nats allowed", func(s *natsched.Schedule) { s.Header = nats.Header{"Nats": {"x"}} }, nil},
		{"header value CR", func(s *natsched.Schedule) { s.Header = nats.Header{"X-A": {"a\rb"}} }, []string{"header"}},
		{"header value LF", func(s *natsched.Schedule) { s.Header = nats.Header{"X-A": {"ok", "a\nNats-Msg-Id: x"}} }, []string{"header"}},
		{"header value CRLF", func(s *natsched.Schedule) { s.Header = nats.Header{"X-A": {"a\r\n"}} }, []string{"header"}},
		{"header name space", func(s *natsched.Schedule) { s.Header = nats.Header{"X A": {"x"}} }, []string{"header"}},
		{"header name colon", func(s *natsched.Schedule) { s.Header = nats.Header{"X:A": {"x"}} }, []string{"header"}},
		{"header name empty", func(s *natsched.Schedule) { s.Header = nats.Header{"": {"x"}} }, []string{"header"}},
		{"header name newline", func(s *natsched.Schedule) { s.Header = nats.Header{"X\nA": {"x"}} }, []string{"header"}},
		{"header name non-ASCII", func(s *natsched.Schedule) { s.Header = nats.Header{"X-Grüße": {"x"}} }, []string{"header"}},
		// tz
		{"tz Berlin", func(s *natsched.Schedule) { s.TZ = "Europe/Berlin" }, nil},
		{"tz UTC", func(s *natsched.Schedule) { s.TZ = "UTC" }, nil},
		{"tz unknown", func(s *natsched.Schedule) { s.TZ = "Mars/Olympus" }, []string{"tz"}},
		{"tz Local", func(s *natsched.Schedule) { s.TZ = "Local" }, []string{"tz"}},
		{"tz path", func(s *natsched.Schedule) { s.TZ = "../../etc/passwd" }, []string{"tz"}},
		{"tz lower case junk", func(s *natsched.Schedule) { s.TZ = "berlin" }, []string{"tz"}},
		// cron
		{"cron 30 February", func(s *natsched.Schedule) { s.Cron = "0 0 30 2 *" }, []string{"cron"}},
		{"cron 31 April", func(s *natsched.Schedule) { s.Cron = "0 0 31 4 *" }, []string{"cron"}},
		{"cron year passed", func(s *natsched.Schedule) { s.Cron = "0 0 0 1 1 ? 2020"; s.Start = start }, []string{"cron"}},
		{"cron bogus", func(s *natsched.Schedule) { s.Cron = "bogus" }, []string{"cron"}},
		{"cron 8 fields", func(s *natsched.Schedule) { s.Cron = "* * * * * * * *" }, []string{"cron"}},
		{"cron out of range", func(s *natsched.Schedule) { s.Cron = "60 * * * *" }, []string{"cron"}},
		{"cron 6 fields seconds first", func(s *natsched.Schedule) { s.Cron = "0 0 9 * * MON-FRI" }, nil},
		{"cron 7 fields", func(s *natsched.Schedule) { s.Cron = "0 30 9 * * * 2099" }, nil},
		{"cron macro", func(s *natsched.Schedule) { s.Cron = "@daily" }, nil},
		{"cron 29 February", func(s *natsched.Schedule) { s.Cron = "0 0 29 2 *" }, nil},
		{"cron in zone", func(s *natsched.Schedule) { s.Cron, s.TZ = "30 2 * * *", "America/New_York" }, nil},
		// type
		{"type dotted", func(s *natsched.Schedule) { s.Type = "email.Send" }, nil},
		{"type with space", func(s *natsched.Schedule) { s.Type = "email Send" }, []string{"type"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := base()
			c.mut(s)
			before := s.Clone()
			err := s.Validate()
			if len(c.fields) == 0 {
				require.NoError(t, err)
			} else {
				sjRequireFieldError(t, err, c.fields...)
			}
			require.Equal(t, before, s, "Validate must not modify the schedule")
		})
	}
}

func TestValidateScheduleParsedBodies(t *testing.T) {
	t.Parallel()
	// Bodies that parse but fail validation, as the put handler sees them.
	for body, field := range map[string]string{
		`{"subject":"b","every":"1m"}`:                                                                      "id",
		`{"id":"a","every":"1m"}`:                                                                           "subject",
		`{"id":"a","subject":"b"}`:                                                                          "at",
		`{"id":"a","subject":"b","every":"0s"}`:                                                             "every",
		`{"id":"a","subject":"b","every":"999us"}`:                                                          "every",
		`{"id":"a","subject":"b","every":"1m","cron":"@daily"}`:                                             "cron",
		`{"id":"a","subject":"b","in":"1m","start":"2026-01-01T00:00:00Z"}`:                                 "start",
		`{"id":"a","subject":"b","cron":"0 0 30 2 *"}`:                                                      "cron",
		`{"id":"a","subject":"b","cron":"@daily","tz":"Nowhere/City"}`:                                      "tz",
		`{"id":"a","subject":"b","every":"1m","misfire":"sometimes"}`:                                       "misfire",
		`{"id":"a","subject":"b","every":"1m","header":{"Nats-Msg-Id":["x"]}}`:                              "header",
		`{"id":"a","subject":"b","every":"1m","header":{"X":["a\r\nb"]}}`:                                   "header",
		`{"id":"a","subject":"b","every":"1m","start":"2026-01-02T00:00:00Z","end":"2026-01-01T00:00:00Z"}`: "end",
	} {
		s := sjParse(t, body)
		sjRequireFieldError(t, s.Validate(), field)
	}
}

// TestEveryGivenAsZero: "every":"0s" is a too short interval, not an absent
// one, for the strict parser and for the lenient decoder alike; a
// Schedule built in Go with Every 0 has no interval.
func TestEveryGivenAsZero(t *testing.T) {
	t.Parallel()
	const body = `{"id":"a","subject":"b","every":"0s"}`
	strict := sjParse(t, body)
	require.EqualError(t, strict.Validate(), "every: must be at least 1ms, got 0s")
	require.EqualError(t, strict.Clone().Validate(), "every: must be at least 1ms, got 0s", "a copy remembers it")
	lenient, err := sjUnmarshal(t, []byte(body))
	require.NoError(t, err)
	require.EqualError(t, lenient.Validate(), "every: must be at least 1ms, got 0s")

	both := sjParse(t, `{"id":"a","subject":"b","every":"0s","cron":"@daily"}`)
	sjRequireFieldError(t, both.Validate(), "cron", "every")

	built := &natsched.Schedule{ID: "a", Subject: "b"}
	require.EqualError(t, built.Validate(), "at: one of at, in, every or cron is required")
	require.EqualError(t, natsched.CheckEvery(0), "every: must be at least 1ms, got 0s")
	require.NoError(t, natsched.CheckEvery(time.Millisecond))
}

// ---------------------------------------------------------------------------
// ValidID and ValidSubject

var (
	sjIDRef      = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
	sjSubjectTok = regexp.MustCompile(`^[^\x00-\x20\x7f]+$`)
)

// sjRefSubject is the reference definition of a publishable subject.
func sjRefSubject(s string) bool {
	if s == "" || len(s) > natsched.MaxSubjectLen {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "*" || tok == ">" || !sjSubjectTok.MatchString(tok) {
			return false
		}
	}
	return true
}

// sjRandString draws a string of up to max pieces from alphabet.
func sjRandString(r *rand.Rand, alphabet []string, max int) string {
	n := r.IntN(max + 1)
	var b strings.Builder
	for range n {
		b.WriteString(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

func TestValidIDProperties(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", "0", "9", "_", "-", ".", ".", "*", ">", " ", "\t", "é", "/", ":", "\x00", "$", "~"}
	valid := 0
	for i := range 20_000 {
		var id string
		switch i % 3 {
		case 0:
			id = sjRandString(r, alphabet, 12)
		case 1:
			id = sjRandString(r, alphabet[:8], 12)
		default:
			id = sjRandString(r, alphabet[:6], 260)
		}
		want := len(id) <= 255 && sjIDRef.MatchString(id)
		require.Equal(t, want, natsched.ValidID(id), "ValidID(%q)", id)
		if !want {
			continue
		}
		valid++
		// A valid ID is a valid subject token sequence: API subjects built
		// from it are publishable, and it never contains a wildcard.
		require.True(t, natsched.ValidSubject(id), "ValidSubject(%q)", id)
		require.True(t, natsched.ValidSubject("natsched.api.get."+id))
		require.True(t, natsched.ValidSubject("natsched.in."+id))
		// Every prefix cut at a dot is valid too.
		if j := strings.LastIndexByte(id, '.'); j > 0 {
			require.True(t, natsched.ValidID(id[:j]), "prefix of %q", id)
			require.True(t, natsched.ValidID(id[j+1:]), "suffix of %q", id)
		}
	}
	require.Greater(t, valid, 2000, "the generator should produce enough valid IDs")

	for _, id := range []string{"a", "A", "0", "_", "-", "a.b", "a-b_c.D9", strings.Repeat("x", 255)} {
		require.True(t, natsched.ValidID(id), id)
	}
	for _, id := range []string{"", ".", "..", "a.", ".a", "a..b", "a b", "a.*", "a.>", "*", ">", "é",
		strings.Repeat("x", 256), "a\n", "a\x00"} {
		require.False(t, natsched.ValidID(id), id)
	}
}

func TestValidSubjectProperties(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{"a", "Z", "0", "-", "_", ":", "$", ".", ".", "*", ">", " ", "\t", "\n", "\r", "\x7f",
		"\x00", "é", "日", "\xff", "/", "#"}
	valid := 0
	for i := range 20_000 {
		var s string
		switch i % 3 {
		case 0:
			s = sjRandString(r, alphabet, 10)
		case 1:
			s = sjRandString(r, alphabet[:11], 10)
		default:
			s = sjRandString(r, alphabet[:8], 1100)
		}
		want := sjRefSubject(s)
		require.Equal(t, want, natsched.ValidSubject(s), "ValidSubject(%q)", s)
		if !want {
			continue
		}
		valid++
		require.NotContains(t, strings.Split(s, "."), "*")
		require.NotContains(t, strings.Split(s, "."), ">")
		require.False(t, strings.ContainsAny(s, " \t\r\n"), s)
		// Joining two valid subjects gives a valid one, within the limit.
		u := sjRandString(r, alphabet[:5], 5)
		if u != "" && len(s)+1+len(u) <= natsched.MaxSubjectLen {
			require.True(t, natsched.ValidSubject(s+"."+u), "%q + %q", s, u)
		}
		// Adding an empty token or a wildcard token makes it invalid.
		require.False(t, natsched.ValidSubject(s+"."), s)
		require.False(t, natsched.ValidSubject("."+s), s)
		require.False(t, natsched.ValidSubject(s+".*"), s)
		require.False(t, natsched.ValidSubject(s+".>"), s)
	}
	require.Greater(t, valid, 2000, "the generator should produce enough valid subjects")

	for _, s := range []string{"a", "a.b", "natsched.fire.x", "a.b*c", "a>b", "日本.x", "a-b_c:d$e",
		strings.Repeat("a", natsched.MaxSubjectLen)} {
		require.True(t, natsched.ValidSubject(s), s)
	}
	for _, s := range []string{"", ".", "*", ">", "a.*", "a.>", "*.a", "a..b", "a b", "a\tb", "a\x7f",
		strings.Repeat("a", natsched.MaxSubjectLen+1)} {
		require.False(t, natsched.ValidSubject(s), s)
	}
}

func TestReservedHeader(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"Nats-Msg-Id": true, "nats-msg-id": true, "NATS-EXPECTED-STREAM": true, "Nats-": true,
		"Natsched-Id": true, "natsched-type": true, "NATSCHED-PLANNED": true, "NaTsChEd-X": true,
		"Nats": false, "Natsched": false, "X-Nats-Id": false, "Natsx-A": false, "Natschedx-A": false,
		"X-Trace": false, "": false, " Nats-A": false,
	} {
		require.Equal(t, want, natsched.Reserved(name), "Reserved(%q)", name)
	}
	for _, h := range []string{natsched.HeaderMsgID, natsched.HeaderID, natsched.HeaderPlanned,
		natsched.HeaderRun, natsched.HeaderType, natsched.HeaderJitter} {
		require.True(t, natsched.Reserved(h), h)
	}
}

// TestParseScheduleKnownBugs pins the bugs found in schedule_json.go with
// the exact inputs; each is skipped until fixed.
func TestParseScheduleKnownBugs(t *testing.T) {
	t.Parallel()
	t.Run("nil schedule", func(t *testing.T) {
		t.Parallel()
		body := `{"id":"a","subject":"b","every":"1m"}`
		s, err := natsched.ParseSchedule([]byte(body), sjAccepted)
		require.NoError(t, err)
		require.NotNil(t, s)
		require.Equal(t, "a", s.ID)
		require.Equal(t, time.Minute, s.Every)
		var u natsched.Schedule
		require.NotPanics(t, func() { _ = u.UnmarshalJSON([]byte(body)) })
	})
	t.Run("year out of range", func(t *testing.T) {
		t.Parallel()
		for _, tm := range []string{"9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00+00:01"} {
			for _, f := range []string{"at", "start", "end"} {
				body := `{"id":"a","subject":"b","` + f + `":"` + tm + `"}`
				if f != "at" {
					body = `{"id":"a","subject":"b","every":"1m","` + f + `":"` + tm + `"}`
				}
				s, err := natsched.ParseSchedule([]byte(body), sjAccepted)
				if err != nil {
					sjRequireFieldError(t, err, f)
					continue
				}
				if verr := s.Validate(); verr != nil {
					sjRequireFieldError(t, verr, f)
					continue
				}
				out, err := s.MarshalJSON()
				require.NoError(t, err)
				_, err = natsched.ParseSchedule(out, sjAccepted)
				require.NoError(t, err, "%s re-parsed from %s", out, body)
			}
		}
	})
}
