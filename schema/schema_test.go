// Package schema_test checks schedule.schema.json against the daemon: real
// replies of every verb validate, invalid documents are refused, and the
// schema describes exactly the fields replies carry.
package schema_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched/jetstream"
	"github.com/natsched/natsched/natschedtest"
)

const schemaFile = "schedule.schema.json"

// defs are the $defs that documents are validated against.
var defs = []string{"request", "reply", "list_request", "list_reply", "status_reply", "error_reply"}

// schemas compiles the schema file once per def, asserting formats.
func schemas(t *testing.T) (map[string]*jsonschema.Schema, map[string]any) {
	t.Helper()
	f, err := os.Open(schemaFile)
	require.NoError(t, err)
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	require.NoError(t, c.AddResource(schemaFile, doc))
	out := map[string]*jsonschema.Schema{}
	for _, def := range append([]string{""}, defs...) {
		loc := schemaFile
		if def != "" {
			loc += "#/$defs/" + def
		}
		sch, err := c.Compile(loc)
		require.NoError(t, err, loc)
		out[def] = sch
	}
	return out, doc.(map[string]any)
}

func validate(sch *jsonschema.Schema, body []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return err
	}
	return sch.Validate(v)
}

// properties returns the properties a def declares and the ones it
// requires.
func properties(t *testing.T, doc map[string]any, path ...string) (declared, required []string) {
	t.Helper()
	node := doc["$defs"].(map[string]any)
	var obj map[string]any
	for i, p := range path {
		if i == 0 {
			obj = node[p].(map[string]any)
			continue
		}
		obj = obj["properties"].(map[string]any)[p].(map[string]any)
	}
	require.Equal(t, false, obj["additionalProperties"], "%v must refuse undescribed fields", path)
	declared = slices.Sorted(maps.Keys(obj["properties"].(map[string]any)))
	for _, r := range obj["required"].([]any) {
		required = append(required, r.(string))
	}
	slices.Sort(required)
	return declared, required
}

// startDaemon runs a server and one scheduler instance serving the API on
// it, as `natsched server` does.
func startDaemon(t *testing.T, opts ...jetstream.Option) *natschedtest.Server {
	t.Helper()
	srv := natschedtest.RunServer(t)
	opts = append([]jetstream.Option{jetstream.WithName("schema"), jetstream.WithLeaseTTL(time.Second),
		jetstream.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	s, err := jetstream.New(srv.JetStream(t), opts...)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, s.Start(ctx))
	t.Cleanup(func() { require.NoError(t, s.Close(context.Background())) })
	return srv
}

// fields records, per def, which fields each reply of that def carried.
type fields map[string][]map[string]bool

func (f fields) add(t *testing.T, def string, body []byte) {
	t.Helper()
	var obj map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &obj), "%s", body)
	keys := map[string]bool{}
	for k := range obj {
		keys[k] = true
	}
	f[def] = append(f[def], keys)
	switch def {
	case "list_reply":
		var page struct{ Schedules []json.RawMessage }
		require.NoError(t, json.Unmarshal(body, &page))
		for _, s := range page.Schedules {
			f.add(t, "reply", s)
		}
	case "error_reply":
		f.add(t, "error_reply.error", obj["error"])
	}
}

// seen returns the fields some reply carried and those every reply did.
func (f fields) seen(def string) (some, every []string) {
	count := map[string]int{}
	for _, keys := range f[def] {
		for k := range keys {
			count[k]++
		}
	}
	for k, n := range count {
		some = append(some, k)
		if n == len(f[def]) {
			every = append(every, k)
		}
	}
	slices.Sort(some)
	slices.Sort(every)
	return some, every
}

