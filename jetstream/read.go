package jetstream

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"
)

// readConcurrency bounds the key-by-key reads of one batch.
const readConcurrency = 32

// lastSeq is the last sequence of the schedules bucket's stream, as
// its leader knows it: every write acknowledged so far is at or below it.
func (st *store) lastSeq(ctx context.Context) (uint64, error) {
	info, err := st.js.Stream(ctx, st.names.SchedulesStream())
	if err != nil {
		return 0, unavailable(err)
	}
	return info.CachedInfo().State.LastSeq, nil
}

type lastMsg struct {
	seq     uint64
	data    []byte
	deleted bool
}

// readValues reads the current values of keys: batched direct gets of
// batchSize keys at a time, or, without batch direct get (servers before
// 2.11) or when a batch comes back incomplete, key by key, concurrently.
// A key that is absent from the result does not exist.
func (st *store) readValues(ctx context.Context, keys []string) (map[string]lastMsg, error) {
	out := make(map[string]lastMsg, len(keys))
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), batchSize)]
		keys = keys[len(chunk):]
		err := st.lastMsgs(ctx, chunk, out)
		if err != nil && ctx.Err() == nil {
			err = st.readEach(ctx, chunk, out)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// lastMsgs asks the bucket's stream for the last message of every key in
// one request ($JS.API.DIRECT.GET with multi_last) and collects the replies
// into out until the end-of-batch status.
func (st *store) lastMsgs(ctx context.Context, keys []string, out map[string]lastMsg) error {
	nc := st.js.Conn()
	subjects := make([]string, len(keys))
	for i, k := range keys {
		subjects[i] = st.names.kvSubject(k)
	}
	body, _ := json.Marshal(map[string]any{"multi_last": subjects, "batch": len(keys)})
	inbox := nc.NewRespInbox()
	ch := make(chan *nats.Msg, len(keys)+1)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+st.names.SchedulesStream(), inbox, body); err != nil {
		return err
	}
	prefix := st.names.kvSubject("")
	deadline := time.NewTimer(ackWait)
	defer deadline.Stop()
	check := time.NewTicker(50 * time.Millisecond)
	defer check.Stop()
	for {
		select {
		case <-deadline.C:
			return errors.New("natsched: batch read: no reply within " + ackWait.String())
		case <-check.C:
			if nc.IsClosed() {
				return nats.ErrConnectionClosed
			}
		case m := <-ch:
			switch status := m.Header.Get("Status"); status {
			case "":
			case "204": // end of batch
				if np := m.Header.Get("Nats-Num-Pending"); np != "" && np != "0" {
					// The server stops at its byte limit: read the rest otherwise.
					return errors.New("natsched: batch read: incomplete, " + np + " left")
				}
				return nil
			case "404":
				return nil // none of the keys exists
			default:
				return errors.New("natsched: batch read: " + status + " " + m.Header.Get("Description"))
			}
			seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
			if err != nil {
				return errors.New("natsched: batch read: bad sequence")
			}
			op := m.Header.Get("KV-Operation")
			out[strings.TrimPrefix(m.Header.Get("Nats-Subject"), prefix)] = lastMsg{
				seq: seq, data: m.Data, deleted: op == "DEL" || op == "PURGE"}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// readEach reads keys into out one by one, concurrently.
func (st *store) readEach(ctx context.Context, keys []string, out map[string]lastMsg) error {
	sem := make(chan struct{}, readConcurrency)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			e, err := st.kv.Get(opCtx(ctx), k)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, js.ErrKeyNotFound):
			case err != nil:
				first = cmp.Or(first, unavailable(err))
			default:
				out[k] = lastMsg{seq: e.Revision(), data: e.Value()}
			}
		}()
	}
	wg.Wait()
	return first
}
