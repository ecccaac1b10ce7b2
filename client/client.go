// Package client is a natsched.Scheduler that talks to running natsched
// daemons (or any scheduler instances serving the API) over NATS: each
// method is one request on <prefix>.api.<verb>[.<id>], the wire contract's
// micro service, answered by whichever instance the queue group picks.
//
//	nc, _ := nats.Connect(url)
//	s, err := client.New(nc, client.WithRegistry(reg))
//	id, err := natsched.ScheduleIn(ctx, s, SendEmail{To: "a@b"}, 5*time.Minute)
//	err = natsched.Cancel(ctx, s, id)
//
// Every typed helper of package natsched works with it; those that encode
// a message type need the registry that knows it (WithRegistry, or
// natsched.WithRegistry per call). The client fires nothing and handles
// nothing: fired messages reach handlers through a consumer (see package
// jetstream's WithRouter) or any JetStream client.
//
// # Errors
//
// Replies map back to the errors an in-process scheduler returns, with the
// daemon's message kept: a 400 is a *natsched.FieldError (so errors.Is(err,
// natsched.ErrInvalid)) whose Field is the field the message names; any
// other error reply is an *Error whose Code is the wire code and which
// wraps the sentinel of that code: 403 natsched.ErrForbidden, 404
// ErrNotFound, 409 ErrConflict, 413 ErrTooLarge, 422 ErrUnreadable, 503
// ErrUnavailable. A request that nobody answers (no responders, no reply
// within the timeout, a closed connection) is an *Error with Code 503
// wrapping ErrUnavailable and the transport's error (context.DeadlineExceeded,
// nats.ErrNoResponders, ...); one too large to send is a 413.
//
// # Guarantees
//
//   - A reply means the daemon has done what it says: Put returns the
//     schedule as stored, after the KV write was acknowledged.
//   - An ErrUnavailable from a timeout or a closed connection leaves open
//     whether the request was applied. Get tells; a Put of the same
//     definition again replaces the schedule (a new generation, so an
//     occurrence that already fired under the first may fire again).
//   - Invalid IDs and list prefixes are refused before anything is sent, so
//     no request goes to a subject the ID does not name.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"

	"github.com/natsched/natsched"
)

// DefaultTimeout bounds one request unless WithTimeout says otherwise (or
// the context has an earlier deadline).
const DefaultTimeout = 5 * time.Second

// ErrInvalidOption: New was given a nil connection or an option with a bad
// value.
var ErrInvalidOption = errors.New("natsched/client: invalid option")

// Scheduler is a natsched.Scheduler over the wire API, with the verbs that
// only a remote scheduler has.
type Scheduler interface {
	natsched.Scheduler
	// Status returns the view of the instance that answered: who leads,
	// how many schedules are pending, fired, late.
	Status(ctx context.Context) (*natsched.InstanceStatus, error)
	// Registry returns the registry given with WithRegistry, or nil. The
	// typed helpers of package natsched use it to encode messages.
	Registry() *natsched.Registry
}

// Option configures New.
type Option func(*options) error

type options struct {
	prefix  string
	timeout time.Duration
	inbox   string
	reg     *natsched.Registry
}

// WithPrefix sets the prefix of the API subjects (default "natsched"): the
// daemon's --prefix. Errors: ErrInvalidOption unless it is one token of
// [A-Za-z0-9_-], at most 32 characters.
func WithPrefix(p string) Option {
	return func(o *options) error {
		if !natsched.ValidPrefix(p) {
			return fmt.Errorf("%w: prefix %q: want one token of [A-Za-z0-9_-], at most 32 characters", ErrInvalidOption, p)
		}
		o.prefix = p
		return nil
	}
}

// WithTimeout bounds each request (default DefaultTimeout); a context
// with an earlier deadline ends it sooner. Errors: ErrInvalidOption unless
// d is positive.
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: timeout must be positive, got %s", ErrInvalidOption, d)
		}
		o.timeout = d
		return nil
	}
}

// WithInboxPrefix receives replies on prefix.<unique> instead of the
// connection's inboxes, for accounts that allow this client only some
// reply subjects. nats.go sets an inbox prefix per connection
// (nats.CustomInboxPrefix), which this client uses by default; this option
// sets one for this client alone, at the cost of a subscription per
// request. Errors: ErrInvalidOption unless prefix is a subject without
// wildcards.
func WithInboxPrefix(prefix string) Option {
	return func(o *options) error {
		if !natsched.ValidSubject(prefix) {
			return fmt.Errorf("%w: inbox prefix %q: want a subject without wildcards or spaces", ErrInvalidOption, prefix)
		}
		o.inbox = prefix
		return nil
	}
}

// WithRegistry gives the typed helpers (natsched.ScheduleIn, ...) the
// registry of message types, as a scheduler built with a Router has.
func WithRegistry(reg *natsched.Registry) Option {
	return func(o *options) error {
		if reg == nil {
			return fmt.Errorf("%w: nil registry", ErrInvalidOption)
		}
		o.reg = reg
		return nil
	}
}

