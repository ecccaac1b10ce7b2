package jetstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/internal/subject"
)

// ServiceName is the micro service every instance serves (contract).
const ServiceName = "natsched"

// Version of the service as nats micro info reports it.
const Version = "0.1.0"

const (
	apiTimeout = 10 * time.Second // one request, start to reply
)

// api serves <prefix>.api.* as the micro service "natsched", in one queue
// group across instances. Handlers run on their own goroutines (bounded),
// because micro calls an endpoint's handler one request at a time.
type api struct {
	nc       *nats.Conn
	names    Names
	instance string
	st       *store
	now      func() time.Time
	report   func(context.Context) (Status, error) // this instance's status
	log      *slog.Logger
	// ctx is the scheduler's run context, which requests derive from.
	ctx context.Context

	m   *metrics
	svc micro.Service
	wg  sync.WaitGroup
}

// endpoint is one verb of the API.
type endpoint struct {
	name, subject, description string
	// lanes is how many subscriptions serve it on this instance, all in the
	// service's queue group: micro hands each subscription's requests to
	// its handler one at a time and measures that call (so handlers answer
	// before they return, and the stats are true), and lanes are how
	// requests of one verb run side by side.
	lanes int
	h     func(context.Context, micro.Request, string) (any, error)
}

// startAPI serves a's endpoints (a has its dependencies set).
func startAPI(a *api) (*api, error) {
	svc, err := micro.AddService(a.nc, micro.Config{
		Name: ServiceName, Version: Version, QueueGroup: ServiceName,
		Description: "natsched: schedule NATS messages (put, get, cancel, pause, resume, trigger, list, status)",
		Metadata:    map[string]string{"instance": a.instance, "prefix": a.names.Prefix},
	})
	if err != nil {
		return nil, fmt.Errorf("natsched: micro service: %w", err)
	}
	a.svc = svc
	g := svc.AddGroup(a.names.APIPrefix, micro.WithGroupQueueGroup(ServiceName))
	for _, ep := range []endpoint{
		{"put", "put.>", "put.<id>: create or replace a schedule (body: schedule JSON; \"revision\" makes it a compare-and-set)", putLanes, a.put},
		{"get", "get.>", "get.<id>: the schedule", lanes, a.byID(a.st.load)},
		{"cancel", "cancel.>", "cancel.<id>: delete the schedule; the reply is the schedule as it was", lanes, a.byID(a.st.cancel)},
		{"pause", "pause.>", "pause.<id>: stop firing; occurrences while paused are skipped", lanes, a.byID(a.st.pause)},
		{"resume", "resume.>", "resume.<id>: fire again from the next occurrence", lanes, a.byID(a.st.resume)},
		{"trigger", "trigger.>", "trigger.<id>: fire one extra occurrence now", lanes, a.byID(a.st.trigger)},
		{"list", "list", "list: one page of every schedule (body: {\"status\",\"limit\",\"after\"})", lanes, a.list},
		{"list_prefix", "list.>", "list.<prefix>: one page of a namespace (whole tokens)", lanes, a.list},
		{"status", "status", "status: one instance's view (leader, pending, fired, version, started, clock offset)", 1, a.status},
		{"status_all", "status.all", "status.all: every instance answers with its view (no queue group)", 1, a.status},
	} {
		verb := strings.SplitN(ep.subject, ".", 2)[0]
		for range ep.lanes {
			opts := []micro.EndpointOpt{micro.WithEndpointSubject(ep.subject),
				micro.WithEndpointMetadata(map[string]string{"description": ep.description})}
			if ep.name == "status_all" {
				opts = append(opts, micro.WithEndpointQueueGroupDisabled())
			}
			err := g.AddEndpoint(ep.name, a.serve(verb, ep.h), opts...)
			if err != nil {
				_ = svc.Stop()
				return nil, fmt.Errorf("natsched: endpoint %s: %w", ep.name, err)
			}
		}
	}
	// The endpoints' subscriptions reach the server before Start returns,
	// so a request right after Start finds a responder.
	if err := a.nc.Flush(); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("natsched: micro service: %w", err)
	}
	return a, nil
}

// stop stops taking requests and waits for those in progress.
func (a *api) stop() {
	_ = a.svc.Stop()
	a.wg.Wait()
}

// Lanes per endpoint (see endpoint): puts are the bulk of the traffic.
const (
	putLanes = 16
	lanes    = 4
)

// serve answers a request with h's result as JSON, or with the contract's
// error reply, before it returns: micro then counts the error (every 4xx
// and 5xx) and the processing time on the endpoint.
func (a *api) serve(verb string, h func(context.Context, micro.Request, string) (any, error)) micro.HandlerFunc {
	prefix := a.names.APIPrefix + "." + verb + "."
	return func(req micro.Request) {
		a.wg.Add(1)
		defer a.wg.Done()
		start := time.Now()
		ctx, cancel := context.WithTimeout(a.ctx, apiTimeout)
		defer cancel()
		tail := strings.TrimPrefix(req.Subject(), prefix)
		if tail == req.Subject() {
			tail = "" // list, status
		}
		v, err := h(ctx, req, tail)
		var body []byte
		if err == nil {
			body, err = json.Marshal(v)
		}
		code := a.reply(req, body, err)
		a.m.apiRequest(verb, code, time.Since(start))
	}
}

