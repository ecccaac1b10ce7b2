package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// rawPublish measures raw JetStream PublishAsync throughput (8192 in
// flight, 128-byte payload, file storage) into a fresh stream: once with a
// unique Nats-Msg-Id per message (what every natsched fire carries; the
// ceiling for fires per second) and once without.
func (b *bench) rawPublish(ctx context.Context) ([]Result, error) {
	n := b.cfg.rawN
	var out []Result
	for _, withID := range []bool{true, false} {
		name, note := WRaw, "PublishAsync with a unique Nats-Msg-Id"
		if !withID {
			name, note = WRaw+"-nomsgid", "PublishAsync without Nats-Msg-Id"
		}
		r, err := b.rawOnce(ctx, name, n, withID)
		if err != nil {
			return out, fmt.Errorf("%s: %w", name, err)
		}
		r.Notes = fmt.Sprintf("%s; 8192 in flight, 128-byte payload, file storage", note)
		out = append(out, r)
	}
	return out, nil
}

func (b *bench) rawOnce(ctx context.Context, name string, n int, withID bool) (Result, error) {
	res := Result{Name: name, System: SystemRaw, N: n}
	p := b.prefix(strings.ReplaceAll(name, "-", ""))
	nc, err := b.connect(name)
	if err != nil {
		return res, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return res, err
	}
	stream := strings.ToUpper(p) + "_RAW"
	subject := p + ".raw"
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: stream, Subjects: []string{subject}, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute,
	}); err != nil {
		return res, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = js.DeleteStream(dctx, stream)
	}()
	payload := []byte(strings.Repeat("x", 128))
	prefix := p + "-"
	elapsed, err := b.publishAsync(ctx, n, func(i int) *nats.Msg {
		m := &nats.Msg{Subject: subject, Data: payload}
		if withID {
			m.Header = nats.Header{jetstream.MsgIDHeader: []string{prefix + strconv.Itoa(i)}}
		}
		return m
	}, func(k int) { b.progressf("%s: %d/%d published", name, k, n) })
	if err != nil {
		return res, err
	}
	res.PerSecond = f64(round(float64(n)/elapsed.Seconds(), 0))
	res.Seconds = round(elapsed.Seconds(), 2)
	return res, nil
}