type client struct {
	nc *nats.Conn
	o  options
	// api is <prefix>.api.
	api string
}

var _ Scheduler = (*client)(nil)

// New returns a Scheduler that sends its requests over nc, which stays the
// caller's: close it when done; the client holds nothing else.
//
// Errors: ErrInvalidOption for a nil nc or a bad option.
func New(nc *nats.Conn, opts ...Option) (Scheduler, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nil connection", ErrInvalidOption)
	}
	o := options{prefix: natsched.DefaultPrefix, timeout: DefaultTimeout}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	return &client{nc: nc, o: o, api: o.prefix + ".api"}, nil
}

func (c *client) Registry() *natsched.Registry { return c.o.reg }

// Put implements natsched.Scheduler: it sends s in the JSON form (its
// state fields are ignored by the daemon, except Revision, which makes it
// a compare-and-set), and s.TraceParent and s.TraceState as the request's
// traceparent and tracestate headers, which the daemon stores as the
// creator's trace context, as an in-process Put does.
func (c *client) Put(ctx context.Context, s *natsched.Schedule) (*natsched.Schedule, error) {
	if s == nil {
		return nil, natsched.Invalid("body", "nil schedule")
	}
	if err := checkID(s.ID); err != nil {
		return nil, err
	}
	body, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("natsched/client: encode schedule %s: %w", s.ID, err)
	}
	var h nats.Header
	if s.TraceParent != "" {
		h = nats.Header{natsched.HeaderTraceParent: {s.TraceParent}}
		if s.TraceState != "" {
			h[natsched.HeaderTraceState] = []string{s.TraceState}
		}
	}
	return c.schedule(ctx, "put", s.ID, body, h)
}

// Get implements natsched.Scheduler.
func (c *client) Get(ctx context.Context, id string) (*natsched.Schedule, error) {
	return c.byID(ctx, "get", id)
}

// Cancel implements natsched.Scheduler.
func (c *client) Cancel(ctx context.Context, id string) (*natsched.Schedule, error) {
	return c.byID(ctx, "cancel", id)
}

// Pause implements natsched.Scheduler.
func (c *client) Pause(ctx context.Context, id string) (*natsched.Schedule, error) {
	return c.byID(ctx, "pause", id)
}

// Resume implements natsched.Scheduler.
func (c *client) Resume(ctx context.Context, id string) (*natsched.Schedule, error) {
	return c.byID(ctx, "resume", id)
}

// Trigger implements natsched.Scheduler.
func (c *client) Trigger(ctx context.Context, id string) (*natsched.Schedule, error) {
	return c.byID(ctx, "trigger", id)
}

func (c *client) byID(ctx context.Context, verb, id string) (*natsched.Schedule, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	return c.schedule(ctx, verb, id, nil, nil)
}

func (c *client) schedule(ctx context.Context, verb, id string, body []byte, h nats.Header) (*natsched.Schedule, error) {
	reply, err := c.call(ctx, verb, id, body, h)
	if err != nil {
		return nil, err
	}
	var s natsched.Schedule
	if err := json.Unmarshal(reply, &s); err != nil {
		return nil, fmt.Errorf("natsched/client: unreadable %s reply: %w", verb, err)
	}
	return &s, nil
}

// listRequest is the body of <prefix>.api.list[.<prefix>].
type listRequest struct {
	Status natsched.Status `json:"status,omitempty"`
	Limit  int             `json:"limit,omitempty"`
	After  string          `json:"after,omitempty"`
}

// List implements natsched.Scheduler. The daemon validates the options;
// the prefix is checked here too, since it becomes a subject token.
func (c *client) List(ctx context.Context, o natsched.ListOptions) (*natsched.ListPage, error) {
	if o.Prefix != "" && !natsched.ValidID(o.Prefix) {
		return nil, natsched.Invalid("prefix", "%q is not a valid ID prefix", natsched.Truncate(o.Prefix))
	}
	body, err := json.Marshal(listRequest{Status: o.Status, Limit: o.Limit, After: o.After})
	if err != nil {
		return nil, err
	}
	reply, err := c.call(ctx, "list", o.Prefix, body, nil)
	if err != nil {
		return nil, err
	}
	var page natsched.ListPage
	if err := json.Unmarshal(reply, &page); err != nil {
		return nil, fmt.Errorf("natsched/client: unreadable list reply: %w", err)
	}
	if page.Schedules == nil {
		page.Schedules = []*natsched.Schedule{}
	}
	return &page, nil
}

// Status asks one instance (whichever answers) for its view.
func (c *client) Status(ctx context.Context) (*natsched.InstanceStatus, error) {
	reply, err := c.call(ctx, "status", "", nil, nil)
	if err != nil {
		return nil, err
	}
	var st natsched.InstanceStatus
	if err := json.Unmarshal(reply, &st); err != nil {
		return nil, fmt.Errorf("natsched/client: unreadable status reply: %w", err)
	}
	return &st, nil
}

