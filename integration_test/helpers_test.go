package integration_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched/jetstream"
	"github.com/natsched/natsched/natschedtest"
)

// Wire names, spelled out as a client in another language would: the
// client side of these tests uses plain nats.go only.
const (
	apiPrefix      = "natsched.api"
	intakePrefix   = "natsched.in"
	rejectedPrefix = "natsched.rejected"
	intakeStream   = "NATSCHED_INTAKE"

	hdrErrCode = "Nats-Service-Error-Code"
	hdrErr     = "Nats-Service-Error"

	// reqTimeout bounds every API request: a request that gets no reply
	// within it fails the test.
	reqTimeout = 5 * time.Second
	// fireTimeout bounds waits for fired or rejected messages.
	fireTimeout = 10 * time.Second
	// clockSlack is how far an instance's idea of now may differ from
	// this host's: it corrects its clock by an estimate of the server's,
	// which on one host lags by the delivery delay of the lease updates
	// (milliseconds; more on a loaded machine).
	clockSlack = 250 * time.Millisecond
	// farFuture is a one-shot time that never fires during a test.
	farFuture = "2099-01-01T00:00:00Z"
)

// daemon is one embedded server with one scheduler instance, and a plain
// client connection to it.
type daemon struct {
	srv   *natschedtest.Server
	sched *jetstream.Scheduler // for tests of the Go API next to the wire
	nc    *nats.Conn
	js    js.JetStream
	name  string
}

// startDaemon runs a server (with srvOpts) and a scheduler named name on
// it, and connects a client.
func startDaemon(t *testing.T, name string, srvOpts []natschedtest.Option, opts ...jetstream.Option) *daemon {
	t.Helper()
	srv := natschedtest.RunServer(t, srvOpts...)
	s := startScheduler(t, srv, name, opts...)
	nc := srv.Conn(t)
	jsc, err := js.New(nc)
	require.NoError(t, err)
	d := &daemon{srv: srv, sched: s, nc: nc, js: jsc, name: name}
	// Start may return before the server has registered the service's
	// subscriptions: wait until the API answers at all.
	natschedtest.Eventually(t, reqTimeout, func() bool {
		_, err := nc.Request(apiPrefix+".status", nil, reqTimeout)
		return err == nil
	}, "the API answers")
	return d
}

// startScheduler starts an in-process scheduler on srv and closes it in
// t.Cleanup (before the server stops).
func startScheduler(t *testing.T, srv *natschedtest.Server, name string, opts ...jetstream.Option) *jetstream.Scheduler {
	t.Helper()
	var out io.Writer = io.Discard
	if os.Getenv("NATSCHED_TEST_LOG") != "" {
		out = os.Stderr
	}
	all := append([]jetstream.Option{
		jetstream.WithName(name),
		jetstream.WithLeaseTTL(time.Second),
		jetstream.WithLogger(slog.New(slog.NewTextHandler(out, nil))),
	}, opts...)
	s, err := jetstream.New(srv.JetStream(t), all...)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, s.Close(ctx))
	})
	return s
}

