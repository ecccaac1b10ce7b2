package cli

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/natschedtest"
)

// fakeService answers <prefix>.api.* as the wire contract says, from a map,
// so that the client commands are tested without a scheduler.
type fakeService struct {
	mu       sync.Mutex
	scheds   map[string]*natsched.Schedule
	requests []string // subjects, in order
	bodies   map[string][]byte
	pageSize int
	// bumpOnGet makes every get change the revision afterwards, as a fire
	// between an edit's get and put does.
	bumpOnGet bool
}

func startFake(t *testing.T, prefix string) (url string, f *fakeService) {
	t.Helper()
	srv := natschedtest.RunServer(t)
	nc := srv.Conn(t)
	f = &fakeService{scheds: map[string]*natsched.Schedule{}, bodies: map[string][]byte{}, pageSize: 100}
	_, err := nc.Subscribe(prefix+".api.>", func(m *nats.Msg) {
		reply := f.handle(strings.TrimPrefix(m.Subject, prefix+".api."), m.Data)
		reply.Subject = m.Reply
		_ = nc.PublishMsg(reply)
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	return srv.URL(), f
}

func errorReply(code int, msg string) *nats.Msg {
	m := nats.NewMsg("")
	m.Header.Set("Nats-Service-Error-Code", strconv.Itoa(code))
	m.Header.Set("Nats-Service-Error", msg)
	m.Data, _ = json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": msg}})
	return m
}

func jsonReply(v any) *nats.Msg {
	m := nats.NewMsg("")
	m.Data, _ = json.Marshal(v)
	return m
}

func (f *fakeService) handle(rest string, body []byte) *nats.Msg {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, rest)
	verb, id, _ := strings.Cut(rest, ".")
	f.bodies[verb] = body
	switch verb {
	case "put":
		s, err := natsched.ParseSchedule(body, time.Now())
		if err != nil {
			return errorReply(400, err.Error())
		}
		if err := s.Validate(); err != nil {
			return errorReply(400, err.Error())
		}
		if strings.HasPrefix(s.Subject, "forbidden.") {
			return errorReply(403, "target not allowed for "+id)
		}
		prev := f.scheds[id]
		if s.Revision != 0 && (prev == nil || prev.Revision != s.Revision) {
			return errorReply(409, fmt.Sprintf("revision: %d is not the current revision of %s", s.Revision, id))
		}
		s.Status, s.Revision, s.Created, s.Updated = natsched.StatusActive, 1, time.Now(), time.Now()
		if prev != nil {
			s.Revision = prev.Revision + 1
		}
		f.scheds[id] = s
		return jsonReply(s)
	case "get", "cancel", "pause", "resume", "trigger":
		s, ok := f.scheds[id]
		if !ok {
			return errorReply(404, "natsched: schedule not found: "+id)
		}
		switch verb {
		case "cancel":
			delete(f.scheds, id)
		case "pause":
			s.Status, s.Paused = natsched.StatusPaused, true
		case "resume":
			s.Status, s.Paused = natsched.StatusActive, false
		}
		reply := jsonReply(s)
		if verb == "get" && f.bumpOnGet {
			s.Revision++
		}
		return reply
	case "list":
		var req listRequest
		if len(body) > 0 {
			if err := json.Unmarshal(body, &req); err != nil {
				return errorReply(400, "body: "+err.Error())
			}
		}
		limit := f.pageSize
		if req.Limit > 0 && req.Limit < limit {
			limit = req.Limit
		}
		ids := make([]string, 0, len(f.scheds))
		for k := range f.scheds {
			if (id == "" || k == id || strings.HasPrefix(k, id+".")) && k > req.After &&
				(req.Status == "" || string(f.scheds[k].Status) == req.Status) {
				ids = append(ids, k)
			}
		}
		slices.Sort(ids)
		out := struct {
			Schedules []*natsched.Schedule `json:"schedules"`
			Next      string               `json:"next"`
		}{Schedules: []*natsched.Schedule{}}
		for i, k := range ids {
			if i == limit {
				out.Next = ids[i-1]
				break
			}
			out.Schedules = append(out.Schedules, f.scheds[k])
		}
		return jsonReply(out)
	case "status":
		return jsonReply(map[string]any{"instance": "i1", "leader": "i1", "pending": len(f.scheds), "fired": 3, "late": 1, "extra_field": true})
	}
	return errorReply(404, "no such endpoint")
}

func TestClientCommandsAgainstFake(t *testing.T) {
	t.Parallel()
	url, f := startFake(t, "natsched")
	s := []string{"-s", url}

	code, out, errOut := runCLI(t, "", append([]string{"add", "billing.inv.1", "--subject", "natsched.fire.billing", "--in", "5m", "--data", "hello", "--header", "X-Trace:abc"}, s...)...)
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "billing.inv.1")
	require.Contains(t, out, `"hello" (5 bytes)`)
	require.Contains(t, out, "X-Trace: abc")
	require.JSONEq(t, `{"id":"billing.inv.1","subject":"natsched.fire.billing","in":"5m0s","header":{"X-Trace":["abc"]},"data":"aGVsbG8="}`, string(f.bodies["put"]))

	code, out, errOut = runCLI(t, "", append([]string{"get", "billing.inv.1", "--json"}, s...)...)
	require.Equal(t, ExitOK, code, errOut)
	var got natsched.Schedule
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Equal(t, "billing.inv.1", got.ID)
	require.Equal(t, []byte("hello"), got.Data)

	code, out, errOut = runCLI(t, "", append([]string{"pause", "billing.inv.1"}, s...)...)
	require.Equal(t, ExitOK, code, errOut)
	require.Regexp(t, `status:\s+paused`, out)

	code, out, errOut = runCLI(t, "", append([]string{"trigger", "billing.inv.1"}, s...)...)
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "Triggered billing.inv.1")

	code, out, errOut = runCLI(t, "", append([]string{"status"}, s...)...)
	require.Equal(t, ExitOK, code, errOut)
	require.Regexp(t, `leader:\s+i1`, out)
	require.Regexp(t, `pending:\s+1`, out)
	require.Regexp(t, `extra field:\s+true`, out)

	code, out, errOut = runCLI(t, "", append([]string{"cancel", "billing.inv.1"}, s...)...)
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "Cancelled billing.inv.1")

	code, out, errOut = runCLI(t, "", append([]string{"get", "billing.inv.1"}, s...)...)
	require.Equal(t, ExitServer, code)
	require.Empty(t, out)
	require.Equal(t, "natsched get: natsched: schedule not found: billing.inv.1 (404)\n", errOut)

	// A refusal the client cannot see coming: exit 1, the service's message.
	code, out, errOut = runCLI(t, "", append([]string{"add", "x", "--subject", "forbidden.s", "--every", "1s"}, s...)...)
	require.Equal(t, ExitServer, code)
	require.Empty(t, out)
	require.Equal(t, "natsched add: target not allowed for x (403)\n", errOut)

	require.Equal(t, []string{"put.billing.inv.1", "get.billing.inv.1", "pause.billing.inv.1", "trigger.billing.inv.1",
		"status", "cancel.billing.inv.1", "get.billing.inv.1", "put.x"}, f.requests)
}

