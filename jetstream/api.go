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
	apiTimeout     = 10 * time.Second // one request, start to reply
	apiConcurrency = 256              // requests handled at once per instance
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

	svc micro.Service
	sem chan struct{}
	wg  sync.WaitGroup
}

// startAPI serves a's endpoints (a has its dependencies set).
func startAPI(a *api) (*api, error) {
	a.sem = make(chan struct{}, apiConcurrency)
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
	for _, ep := range []struct {
		name, subject string
		h             func(context.Context, micro.Request, string) (any, error)
	}{
		{"put", "put.>", a.put},
		{"get", "get.>", a.byID(a.st.load)},
		{"cancel", "cancel.>", a.byID(a.st.cancel)},
		{"pause", "pause.>", a.byID(a.st.pause)},
		{"resume", "resume.>", a.byID(a.st.resume)},
		{"trigger", "trigger.>", a.byID(a.st.trigger)},
		{"list", "list", a.list},
		{"list_prefix", "list.>", a.list},
		{"status", "status", a.status},
	} {
		verb := strings.SplitN(ep.subject, ".", 2)[0]
		if err := g.AddEndpoint(ep.name, a.serve(verb, ep.h), micro.WithEndpointSubject(ep.subject)); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("natsched: endpoint %s: %w", ep.name, err)
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

// serve runs h on its own goroutine and replies with its result as JSON, or
// with the contract's error reply.
func (a *api) serve(verb string, h func(context.Context, micro.Request, string) (any, error)) micro.HandlerFunc {
	prefix := a.names.APIPrefix + "." + verb + "."
	return func(req micro.Request) {
		a.sem <- struct{}{} // backpressure: micro's subscription waits
		a.wg.Add(1)
		go func() {
			defer func() { <-a.sem; a.wg.Done() }()
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
			a.reply(req, body, err)
		}()
	}
}

// reply answers req. It publishes the reply itself rather than through
// req.Respond or req.Error: those record the outcome in the request, which
// micro reads as soon as the handler returns, and this handler returned
// long ago (it replies from its own goroutine).
func (a *api) reply(req micro.Request, body []byte, err error) {
	if req.Reply() == "" {
		return
	}
	m := nats.NewMsg(req.Reply())
	if err != nil {
		code, text := errorReply(err)
		body, _ = json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": text}})
		m.Header.Set(micro.ErrorCodeHeader, strconv.Itoa(code))
		m.Header.Set(micro.ErrorHeader, text)
	}
	m.Data = body
	if err := a.nc.PublishMsg(m); err != nil {
		a.log.Warn("natsched: could not reply", "subject", req.Subject(), "err", err)
	}
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