// body renders a request body: []byte and string are sent as they are,
// nil as an empty body, anything else as JSON.
func body(t *testing.T, v any) []byte {
	t.Helper()
	switch b := v.(type) {
	case nil:
		return nil
	case []byte:
		return b
	case string:
		return []byte(b)
	}
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// request sends body to subject and returns the reply; no reply within
// reqTimeout fails the test.
func request(t *testing.T, nc *nats.Conn, subject string, v any) *nats.Msg {
	t.Helper()
	return requestWithin(t, nc, subject, v, reqTimeout)
}

// requestWithin is request with its own timeout.
func requestWithin(t *testing.T, nc *nats.Conn, subject string, v any, timeout time.Duration) *nats.Msg {
	t.Helper()
	m, err := nc.Request(subject, body(t, v), timeout)
	require.NoError(t, err, "request to %q", subject)
	return m
}

// api calls natsched.api.<verb>[.<id>].
func (d *daemon) api(t *testing.T, verb, id string, v any) *nats.Msg {
	t.Helper()
	subject := apiPrefix + "." + verb
	if id != "" {
		subject += "." + id
	}
	return request(t, d.nc, subject, v)
}

// ok checks that m is a success reply and decodes its JSON object.
func ok(t *testing.T, m *nats.Msg) map[string]any {
	t.Helper()
	require.Empty(t, m.Header.Get(hdrErrCode), "unexpected error reply: %s %s", m.Header.Get(hdrErr), m.Data)
	return decode(t, m.Data)
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out map[string]any
	require.NoError(t, dec.Decode(&out), "reply %q", b)
	require.NotNil(t, out, "reply %q", b)
	return out
}

// apiError checks that m is the contract's error reply with code: both
// headers, and a body {"error":{"code":code,"message":<the same>}}. For a
// 400 the message must start with one of fields followed by ": " (when any
// are given). It returns the message.
func apiError(t *testing.T, m *nats.Msg, code int, fields ...string) string {
	t.Helper()
	require.NotEqual(t, "500", m.Header.Get(hdrErrCode), "a 500: %s", m.Data)
	require.Equal(t, strconv.Itoa(code), m.Header.Get(hdrErrCode), "error code header; reply %q headers %v", m.Data, m.Header)
	msg := m.Header.Get(hdrErr)
	require.NotEmpty(t, msg, "error message header")
	var reply struct {
		Error *struct {
			Code    *int    `json:"code"`
			Message *string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(m.Data))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&reply), "error body %q", m.Data)
	require.NotNil(t, reply.Error, "error body %q", m.Data)
	require.NotNil(t, reply.Error.Code, "error body %q", m.Data)
	require.NotNil(t, reply.Error.Message, "error body %q", m.Data)
	require.Equal(t, code, *reply.Error.Code, "error body %q", m.Data)
	require.Equal(t, msg, *reply.Error.Message, "header and body carry the same message")
	if code == 400 && len(fields) > 0 {
		named := false
		for _, f := range fields {
			named = named || strings.HasPrefix(msg, f+": ")
		}
		require.True(t, named, "400 message %q should start with one of %q followed by \": \"", msg, fields)
	}
	return msg
}

// str returns m[key] as a string ("" when absent), failing on another type.
func str(t *testing.T, m map[string]any, key string) string {
	t.Helper()
	v, present := m[key]
	if !present || v == nil {
		return ""
	}
	s, isStr := v.(string)
	require.True(t, isStr, "%s is %T (%v), want a string", key, v, v)
	return s
}

// num returns m[key] as an integer (0 when absent).
func num(t *testing.T, m map[string]any, key string) int64 {
	t.Helper()
	v, present := m[key]
	if !present || v == nil {
		return 0
	}
	n, isNum := v.(json.Number)
	require.True(t, isNum, "%s is %T (%v), want a number", key, v, v)
	i, err := n.Int64()
	require.NoError(t, err, "%s = %s", key, n)
	return i
}

// timeField parses m[key] as the contract renders times: RFC 3339 with
// nanoseconds, UTC.
func timeField(t *testing.T, m map[string]any, key string) time.Time {
	t.Helper()
	s := str(t, m, key)
	require.NotEmpty(t, s, "%s missing in %v", key, m)
	return parseUTC(t, key, s)
}

func parseUTC(t *testing.T, what, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err, "%s %q is not RFC 3339", what, s)
	require.True(t, strings.HasSuffix(s, "Z"), "%s %q is not in UTC", what, s)
	return tm
}