// TestRealReplies sends every verb to a daemon, validates each reply
// against its def, and requires the schema to describe exactly the fields
// the replies carry: each declared field is carried by some reply, each
// required one by all, and no reply carries another (additionalProperties
// is false). A field added to or dropped from a reply fails this test until
// the schema says so.
func TestRealReplies(t *testing.T) {
	t.Parallel()
	sch, doc := schemas(t)
	srv := startDaemon(t, jetstream.WithAllow(jetstream.AllowRule{IDPattern: "schema.>", SubjectPattern: "natsched.fire.schema.>"}))
	nc := srv.Conn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error

	seen := fields{}
	var codes []string
	call := func(def, subject string, body any, hdr ...string) map[string]any {
		t.Helper()
		var data []byte
		switch b := body.(type) {
		case nil:
		case string:
			data = []byte(b)
		default:
			data, err = json.Marshal(b)
			require.NoError(t, err)
		}
		req := nats.NewMsg(subject)
		req.Data = data
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		m, err := nc.RequestMsg(req, 10*time.Second)
		require.NoError(t, err, subject)
		isError := m.Header.Get(micro.ErrorCodeHeader) != ""
		require.Equal(t, def == "error_reply", isError, "%s: %s", subject, m.Data)
		require.NoError(t, validate(sch[def], m.Data), "%s reply against $defs/%s: %s", subject, def, m.Data)
		if def == "reply" {
			require.NoError(t, validate(sch["request"], m.Data), "a reply can be put back: %s", m.Data)
		}
		if def == "reply" || def == "request" {
			require.NoError(t, validate(sch[""], m.Data), "the document itself accepts a schedule: %s", m.Data)
		}
		seen.add(t, def, m.Data)
		if isError {
			codes = append(codes, m.Header.Get(micro.ErrorCodeHeader))
		}
		var out map[string]any
		require.NoError(t, json.Unmarshal(m.Data, &out))
		return out
	}
	put := func(id string, body map[string]any) map[string]any {
		t.Helper()
		if _, ok := body["subject"]; !ok {
			body["subject"] = "natsched.fire.schema." + strings.ReplaceAll(id, ".", "_")
		}
		require.NoError(t, validate(sch["request"], mustJSON(t, body)), "request %v", body)
		return call("reply", "natsched.api.put."+id, body)
	}
	start := time.Now().Add(time.Hour).UTC().Truncate(time.Second)

	// put with each kind, and every option.
	put("schema.at", map[string]any{"at": start.Format(time.RFC3339Nano), "text": "hi", "header": map[string]any{"X-Trace": "abc"}})
	put("schema.in", map[string]any{"in": "2d", "data": "aGk=", "header": map[string]any{"X-Multi": []string{"1", "2"}}})
	put("schema.every", map[string]any{"every": "1d12h", "start": start.Format(time.RFC3339), "end": start.Add(30 * 24 * time.Hour).Format(time.RFC3339),
		"max_runs": 5, "misfire": "all", "catchup": "2h", "jitter": "1s"})
	put("schema.cron", map[string]any{"cron": "0 0 9 * * MON-FRI", "tz": "Europe/Berlin", "paused": true})
	put("schema.typed", map[string]any{"in": "1h", "type": "email.send", "data": "e30="})
	traced := call("reply", "natsched.api.put.schema.traced", map[string]any{"subject": "natsched.fire.schema.traced", "in": "1h"},
		"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate", "vendor=1")
	require.Equal(t, "vendor=1", traced["tracestate"], "the put's trace context is stored")

	// The other verbs.
	call("reply", "natsched.api.get.schema.at", nil)
	call("reply", "natsched.api.pause.schema.every", nil)
	call("reply", "natsched.api.resume.schema.every", nil)
	trig := call("reply", "natsched.api.trigger.schema.cron", nil)
	require.Contains(t, trig, "triggers", "the trigger reply shows the pending trigger")
	call("reply", "natsched.api.cancel.schema.at", nil)

	// A fired one-shot: done, last_run, no next_run.
	put("schema.now", map[string]any{"at": time.Now().UTC().Format(time.RFC3339Nano)})
	natschedtest.Eventually(t, 10*time.Second, func() bool {
		m, err := nc.Request("natsched.api.get.schema.now", nil, 5*time.Second)
		return err == nil && bytes.Contains(m.Data, []byte(`"status":"done"`))
	}, "schema.now fires")
	done := call("reply", "natsched.api.get.schema.now", nil)
	require.Contains(t, done, "last_run")
	require.NotContains(t, done, "next_run")

	// list: a page with a cursor, a page with a skipped value.
	kv, err := srv.JetStream(t).KeyValue(ctx, "natsched_schedules")
	require.NoError(t, err)
	_, err = kv.Put(ctx, "schema.zzz", []byte("not a schedule"))
	require.NoError(t, err)
	listReq := map[string]any{"limit": 2}
	require.NoError(t, validate(sch["list_request"], mustJSON(t, listReq)))
	page := call("list_reply", "natsched.api.list.schema", listReq)
	require.NotEmpty(t, page["next"])
	page = call("list_reply", "natsched.api.list.schema", map[string]any{"after": page["next"], "status": ""})
	require.EqualValues(t, 1, page["skipped"])
	call("list_reply", "natsched.api.list", nil)
	call("status_reply", "natsched.api.status", nil)

	// Error replies of each code a daemon can be made to give here (503 is
	// checked by TestInvalidDocuments' well-formed error bodies).
	call("error_reply", "natsched.api.put.schema.bad", map[string]any{"subject": "natsched.fire.schema.x", "cron": "* * * * * * * *"})
	call("error_reply", "natsched.api.put.schema.bad", map[string]any{"subject": "natsched.fire.schema.x", "every": "1s", "cronn": "x"})
	call("error_reply", "natsched.api.list", map[string]any{"limit": "ten"})
	call("error_reply", "natsched.api.get.bad%20id", nil)
	call("error_reply", "natsched.api.put.schema.forbidden", map[string]any{"subject": "natsched.fire.other", "in": "1h"})
	call("error_reply", "natsched.api.get.schema.none", nil)
	every := call("reply", "natsched.api.get.schema.every", nil)
	every["every"] = "2h"
	call("reply", "natsched.api.put.schema.every", every)
	call("error_reply", "natsched.api.put.schema.every", every) // the revision moved on
	call("error_reply", "natsched.api.trigger.schema.now", nil) // done
	call("error_reply", "natsched.api.put.schema.big", map[string]any{"in": "1h", "subject": "natsched.fire.schema.big",
		"header": map[string]any{"X-Big": strings.Repeat("x", 70<<10)}})
	call("error_reply", "natsched.api.get.schema.zzz", nil)
	require.ElementsMatch(t, []string{"400", "400", "400", "400", "403", "404", "409", "409", "413", "422"}, codes)

	for _, path := range [][]string{{"reply"}, {"list_reply"}, {"status_reply"}, {"error_reply"}, {"error_reply", "error"}} {
		key := strings.Join(path, ".")
		declared, required := properties(t, doc, path...)
		some, every := seen.seen(key)
		require.Equal(t, declared, some, "$defs/%s: the fields declared must be those some reply carried", key)
		require.Equal(t, required, every, "$defs/%s: the fields required must be those every reply carried", key)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// TestInvalidDocuments: the schema refuses what the contract refuses, in
// each def, and accepts well-formed documents the daemon could not easily
// be made to send here (a 503).
func TestInvalidDocuments(t *testing.T) {
	t.Parallel()
	sch, _ := schemas(t)
	const reply = `"id":"a","subject":"s.x","paused":false,"data":"","status":"active","runs":0,"created":"2026-01-01T00:00:00Z","updated":"2026-01-01T00:00:00Z","revision":1,"last_error":"","generation":1`
	for _, tc := range []struct {
		def, doc string
		valid    bool
	}{
		{"reply", `{` + reply + `,"at":"2026-01-01T00:00:00Z"}`, true},
		{"reply", `{` + reply + `,"at":"2026-01-01T00:00:00Z","in":"5m"}`, false},    // replies never carry in
		{"reply", `{` + reply + `,"at":"2026-01-01T00:00:00Z","text":"x"}`, false},   // nor text
		{"reply", `{` + reply + `,"at":"2026-01-01T00:00:00Z","extra":1}`, false},    // nor anything undescribed
		{"reply", `{` + reply + `,"at":"2026-01-01T01:00:00+01:00"}`, false},         // replies are in UTC
		{"reply", `{` + reply + `,"at":"2026-01-01T00:00:00Z","every":"1s"}`, false}, // one kind
		{"reply", `{` + reply + `}`, false},                                          // at least one
		{"reply", `{` + strings.Replace(reply, `"runs":0,`, ``, 1) + `,"cron":"@daily"}`, false},
		{"reply", `{` + strings.Replace(reply, `"runs":0`, `"runs":"0"`, 1) + `,"cron":"@daily"}`, false},
		{"reply", `{` + reply + `,"cron":"@daily","status":"cancelled"}`, false},
		{"list_reply", `{"schedules":[],"next":"","skipped":0}`, true},
		{"list_reply", `{"schedules":[],"next":""}`, false},
		{"list_reply", `{"schedules":[{"id":"a"}],"next":"","skipped":0}`, false},
		{"list_request", `{}`, true},
		{"list_request", `{"status":"done","limit":10,"after":"a.b"}`, true},
		{"list_request", `{"status":"cancelled"}`, false},
		{"list_request", `{"limit":-1}`, false},
		{"list_request", `{"limit":"10"}`, false},
		{"list_request", `{"prefix":"a"}`, false},
		{"status_reply", `{"instance":"a","leader":"","is_leader":false,"pending":0,"fired":0,"late":0,"duplicates":0,"publish_failures":0,"refused":0,"fenced":0,"version":"v1","started":"2026-01-01T00:00:00Z","clock_offset":"-1.5ms","partitions":1,"held_partitions":[0],"partition_leaders":["a"]}`, true},
		{"status_reply", `{"instance":"a","leader":"","is_leader":false,"pending":0,"fired":0,"late":0,"duplicates":0,"publish_failures":0,"refused":0,"fenced":0,"version":"v1","started":"2026-01-01T00:00:00Z","clock_offset":"","partitions":6,"held_partitions":[],"partition_leaders":["a","","b","a","b",""]}`, true},
		{"status_reply", `{"instance":"a","leader":"","is_leader":false,"pending":0,"fired":0,"late":0,"duplicates":0,"publish_failures":0,"refused":0,"fenced":0,"version":"v1","started":"2026-01-01T00:00:00Z","clock_offset":"soon","partitions":1,"held_partitions":[],"partition_leaders":[""]}`, false},
		{"status_reply", `{"instance":"a","leader":"","is_leader":false,"pending":0,"fired":0,"late":0,"duplicates":0,"publish_failures":0,"refused":0}`, false},
		{"status_reply", `{"instance":"a","leader":"","is_leader":"no","pending":0,"fired":0,"late":0,"duplicates":0,"publish_failures":0,"refused":0,"fenced":0}`, false},
		{"error_reply", `{"error":{"code":503,"message":"natsched: not ready"}}`, true},
		{"error_reply", `{"error":{"code":400,"message":"cron: expected 5, 6 or 7 fields, got 8"}}`, true},
		{"error_reply", `{"error":{"code":400,"message":"no field named"}}`, false},
		{"error_reply", `{"error":{"code":500,"message":"boom"}}`, false},
		{"error_reply", `{"error":{"code":404}}`, false},
		{"error_reply", `{"error":{"code":404,"message":"x","field":"y"}}`, false},
		{"error_reply", `{"error":{"code":404,"message":"x"},"schedule":{}}`, false},
	} {
		err := validate(sch[tc.def], []byte(tc.doc))
		if tc.valid {
			require.NoError(t, err, "$defs/%s: %s", tc.def, tc.doc)
		} else {
			require.Error(t, err, "$defs/%s must refuse %s", tc.def, tc.doc)
		}
	}
}

// requestCases are put bodies the schema and the daemon must agree on.
// Rules only the daemon checks (every >= 1ms, cron and zone parsing, end
// after start, jitter below the interval, targets and limits) are not here.
var requestCases = []struct {
	name  string
	body  string
	valid bool
}{
	{"at", `{"subject":"natsched.fire.req","at":"2099-01-01T00:00:00.25+01:00","text":"hi"}`, true},
	{"in days", `{"subject":"natsched.fire.req","in":"2d","data":"aGk="}`, true},
	{"every", `{"subject":"natsched.fire.req","every":"1d12h","start":"2099-01-01T00:00:00Z","end":"2099-02-01T00:00:00Z","max_runs":3,"misfire":"skip","catchup":"1h","jitter":"1s","paused":true}`, true},
	{"cron", `{"subject":"natsched.fire.req","cron":"@daily","tz":"Europe/Berlin","header":{"X-A":"1","X-B":["1","2"]}}`, true},
	{"id matches", `{"id":"agree.id","subject":"natsched.fire.req","in":"1h"}`, true},
	{"state fields ignored", `{"subject":"natsched.fire.req","in":"1h","status":"done","runs":3,"last_error":"","generation":5,"triggers":[]}`, true},
	{"trace context in the body is state, ignored", `{"subject":"natsched.fire.req","in":"1h","traceparent":"x","tracestate":"y"}`, true},
	{"unknown field", `{"subject":"natsched.fire.req","in":"1h","cronn":"x"}`, false},
	{"no subject", `{"in":"1h"}`, false},
	{"no kind", `{"subject":"natsched.fire.req"}`, false},
	{"two kinds", `{"subject":"natsched.fire.req","in":"1h","cron":"@daily"}`, false},
	{"at and in", `{"subject":"natsched.fire.req","in":"1h","at":"2099-01-01T00:00:00Z"}`, false},
	{"text and data", `{"subject":"natsched.fire.req","in":"1h","text":"a","data":"YQ=="}`, false},
	{"data not base64", `{"subject":"natsched.fire.req","in":"1h","data":"a b"}`, false},
	{"wrong type: in", `{"subject":"natsched.fire.req","in":60}`, false},
	{"wrong type: paused", `{"subject":"natsched.fire.req","in":"1h","paused":"yes"}`, false},
	{"wrong type: max_runs", `{"subject":"natsched.fire.req","every":"1h","max_runs":"3"}`, false},
	{"negative max_runs", `{"subject":"natsched.fire.req","every":"1h","max_runs":-1}`, false},
	{"fractional max_runs", `{"subject":"natsched.fire.req","every":"1h","max_runs":1.5}`, false},
	{"bad duration", `{"subject":"natsched.fire.req","in":"5 minutes"}`, false},
	{"negative duration", `{"subject":"natsched.fire.req","in":"-5m"}`, false},
	{"day in words", `{"subject":"natsched.fire.req","every":"1 day"}`, false},
	{"bad time", `{"subject":"natsched.fire.req","at":"tomorrow"}`, false},
	{"wildcard subject", `{"subject":"natsched.fire.*","in":"1h"}`, false},
	{"subject with space", `{"subject":"natsched.fire. x","in":"1h"}`, false},
	{"empty token", `{"subject":"natsched..fire","in":"1h"}`, false},
	{"bad misfire", `{"subject":"natsched.fire.req","every":"1h","misfire":"sometimes"}`, false},
	{"reserved header", `{"subject":"natsched.fire.req","in":"1h","header":{"Nats-Msg-Id":["x"]}}`, false},
	{"reserved header, any case", `{"subject":"natsched.fire.req","in":"1h","header":{"natsched-id":["x"]}}`, false},
	{"header with a line break", `{"subject":"natsched.fire.req","in":"1h","header":{"X-A":["a\r\nb"]}}`, false},
	{"start on a one-shot", `{"subject":"natsched.fire.req","in":"1h","start":"2099-01-01T00:00:00Z"}`, false},
	{"bad id in body", `{"id":"a b","subject":"natsched.fire.req","in":"1h"}`, false},
	{"not an object", `[]`, false},
}

// TestRequestsAgreeWithTheDaemon puts each request case to a daemon: the
// schema accepts it exactly when the daemon does.
func TestRequestsAgreeWithTheDaemon(t *testing.T) {
	t.Parallel()
	sch, _ := schemas(t)
	nc := startDaemon(t).Conn(t)
	for _, tc := range requestCases {
		schemaErr := validate(sch["request"], []byte(tc.body))
		require.Equal(t, tc.valid, schemaErr == nil, "%s: schema says %v", tc.name, schemaErr)
		m, err := nc.Request("natsched.api.put.agree.id", []byte(tc.body), 10*time.Second)
		require.NoError(t, err)
		code := m.Header.Get(micro.ErrorCodeHeader)
		if tc.valid {
			require.Empty(t, code, "%s: the daemon refused it: %s", tc.name, m.Data)
		} else {
			require.Equal(t, "400", code, "%s: the daemon answered %s", tc.name, m.Data)
		}
	}
}