// reply answers req through micro (which records an error reply as an
// error of the endpoint) and returns the code it answered with.
func (a *api) reply(req micro.Request, body []byte, err error) int {
	code := 200
	var rerr error
	if err != nil {
		var text string
		code, text = errorReply(err)
		body, _ = json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": text}})
		rerr = req.Error(strconv.Itoa(code), text, body)
	} else {
		rerr = req.Respond(body)
	}
	if rerr != nil && req.Reply() != "" {
		a.log.Warn("natsched: could not reply", "subject", req.Subject(), "err", rerr)
	}
	return code
}

// maxErrorLen bounds error messages on the wire: they quote the request,
// and a reply over the server's max payload would never be sent.
const maxErrorLen = 1024

// wireText makes an error message safe for a header: one line, bounded.
func wireText(s string) string {
	s = subject.OneLine(s)
	if len(s) <= maxErrorLen {
		return s
	}
	return subject.Cut(s, maxErrorLen) + "…"
}

// errorReply maps an error to the contract's code and message. A 400's
// message starts with the field it is about.
func errorReply(err error) (int, string) {
	code, text := errorCode(err)
	return code, wireText(text)
}

func errorCode(err error) (int, string) {
	trim := func(sentinel error) string {
		return strings.TrimPrefix(err.Error(), sentinel.Error()+": ")
	}
	var fe *natsched.FieldError
	switch {
	case errors.As(err, &fe):
		return 400, fe.Error()
	case errors.Is(err, natsched.ErrInvalid):
		return 400, "body: " + trim(natsched.ErrInvalid)
	case errors.Is(err, natsched.ErrNotFound):
		return 404, "schedule " + trim(natsched.ErrNotFound) + " not found"
	case errors.Is(err, natsched.ErrForbidden):
		return 403, trim(natsched.ErrForbidden)
	case errors.Is(err, natsched.ErrTooLarge):
		return 413, trim(natsched.ErrTooLarge)
	case errors.Is(err, natsched.ErrConflict):
		return 409, trim(natsched.ErrConflict)
	case errors.Is(err, natsched.ErrUnreadable):
		return 422, trim(natsched.ErrUnreadable)
	case errors.Is(err, natsched.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return 503, err.Error()
	}
	return 500, err.Error()
}

func checkID(id string) error {
	if !natsched.ValidID(id) {
		return natsched.Invalid("id", "%q is not 1-255 characters of dot-separated tokens of [A-Za-z0-9_-]", id)
	}
	return nil
}

func (a *api) put(ctx context.Context, req micro.Request, id string) (any, error) {
	accepted := a.now()
	if err := checkID(id); err != nil {
		return nil, err
	}
	sch, err := natsched.ParseSchedule(req.Data(), accepted)
	if err != nil {
		return nil, err
	}
	if sch.ID != "" && sch.ID != id {
		return nil, natsched.Invalid("id", "%q in the body does not match %q in the subject", natsched.Truncate(sch.ID), id)
	}
	sch.ID = id
	traceFrom(sch, req.Headers())
	return a.st.put(ctx, sch, putOptions{accepted: accepted})
}

func (a *api) byID(f func(context.Context, string) (*natsched.Schedule, error)) func(context.Context, micro.Request, string) (any, error) {
	return func(ctx context.Context, _ micro.Request, id string) (any, error) {
		if err := checkID(id); err != nil {
			return nil, err
		}
		return f(ctx, id)
	}
}

// listRequest is the optional body of list.
type listRequest struct {
	Status string `json:"status"`
	Limit  int    `json:"limit"`
	After  string `json:"after"`
}

func (a *api) list(ctx context.Context, req micro.Request, prefix string) (any, error) {
	var lr listRequest
	if body := bytes.TrimSpace(req.Data()); len(body) > 0 {
		if err := decodeStrict(body, &lr); err != nil {
			return nil, err
		}
	}
	if prefix != "" && !natsched.ValidID(prefix) {
		return nil, natsched.Invalid("prefix", "%q is not a valid ID prefix", prefix)
	}
	return a.st.list(ctx, natsched.ListOptions{Prefix: prefix, Status: natsched.Status(lr.Status), Limit: lr.Limit, After: lr.After})
}

// decodeStrict reads a small JSON object into v, naming the field of any
// unknown key or wrong type.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return natsched.Invalid(te.Field, "expected %s", te.Type)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			field, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
			return natsched.Invalid(natsched.Truncate(field), "unknown field")
		}
		return natsched.Invalid("body", "expected a JSON object")
	}
	if dec.More() {
		return natsched.Invalid("body", "trailing data after the JSON object")
	}
	return nil
}

func (a *api) status(ctx context.Context, _ micro.Request, _ string) (any, error) {
	return a.report(ctx)
}