// checkSchedule checks what every schedule reply must look like: data in
// base64, never text or in, times in RFC 3339 UTC.
func checkSchedule(t *testing.T, m map[string]any) {
	t.Helper()
	require.NotContains(t, m, "text", "replies never carry text")
	require.NotContains(t, m, "in", "replies never carry in")
	require.Contains(t, m, "data", "replies always carry data")
	_, err := base64.StdEncoding.DecodeString(str(t, m, "data"))
	require.NoError(t, err, "data is standard base64")
	for _, k := range []string{"at", "start", "end", "next_run", "last_run", "created", "updated"} {
		if s := str(t, m, k); s != "" {
			parseUTC(t, k, s)
		}
	}
	require.NotEmpty(t, str(t, m, "id"))
	require.NotEmpty(t, str(t, m, "subject"))
	require.NotEmpty(t, str(t, m, "status"))
	require.Positive(t, num(t, m, "revision"))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// subscribe makes a core subscription and returns its messages.
func subscribe(t *testing.T, nc *nats.Conn, subject string) chan *nats.Msg {
	t.Helper()
	ch := make(chan *nats.Msg, 1024)
	sub, err := nc.ChanSubscribe(subject, ch)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(t, nc.Flush())
	return ch
}

// next waits for the next message on ch.
func next(t *testing.T, ch chan *nats.Msg, what string) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(fireTimeout):
		t.Fatalf("no %s within %s", what, fireTimeout)
		return nil
	}
}

// waitSchedule polls get until the schedule exists and cond holds.
func (d *daemon) waitSchedule(t *testing.T, id string, cond func(map[string]any) bool, what string) map[string]any {
	t.Helper()
	var last map[string]any
	natschedtest.Eventually(t, fireTimeout, func() bool {
		m := d.api(t, "get", id, nil)
		if m.Header.Get(hdrErrCode) != "" {
			return false
		}
		last = decode(t, m.Data)
		return cond(last)
	}, "%s: %s (last %v)", id, what, &last)
	return last
}

// waitGone polls get until it answers 404.
func (d *daemon) waitGone(t *testing.T, id string) {
	t.Helper()
	natschedtest.Eventually(t, fireTimeout, func() bool {
		return d.api(t, "get", id, nil).Header.Get(hdrErrCode) == "404"
	}, "%s deleted", id)
}

// status returns natsched.api.status.
func (d *daemon) status(t *testing.T) map[string]any {
	t.Helper()
	return ok(t, d.api(t, "status", "", nil))
}

// waitLeader waits until the status names this daemon's instance as leader.
func (d *daemon) waitLeader(t *testing.T) {
	t.Helper()
	natschedtest.Eventually(t, fireTimeout, func() bool {
		return str(t, d.status(t), "leader") == d.name
	}, "leader %s", d.name)
}

// intakeEmpty waits until the intake work queue holds no message.
func (d *daemon) intakeEmpty(t *testing.T) {
	t.Helper()
	var msgs uint64
	natschedtest.Eventually(t, fireTimeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), reqTimeout)
		defer cancel()
		s, err := d.js.Stream(ctx, intakeStream)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		if err != nil {
			return false
		}
		msgs = info.State.Msgs
		return msgs == 0
	}, "intake stream drained (holds %d)", &msgs)
}

// publishIntake publishes a durable intake message with JetStream.
func (d *daemon) publishIntake(t *testing.T, id string, h nats.Header, data string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), reqTimeout)
	defer cancel()
	_, err := d.js.PublishMsg(ctx, &nats.Msg{Subject: intakePrefix + "." + id, Header: h, Data: []byte(data)})
	require.NoError(t, err)
}

// createStream creates a stream capturing subjects (for targets outside
// natsched.fire.>).
func (d *daemon) createStream(t *testing.T, name string, subjects ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), reqTimeout)
	defer cancel()
	_, err := d.js.CreateStream(ctx, js.StreamConfig{Name: name, Subjects: subjects, Storage: js.MemoryStorage})
	require.NoError(t, err)
}

// ids lists the IDs of a list reply's schedules.
func ids(t *testing.T, page map[string]any) []string {
	t.Helper()
	raw, isList := page["schedules"].([]any)
	require.True(t, isList, "schedules is %T in %v", page["schedules"], page)
	out := make([]string, 0, len(raw))
	for _, s := range raw {
		m, isObj := s.(map[string]any)
		require.True(t, isObj)
		checkSchedule(t, m)
		out = append(out, str(t, m, "id"))
	}
	return out
}
