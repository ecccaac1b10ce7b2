package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"
)

// A fast batch (ADR-50's fast-ingest batch, nats-server 2.14+, on a stream
// with allow_batched) stores messages as they arrive, like separate
// publishes, but answers the whole batch with one PubAck instead of one
// per message. Its protocol lives in the reply subject of every message:
//
//	<inbox>.<flow>.<gap mode>.<batch sequence>.<operation>.$FI
//
// where <inbox>'s last token is the batch ID, flow is how often the server
// sends a flow-control ack, operation is 0 (start), 1 (append) or 2
// (commit). With gap mode "fail" the batch ends at the first message the
// stream refuses (a compare-and-set that lost, say): the PubAck's count
// then says that exactly the first count messages were stored and none
// after them.

// batchAck is the PubAck of a fast batch: the sequence of its last stored
// message and how many were stored.
type batchAck struct {
	Stream string      `json:"stream"`
	Seq    uint64      `json:"seq"`
	Batch  string      `json:"batch"`
	Count  int         `json:"count"`
	Error  *batchError `json:"error"`
}

// batchError is the error of a fast batch's PubAck or error message.
type batchError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *batchError) apiError() *js.APIError {
	return &js.APIError{Code: e.Code, ErrorCode: js.ErrorCode(e.ErrCode), Description: e.Description}
}

// batchFlow is a flow-control or error message of a fast batch.
type batchFlow struct {
	Type  string      `json:"type"`
	Seq   uint64      `json:"seq"`
	Error *batchError `json:"error"`
}

// errBatchUnknown: a fast batch got no PubAck in time, so which of its
// messages were stored is unknown.
var errBatchUnknown = errors.New("natsched: batch write: no PubAck within " + ackWait.String())

// publishBatch publishes msgs, all to one stream, as one fast batch with
// gap mode "fail", and waits for its PubAck. It returns how many of msgs,
// from the first, were stored, the sequence of the last of those, and,
// when fewer than all were stored, why the next one was not (an
// *js.APIError for a refusal such as a lost compare-and-set). With
// errBatchUnknown (or a connection or context error) n is 0 but some may
// have been stored.
//
// The messages are published under sending, so that the batches of one
// publisher reach the server one after another rather than interleaved:
// a batch stored contiguously lets its sender work out every message's
// sequence from the last one's (see firing.contiguous).
func publishBatch(ctx context.Context, nc *nats.Conn, sending *sync.Mutex, msgs []*nats.Msg) (n int, last uint64, err error) {
	if len(msgs) == 0 || len(msgs) > 65535 {
		return 0, 0, fmt.Errorf("natsched: batch write of %d messages", len(msgs))
	}
	inbox := nc.NewInbox() // its last token, a NUID, is the batch ID
	replies := make(chan *nats.Msg, len(msgs)+8)
	sub, err := nc.ChanSubscribe(inbox+".>", replies)
	if err != nil {
		return 0, 0, err
	}
	defer sub.Unsubscribe()
	if err := sendBatch(nc, sending, inbox, msgs); err != nil {
		return 0, 0, err
	}
	deadline := time.NewTimer(ackWait)
	defer deadline.Stop()
	check := time.NewTicker(50 * time.Millisecond)
	defer check.Stop()
	var refused *js.APIError // the first message the stream refused
	for {
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-deadline.C:
			return 0, 0, errBatchUnknown
		case <-check.C:
			if nc.IsClosed() {
				return 0, 0, nats.ErrConnectionClosed
			}
		case m := <-replies:
			var f batchFlow
			if json.Unmarshal(m.Data, &f) == nil && f.Type != "" {
				if f.Type == "err" && f.Error != nil && refused == nil {
					refused = f.Error.apiError()
				}
				continue // "ack" (flow control) or "gap"
			}
			var ack batchAck
			if err := json.Unmarshal(m.Data, &ack); err != nil {
				return 0, 0, fmt.Errorf("natsched: batch write: bad PubAck: %w", err)
			}
			if ack.Error != nil {
				return ack.Count, ack.Seq, ack.Error.apiError()
			}
			if ack.Count < len(msgs) {
				if refused == nil {
					return ack.Count, ack.Seq, errors.New("natsched: batch write: the batch ended early")
				}
				return ack.Count, ack.Seq, refused
			}
			return ack.Count, ack.Seq, nil
		}
	}
}

// sendBatch publishes msgs as the fast batch whose replies go to inbox.
func sendBatch(nc *nats.Conn, sending *sync.Mutex, inbox string, msgs []*nats.Msg) error {
	sending.Lock()
	defer sending.Unlock()
	flow := len(msgs)
	for i, m := range msgs {
		op := 1
		switch {
		case i == len(msgs)-1:
			op = 2
		case i == 0:
			op = 0
		}
		m.Reply = fmt.Sprintf("%s.%d.fail.%d.%d.$FI", inbox, flow, i+1, op)
		if err := nc.PublishMsg(m); err != nil {
			return err
		}
	}
	return nil
}