// call sends body (with headers h) to <prefix>.api.<verb>[.<tail>] and
// returns the body of a success reply.
func (c *client) call(ctx context.Context, verb, tail string, body []byte, h nats.Header) ([]byte, error) {
	subject := c.api + "." + verb
	if tail != "" {
		subject += "." + tail
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.timeout)
	defer cancel()
	msg, err := c.request(ctx, &nats.Msg{Subject: subject, Data: body, Header: h})
	if err != nil {
		return nil, c.transportError(subject, len(body), err)
	}
	if err := replyError(msg); err != nil {
		return nil, err
	}
	return msg.Data, nil
}

// request sends m and waits for one reply, on the connection's inboxes or
// on WithInboxPrefix's.
func (c *client) request(ctx context.Context, m *nats.Msg) (*nats.Msg, error) {
	if c.o.inbox == "" {
		return c.nc.RequestMsgWithContext(ctx, m)
	}
	m.Reply = c.o.inbox + "." + nuid.Next()
	sub, err := c.nc.SubscribeSync(m.Reply)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := c.nc.PublishMsg(m); err != nil {
		return nil, err
	}
	return sub.NextMsgWithContext(ctx) // ErrNoResponders from the server's status reply
}

func (c *client) transportError(subject string, size int, err error) error {
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		// nats.go refuses to send it; the daemon would answer 413.
		return &Error{Code: 413, Message: fmt.Sprintf(
			"data: the request takes %d bytes, over the server's max payload of %d bytes (the payload travels base64-encoded, a third larger)",
			size, c.nc.MaxPayload()), sentinel: natsched.ErrTooLarge, cause: err}
	case errors.Is(err, nats.ErrNoResponders):
		return &Error{Code: 503, Message: fmt.Sprintf(
			"no natsched service answers on %s (is a scheduler running with prefix %s?)", subject, c.o.prefix),
			sentinel: natsched.ErrUnavailable, cause: err}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return &Error{Code: 503, Message: fmt.Sprintf("no reply on %s in time", subject),
			sentinel: natsched.ErrUnavailable, cause: err}
	}
	return &Error{Code: 503, Message: fmt.Sprintf("request %s: %v", subject, err),
		sentinel: natsched.ErrUnavailable, cause: err}
}

// Error is an error reply of the daemon other than a 400 (which is a
// *natsched.FieldError), or a request that got no reply.
type Error struct {
	// Code is the reply's Nats-Service-Error-Code: 403, 404, 409, 413, 422,
	// 503; 503 also for a request nobody answered, 413 for one too large
	// to send.
	Code int
	// Message is the daemon's message, as in Nats-Service-Error and the
	// body's error.message.
	Message  string
	sentinel error // natsched.ErrNotFound, ... (nil for codes the contract does not have)
	cause    error // the transport's error, for requests without a reply
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the sentinel of the code (natsched.ErrNotFound for 404,
// ...) and, for a request without a reply, the transport's error.
func (e *Error) Unwrap() []error {
	var errs []error
	for _, err := range []error{e.sentinel, e.cause} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// sentinels are the root package's errors by wire code.
var sentinels = map[int]error{
	403: natsched.ErrForbidden,
	404: natsched.ErrNotFound,
	409: natsched.ErrConflict,
	413: natsched.ErrTooLarge,
	422: natsched.ErrUnreadable,
	503: natsched.ErrUnavailable,
}

// replyError reads micro's error headers, falling back on the body
// {"error":{"code":..,"message":..}}; nil for a success reply.
func replyError(msg *nats.Msg) error {
	var code int
	var text string
	if h := msg.Header.Get(micro.ErrorCodeHeader); h != "" {
		code, _ = strconv.Atoi(h)
		text = msg.Header.Get(micro.ErrorHeader)
	}
	if bytes.HasPrefix(bytes.TrimSpace(msg.Data), []byte(`{"error"`)) {
		var b struct {
			Error *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(msg.Data, &b) == nil && b.Error != nil {
			if code == 0 {
				code = b.Error.Code
			}
			if text == "" {
				text = b.Error.Message
			}
		}
	}
	if code == 0 && text == "" {
		return nil
	}
	return replyErrorOf(code, text)
}

// replyErrorOf builds the error of an error reply.
func replyErrorOf(code int, text string) error {
	if code == 400 {
		// "field: reason"; a message without a field is about the body.
		if field, reason, ok := strings.Cut(text, ": "); ok {
			return &natsched.FieldError{Field: field, Reason: reason}
		}
		return &natsched.FieldError{Field: "body", Reason: text}
	}
	if text == "" {
		text = fmt.Sprintf("error reply %d", code)
	}
	return &Error{Code: code, Message: text, sentinel: sentinels[code]}
}

func checkID(id string) error {
	if !natsched.ValidID(id) {
		if id == "" {
			return natsched.Invalid("id", "required")
		}
		return natsched.Invalid("id", "%q is not 1-255 characters of dot-separated tokens of [A-Za-z0-9_-]", natsched.Truncate(id))
	}
	return nil
}