func TestListFollowsCursors(t *testing.T) {
	t.Parallel()
	url, f := startFake(t, "natsched")
	f.pageSize = 7
	for i := range 30 {
		id := fmt.Sprintf("ns.%02d", i)
		f.scheds[id] = &natsched.Schedule{ID: id, Subject: "s", Every: time.Minute, Status: natsched.StatusActive}
	}
	f.scheds["other"] = &natsched.Schedule{ID: "other", Subject: "s", Cron: "@daily", TZ: "Europe/Berlin", Status: natsched.StatusPaused}
	f.scheds["nsx"] = &natsched.Schedule{ID: "nsx", Subject: "s", At: time.Now(), Status: natsched.StatusDone}

	code, out, errOut := runCLI(t, "", "ls", "-s", url)
	require.Equal(t, ExitOK, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 33)
	require.Regexp(t, `^ID\s+STATUS\s+NEXT RUN\s+RUNS\s+SUBJECT\s+WHEN$`, lines[0])
	require.Regexp(t, `^ns\.00\s+active\s+-\s+0\s+s\s+every 1m0s$`, lines[1])
	require.Regexp(t, `^other\s+paused\s+-\s+0\s+s\s+cron @daily \(Europe/Berlin\)$`, lines[32])

	code, out, errOut = runCLI(t, "", "ls", "ns", "--json", "-s", url)
	require.Equal(t, ExitOK, code, errOut)
	var list struct {
		Schedules []natsched.Schedule `json:"schedules"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &list))
	require.Len(t, list.Schedules, 30)
	require.NotContains(t, out, `"next"`)

	code, out, errOut = runCLI(t, "", "ls", "--limit", "10", "--json", "-s", url)
	require.Equal(t, ExitOK, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &list))
	require.Len(t, list.Schedules, 10)
	require.Equal(t, "ns.09", list.Schedules[9].ID)

	code, out, errOut = runCLI(t, "", "ls", "--status", "done", "-s", url)
	require.Equal(t, ExitOK, code, errOut)
	require.Len(t, strings.Split(strings.TrimSpace(out), "\n"), 2)
	require.JSONEq(t, `{"status":"done","limit":100}`, string(f.bodies["list"]))

	code, out, errOut = runCLI(t, "", "ls", "zzz", "-s", url)
	require.Equal(t, ExitOK, code, errOut)
	require.Empty(t, out)
	require.Equal(t, "no schedules\n", errOut)

	code, out, errOut = runCLI(t, "", "ls", "zzz", "--json", "-s", url)
	require.Equal(t, ExitOK, code, errOut)
	require.JSONEq(t, `{"schedules":[]}`, out)
}

func TestServerSideFailures(t *testing.T) {
	t.Parallel()
	url, _ := startFake(t, "natsched")

	// Only a JSON error body, no headers.
	srv := natschedtest.RunServer(t)
	nc := srv.Conn(t)
	_, err := nc.Subscribe("natsched.api.get.>", func(m *nats.Msg) {
		_ = m.Respond([]byte(`{"error":{"code":403,"message":"subject: not allowed"}}`))
	})
	require.NoError(t, err)
	// A service that never answers.
	_, err = nc.Subscribe("mute.api.>", func(*nats.Msg) {})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())

	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"no responders", []string{"get", "a", "-s", url, "--prefix", "other"}, "no natsched service answers on other.api"},
		{"body-only error", []string{"get", "a", "-s", srv.URL()}, "subject: not allowed (403)"},
		{"timeout", []string{"status", "-s", srv.URL(), "--prefix", "mute", "--timeout", "200ms"}, "no reply on mute.api.status within 200ms"},
		{"cannot connect", []string{"status", "-s", "nats://127.0.0.1:1", "--timeout", "500ms"}, "cannot connect to nats://127.0.0.1:1"},
		{"password redacted", []string{"status", "-s", "nats://u:hunter2@127.0.0.1:1", "--timeout", "500ms"}, "nats://u:xxxxx@127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCLI(t, "", tt.args...)
			require.Equal(t, ExitServer, code, errOut)
			require.Empty(t, out)
			require.Contains(t, errOut, tt.msg)
			require.NotContains(t, errOut, "hunter2")
		})
	}
}

func TestNATSURLFromEnv(t *testing.T) {
	t.Parallel()
	url, _ := startFake(t, "natsched")
	var out, errOut strings.Builder
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: func(k string) string {
		if k == "NATS_URL" {
			return url
		}
		return ""
	}}
	require.Equal(t, ExitOK, run(t.Context(), e, []string{"status"}), errOut.String())
	require.Contains(t, out.String(), "i1")
}

func TestEditConflict(t *testing.T) {
	t.Parallel()
	url, f := startFake(t, "natsched")
	code, _, errOut := runCLI(t, "", "add", "e.x", "--subject", "s.t", "--every", "1h", "-s", url)
	require.Equal(t, ExitOK, code, errOut)

	code, out, errOut := runCLI(t, "", "edit", "e.x", "--every", "2h", "--json", "-s", url)
	require.Equal(t, ExitOK, code, errOut)
	var got natsched.Schedule
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Equal(t, 2*time.Hour, got.Every)
	require.EqualValues(t, 2, got.Revision)
	require.Contains(t, string(f.bodies["put"]), `"revision":1`, "edit puts back with the revision it read")

	f.mu.Lock()
	f.bumpOnGet = true
	f.mu.Unlock()
	code, out, errOut = runCLI(t, "", "edit", "e.x", "--data", "new", "-s", url)
	require.Equal(t, ExitServer, code)
	require.Empty(t, out)
	require.Equal(t, "natsched edit: e.x is no longer at revision 2 (changed by another writer or by a fire); "+
		"nothing was changed: revision: 2 is not the current revision of e.x (409)\n", errOut)
}
