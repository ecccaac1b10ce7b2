package cli

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
)

// scheduler is what the client commands ask of a running daemon, in wire
// JSON: the commands print replies as received with --json. It is the
// seam where the public Go client can replace wireClient.
type scheduler interface {
	put(ctx context.Context, id string, schedule []byte) ([]byte, error)
	get(ctx context.Context, id string) ([]byte, error)
	// act is cancel, pause, resume or trigger.
	act(ctx context.Context, verb, id string) ([]byte, error)
	list(ctx context.Context, prefix string, req listRequest) (*listReply, error)
	status(ctx context.Context) ([]byte, error)
}

// listRequest and listReply are the bodies of <prefix>.api.list[.<prefix>].
type listRequest struct {
	Status string `json:"status,omitempty"`
	Limit  int    `json:"limit,omitempty"`
	After  string `json:"after,omitempty"`
}

type listReply struct {
	Schedules []json.RawMessage `json:"schedules"`
	Next      string            `json:"next"`
}

// wireClient speaks the wire API: request/reply on
// <prefix>.api.<verb>[.<id>].
type wireClient struct {
	nc      *nats.Conn
	prefix  string
	timeout time.Duration
}

var _ scheduler = (*wireClient)(nil)

func (c *conn) scheduler() scheduler {
	return &wireClient{nc: c.nc, prefix: c.prefix, timeout: c.timeout}
}

func (w *wireClient) put(ctx context.Context, id string, schedule []byte) ([]byte, error) {
	return w.call(ctx, "put", id, schedule)
}

func (w *wireClient) get(ctx context.Context, id string) ([]byte, error) {
	return w.call(ctx, "get", id, nil)
}

func (w *wireClient) act(ctx context.Context, verb, id string) ([]byte, error) {
	return w.call(ctx, verb, id, nil)
}

func (w *wireClient) status(ctx context.Context) ([]byte, error) {
	return w.call(ctx, "status", "", nil)
}

func (w *wireClient) list(ctx context.Context, prefix string, req listRequest) (*listReply, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	reply, err := w.call(ctx, "list", prefix, body)
	if err != nil {
		return nil, err
	}
	var page listReply
	if err := json.Unmarshal(reply, &page); err != nil {
		return nil, fmt.Errorf("unreadable list reply: %v", err)
	}
	return &page, nil
}

// call sends body to <prefix>.api.<verb>[.<id>] and returns the reply body,
// or an *apiError for an error reply.
func (w *wireClient) call(ctx context.Context, verb, id string, body []byte) ([]byte, error) {
	subject := w.prefix + ".api." + verb
	if id != "" {
		subject += "." + id
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	msg, err := w.nc.RequestWithContext(ctx, subject, body)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("no natsched service answers on %s.api (is 'natsched server' running with --prefix %s?)", w.prefix, w.prefix)
	case errors.Is(err, nats.ErrMaxPayload):
		// nats.go refuses to send it; the service would answer 413.
		return nil, &apiError{Code: 413, Message: fmt.Sprintf(
			"data: the request takes %d bytes, over the server's max payload of %d bytes (the payload travels base64-encoded, a third larger)",
			len(body), w.nc.MaxPayload())}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return nil, fmt.Errorf("no reply on %s within %s", subject, w.timeout)
	case err != nil:
		return nil, fmt.Errorf("request %s: %w", subject, err)
	}
	if err := replyError(msg); err != nil {
		return nil, err
	}
	return msg.Data, nil
}

// apiError is an error reply of the wire API.
type apiError struct {
	Code    int
	Message string
}

func (e *apiError) Error() string {
	if e.Code == 0 {
		return e.Message
	}
	return fmt.Sprintf("%s (%d)", e.Message, e.Code)
}

type errorBody struct {
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// replyError reads micro's error headers, falling back on the JSON body
// {"error":{"code":..,"message":..}}.
func replyError(msg *nats.Msg) error {
	var e apiError
	if code := msg.Header.Get("Nats-Service-Error-Code"); code != "" {
		e.Code, _ = strconv.Atoi(code)
		e.Message = msg.Header.Get("Nats-Service-Error")
		if e.Code == 0 && e.Message == "" {
			return nil
		}
	}
	if bytes.HasPrefix(bytes.TrimSpace(msg.Data), []byte(`{"error"`)) {
		var b errorBody
		if json.Unmarshal(msg.Data, &b) == nil && b.Error != nil {
			if e.Code == 0 {
				e.Code = b.Error.Code
			}
			if e.Message == "" {
				e.Message = b.Error.Message
			}
		}
	}
	if e.Code == 0 && e.Message == "" {
		return nil
	}
	if e.Message == "" {
		e.Message = "error reply"
	}
	return &e
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
