package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/internal/subject"
)

// Defaults of ConsumerConfig.
const (
	DefaultConsumerMaxDeliver = 5
	DefaultConsumerAckWait    = 30 * time.Second
	// MaxDeadErrorLen bounds the Natsched-Error header of a dead letter, in
	// bytes.
	MaxDeadErrorLen = 1024
)

// Headers a dead letter carries besides the original message's (contract).
const (
	deadHeaderError      = natsched.HeaderError
	deadHeaderDeliveries = natsched.HeaderDeliveries
)

// consumerBackoff is the default of ConsumerConfig.Backoff; copied, never
// handed out.
var consumerBackoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}

// ackTimeout bounds the wait for the server to confirm an ack.
const ackTimeout = 5 * time.Second

// deadLetterTimeout bounds one dead-letter publish: when it runs out, the
// message is nak'ed and dead-lettered again on its next delivery.
const deadLetterTimeout = 10 * time.Second

// Bounds of the delay between attempts to resume consumption after it
// ended on its own (the durable was deleted, ...).
const (
	consumerRetryMin = 100 * time.Millisecond
	consumerRetryMax = 5 * time.Second
)

// ConsumerConfig configures one handler group: a durable pull consumer that
// hands fired messages to a Dispatcher, usually a *natsched.Router.
//
// A group takes only what is its own. Its durable filters on Subjects, by
// default the subjects of the dispatcher's handlers; a new durable starts
// with the messages published after it was created, unless FromStart. A
// message that reaches the group without a handler for it (the filter is
// wider than the handlers, or another instance of the group registered
// more) is terminated for this durable with a reason, counted as Skipped,
// and never dead-lettered: the stream keeps it for other consumers.
type ConsumerConfig struct {
	// Group names the durable consumer "<Prefix>_<Group>": instances with
	// the same group share the work, and should register the same
	// handlers, since each Start sets the durable's filter to its own.
	// Required; [A-Za-z0-9_-]+.
	Group string
	// Prefix derives the durable's name and the defaults of Stream and
	// DeadPrefix, as Names do (default "natsched"; with WithRouter, the
	// scheduler's prefix).
	Prefix string
	// Stream is the stream consumed (default "<PREFIX>_FIRE").
	Stream string
	// Subjects filter the stream. By default they are the subjects the
	// dispatcher reports at Start through a Subjects() []string method, as
	// *natsched.Router.Subjects does: each handled type's default subject
	// and each subject pattern. Give them when typed messages are scheduled
	// with natsched.WithSubject, or for a dispatcher without that method.
	// Start updates an existing durable's filter to them.
	Subjects []string
	// FromStart makes a new durable start at the beginning of the stream,
	// handling the messages fired before it existed too. Without it, a new
	// durable starts with the messages published after its creation. An
	// existing durable keeps its position whatever FromStart says.
	FromStart bool
	// MaxDeliver is how many times the handler is tried before the message
	// is dead-lettered (default 5). The server-side MaxDeliver is unlimited:
	// the consumer counts, so that it can dead-letter instead of dropping.
	MaxDeliver int
	// Backoff are the redelivery delays after a failed attempt: the n-th
	// failure waits Backoff[n-1], the last one repeating (default 1s, 5s,
	// 30s, 2m). A zero delay redelivers at once.
	Backoff []time.Duration
	// AckWait is the consumer's ack wait and the deadline of each handler
	// call (default 30s).
	AckWait time.Duration
	// Concurrency is how many handlers run at once in this instance
	// (default 1).
	Concurrency int
	// DeadPrefix is where dead letters go: <DeadPrefix>.<original subject>
	// (default "<prefix>.dead"). EnsureDeadStream captures "natsched.dead"
	// only; a Scheduler's dead stream captures its prefix's.
	DeadPrefix string
	// Logger receives failures (default slog.Default()).
	Logger *slog.Logger

	router  *natsched.Router // set by WithRouter
	metrics *metrics         // set by the scheduler that runs the consumer
}

// ConsumerStats count what a Consumer did since NewConsumer.
type ConsumerStats struct {
	Delivered    uint64 // messages received, whatever became of them
	Acked        uint64 // handled successfully
	Naked        uint64 // failed and left for redelivery
	DeadLettered uint64 // published to the dead letters and terminated
	Skipped      uint64 // no handler in the group: terminated, not dead-lettered
}

// Consumer runs a handler group. Create it with NewConsumer, then Start it;
// Close stops it.
//
// Per message: the dispatcher runs with a deadline of AckWait; success acks
// (waiting for the server to confirm).
// An error wrapping natsched.ErrNoHandler terminates the message for this
// durable without a dead letter: it was never the group's (see
// ConsumerConfig). An error wrapping natsched.ErrDecode is dead-lettered at
// once, since retrying cannot help. Other errors, panics
// included (as natsched.ErrHandlerPanic), nak the message with the backoff
// delay, until the MaxDeliver-th attempt fails: that one is dead-lettered.
// A message delivered more than MaxDeliver times (earlier attempts outlived
// AckWait, crashed the process or were cut short by Close) is dead-lettered
// without calling the handler again, so a poison message cannot loop.
//
// A dead letter is published with JetStream to <DeadPrefix>.<subject>, with
// the original payload and headers (minus the Nats-* ones), Natsched-Error
// (the error on one line, at most MaxDeadErrorLen bytes) and
// Natsched-Deliveries; only once it is stored is the original terminated.
// If it cannot be stored, the original is nak'ed instead, never dropped.
type Consumer struct {
	js   js.JetStream
	d    natsched.Dispatcher
	cfg  ConsumerConfig
	name string
	log  *slog.Logger

	mu      sync.Mutex
	started bool
	closed  bool
	// subjects is the filter, settled by Start.
	subjects []string
	// created: this Consumer has had its durable, so a durable that is
	// gone was deleted under it and is recreated after position.
	created atomic.Bool
	// position is the last stream sequence the durable had delivered when
	// this Consumer created or updated it, or that this instance received
	// since, whichever is later.
	position atomic.Uint64
	// running ends when Close starts: no more consuming.
	running     context.Context
	stopRunning context.CancelFunc
	// base is the parent of handler contexts; it ends only when a Close
	// runs out of time while handlers are still at work.
	base    context.Context
	abandon context.CancelFunc
	// finished is closed once consumption has stopped and every handler
	// has returned.
	finished chan struct{}

	slots    chan struct{} // one per running handler
	handlers sync.WaitGroup

	delivered    atomic.Uint64
	acked        atomic.Uint64
	naked        atomic.Uint64
	deadLettered atomic.Uint64
	skipped      atomic.Uint64
}

// subjectLister is a dispatcher that can say which subjects it handles,
// such as *natsched.Router.
type subjectLister interface{ Subjects() []string }

// NewConsumer returns a Consumer of jsc handing messages to d. It does not
// touch the server until Start.
//
// Errors: ErrInvalidOption for a nil jsc or d, a bad cfg, or no
// cfg.Subjects with a d that cannot report its subjects.
func NewConsumer(jsc js.JetStream, d natsched.Dispatcher, cfg ConsumerConfig) (*Consumer, error) {
	if jsc == nil {
		return nil, fmt.Errorf("%w: consumer: nil JetStream", ErrInvalidOption)
	}
	if r, ok := d.(*natsched.Router); d == nil || ok && r == nil {
		return nil, fmt.Errorf("%w: consumer: nil dispatcher", ErrInvalidOption)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	name := cfg.Prefix + "_" + cfg.Group
	if _, ok := d.(subjectLister); !ok && len(cfg.Subjects) == 0 {
		return nil, fmt.Errorf("%w: consumer %s: dispatcher %T cannot say which subjects it handles; set ConsumerConfig.Subjects",
			ErrInvalidOption, name, d)
	}
	return &Consumer{
		js:    jsc,
		d:     d,
		cfg:   cfg,
		name:  name,
		log:   cfg.Logger.With("consumer", name, "stream", cfg.Stream),
		slots: make(chan struct{}, cfg.Concurrency),
	}, nil
}

// withDefaults validates cfg and fills in the defaults.
func (cfg ConsumerConfig) withDefaults() (ConsumerConfig, error) {
	invalid := func(format string, args ...any) (ConsumerConfig, error) {
		return cfg, fmt.Errorf("%w: consumer: %s", ErrInvalidOption, fmt.Sprintf(format, args...))
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !ValidPrefix(cfg.Prefix) {
		return invalid("prefix %q: want one token of [A-Za-z0-9_-], at most 32 characters", cfg.Prefix)
	}
	names := NamesFor(cfg.Prefix)
	if !validGroup(cfg.Group) {
		return invalid("group %q: want [A-Za-z0-9_-]+", cfg.Group)
	}
	if cfg.Stream == "" {
		cfg.Stream = names.FireStream
	}
	if strings.ContainsAny(cfg.Stream, ".*> \t\r\n") {
		return invalid("stream %q: not a stream name", cfg.Stream)
	}
	cfg.Subjects = slices.Clone(cfg.Subjects)
	for _, s := range cfg.Subjects {
		if !validSubject(s, true) {
			return invalid("subject %q: not a subject filter", s)
		}
	}
	switch {
	case cfg.MaxDeliver < 0:
		return invalid("max deliver %d: must not be negative", cfg.MaxDeliver)
	case cfg.MaxDeliver == 0:
		cfg.MaxDeliver = DefaultConsumerMaxDeliver
	}
	if len(cfg.Backoff) == 0 {
		cfg.Backoff = append([]time.Duration(nil), consumerBackoff...)
	} else {
		cfg.Backoff = append([]time.Duration(nil), cfg.Backoff...)
	}
	for _, b := range cfg.Backoff {
		if b < 0 {
			return invalid("backoff %s: must not be negative", b)
		}
	}
	switch {
	case cfg.AckWait < 0:
		return invalid("ack wait %s: must not be negative", cfg.AckWait)
	case cfg.AckWait == 0:
		cfg.AckWait = DefaultConsumerAckWait
	}
	switch {
	case cfg.Concurrency < 0:
		return invalid("concurrency %d: must not be negative", cfg.Concurrency)
	case cfg.Concurrency == 0:
		cfg.Concurrency = 1
	}
	if cfg.DeadPrefix == "" {
		cfg.DeadPrefix = names.DeadPrefix
	}
	if !validSubject(cfg.DeadPrefix, false) {
		return invalid("dead prefix %q: not a subject without wildcards", cfg.DeadPrefix)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}

func validGroup(g string) bool { return subject.ValidToken(g) }

// validSubject: non-empty tokens without white space; wildcards only if
// allowed, and ">" only last.
func validSubject(s string, wild bool) bool { return subject.Valid(s, wild) }

// count records a handled message's outcome in the scheduler's metrics.
func (c *Consumer) count(result string) {
	if m := c.cfg.metrics; m != nil {
		m.handler.WithLabelValues(c.cfg.Group, result).Inc()
	}
}

// Name is the durable consumer's name, "<Prefix>_<Group>".
func (c *Consumer) Name() string { return c.name }

// Start creates the durable consumer, or updates its filter and settings,
// and starts consuming. The filter is cfg.Subjects or, without them, the
// dispatcher's subjects as they are now. A new durable starts after the
// stream's last message (at its first with FromStart); an existing one
// keeps its deliver policy and position, which the server does not let
// change. The consumer runs until Close; ctx only bounds the setup, though
// handler contexts inherit its values. Starting a started consumer does
// nothing.
//
// Errors: natsched.ErrClosed after Close; ErrInvalidOption when the
// dispatcher reports no subjects (a router without handlers); the
// server's errors, such as jetstream.ErrStreamNotFound when the stream
// does not exist.
func (c *Consumer) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return natsched.ErrClosed
	case c.started:
		return nil
	}
	c.subjects = c.cfg.Subjects
	if len(c.subjects) == 0 {
		c.subjects = c.d.(subjectLister).Subjects() // NewConsumer checked
		if len(c.subjects) == 0 {
			return fmt.Errorf("%w: consumer %s: the dispatcher has no handlers, so there is nothing to filter on; register handlers before Start or set ConsumerConfig.Subjects",
				ErrInvalidOption, c.name)
		}
	}
	root := context.WithoutCancel(ctx)
	running, stopRunning := context.WithCancel(root)
	base, abandon := context.WithCancel(root)
	c.running, c.stopRunning, c.base, c.abandon = running, stopRunning, base, abandon
	cc, err := c.consume(ctx)
	if err != nil {
		stopRunning()
		abandon()
		return err
	}
	c.started = true
	c.finished = make(chan struct{})
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		c.supervise(cc)
	}()
	go func() {
		<-consumed
		// No callback runs any more, so no handler can be added now.
		c.handlers.Wait()
		abandon()
		close(c.finished)
	}()
	return nil
}

// consume creates or updates the durable and consumes it.
func (c *Consumer) consume(ctx context.Context) (js.ConsumeContext, error) {
	cons, err := c.durable(ctx)
	if err != nil {
		return nil, fmt.Errorf("natsched: consumer %s on stream %s: %w", c.name, c.cfg.Stream, err)
	}
	// Buffer no more than can be handled at once: buffered messages age
	// towards their AckWait too.
	cc, err := cons.Consume(c.receive,
		js.PullMaxMessages(c.cfg.Concurrency),
		js.ConsumeErrHandler(func(cc js.ConsumeContext, err error) {
			c.log.Warn("natsched: consuming", "err", err)
			if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, js.ErrConsumerNotFound) {
				// The durable is gone, yet nats.go would keep pulling from
				// it: stop, so that supervise recreates it.
				cc.Stop()
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("natsched: consumer %s on stream %s: consume: %w", c.name, c.cfg.Stream, err)
	}
	return cc, nil
}

// durable creates the durable or updates an existing one. The update
// copies the existing start (deliver policy, start sequence and time): the
// server refuses to change them, and a durable's position is its own.
func (c *Consumer) durable(ctx context.Context) (js.Consumer, error) {
	want := js.ConsumerConfig{
		Durable:        c.name,
		Description:    "natsched handler group " + c.cfg.Group,
		AckPolicy:      js.AckExplicitPolicy,
		AckWait:        c.cfg.AckWait,
		MaxDeliver:     -1, // counted here, to dead-letter rather than drop
		FilterSubjects: c.subjects,
	}
	// Another instance of the group may create or delete the durable
	// between the look-up and the write; a few rounds settle it.
	for range 3 {
		cons, err := c.js.Consumer(ctx, c.cfg.Stream, c.name)
		switch {
		case err == nil:
			have := cons.CachedInfo().Config
			want.DeliverPolicy, want.OptStartSeq, want.OptStartTime = have.DeliverPolicy, have.OptStartSeq, have.OptStartTime
			if c.cfg.FromStart && have.DeliverPolicy != js.DeliverAllPolicy && !c.created.Load() {
				c.log.Info("natsched: the durable exists and keeps its position; FromStart applies to a new durable only (delete it to start over)",
					"deliver_policy", have.DeliverPolicy.String())
			}
			cons, err = c.js.UpdateConsumer(ctx, c.cfg.Stream, want)
			if errors.Is(err, js.ErrConsumerDoesNotExist) {
				continue
			}
		case errors.Is(err, js.ErrConsumerNotFound):
			want.DeliverPolicy, want.OptStartSeq = c.start(ctx)
			want.OptStartTime = nil
			cons, err = c.js.CreateConsumer(ctx, c.cfg.Stream, want)
			if errors.Is(err, js.ErrConsumerExists) {
				continue
			}
		}
		if err != nil {
			return nil, err
		}
		c.received(cons.CachedInfo().Delivered.Stream)
		c.created.Store(true)
		return cons, nil
	}
	return nil, errors.New("the durable kept being created or deleted by others; try again")
}

// start is where a new durable begins. One deleted under this Consumer
// (by an operator, say) is recreated just after the last message this
// instance saw, so that messages fired while it was gone are not skipped;
// redeliveries it had pending are gone with it. If the stream is behind
// that message, it was recreated too, and all of it is new.
func (c *Consumer) start(ctx context.Context) (js.DeliverPolicy, uint64) {
	switch {
	case c.created.Load():
		p := c.position.Load()
		if s, err := c.js.Stream(ctx, c.cfg.Stream); err == nil && s.CachedInfo().State.LastSeq < p {
			c.position.Store(0)
			return js.DeliverAllPolicy, 0
		}
		return js.DeliverByStartSequencePolicy, p + 1
	case c.cfg.FromStart:
		return js.DeliverAllPolicy, 0
	default:
		return js.DeliverNewPolicy, 0
	}
}

// received moves position up to seq.
func (c *Consumer) received(seq uint64) {
	for {
		p := c.position.Load()
		if seq <= p || c.position.CompareAndSwap(p, seq) {
			return
		}
	}
}

// supervise drains consumption when Close starts, and resumes it when it
// ends on its own: nats.go stops consuming when it learns that the durable
// was deleted, the error handler above stops it when pulls find no durable,
// and a consumer must outlive that.
func (c *Consumer) supervise(cc js.ConsumeContext) {
	for {
		select {
		case <-c.running.Done():
			cc.Drain() // buffered messages are still handled
			<-cc.Closed()
			return
		case <-cc.Closed():
		}
		if c.js.Conn().IsClosed() {
			c.log.Error("natsched: connection closed; consumer stopped")
			return
		}
		c.log.Warn("natsched: consumption ended; resuming")
		if cc = c.resume(); cc == nil {
			return
		}
	}
}

// resume recreates the durable and consumes it again, retrying with
// backoff; nil when Close starts first.
func (c *Consumer) resume() js.ConsumeContext {
	delay := consumerRetryMin
	for {
		t := time.NewTimer(delay)
		select {
		case <-c.running.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.running, consumerRetryMax)
		cc, err := c.consume(ctx)
		cancel()
		if err == nil {
			return cc
		}
		if c.running.Err() != nil {
			return nil
		}
		c.log.Warn("natsched: resuming consumption", "err", err, "retry_in", delay)
		delay = min(2*delay, consumerRetryMax)
	}
}

// Close stops consuming, lets the messages already received be handled,
// and waits for every handler to return. If ctx ends first, it cancels the
// handlers' contexts and returns ctx.Err(); their messages are then
// redelivered. It is safe to call twice, concurrently, or before Start.
func (c *Consumer) Close(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	started, finished := c.started, c.finished
	if c.stopRunning != nil {
		c.stopRunning()
	}
	c.mu.Unlock()
	if !started {
		return nil
	}
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		c.abandon()
		return ctx.Err()
	}
}

// Stats returns the counts so far.
func (c *Consumer) Stats() ConsumerStats {
	return ConsumerStats{
		Delivered:    c.delivered.Load(),
		Acked:        c.acked.Load(),
		Naked:        c.naked.Load(),
		DeadLettered: c.deadLettered.Load(),
		Skipped:      c.skipped.Load(),
	}
}

// receive is the Consume callback. It blocks while all handler slots are
// taken, which holds back further pulls.
func (c *Consumer) receive(msg js.Msg) {
	waited := false
	select {
	case c.slots <- struct{}{}:
	default:
		waited = true
		c.slots <- struct{}{}
	}
	c.handlers.Add(1)
	go func() {
		defer func() {
			<-c.slots
			c.handlers.Done()
		}()
		if waited {
			// It aged in the buffer: restart the server's AckWait so that
			// the handler gets all of it before a redelivery.
			_ = msg.InProgress()
		}
		c.handle(msg)
	}()
}

// handle runs one delivery to its outcome: ack, nak or dead letter.
func (c *Consumer) handle(msg js.Msg) {
	c.delivered.Add(1)
	meta, err := msg.Metadata()
	if err != nil {
		// Not a JetStream delivery: nothing can be acknowledged either.
		c.log.Error("natsched: message without metadata", "subject", msg.Subject(), "err", err)
		return
	}
	c.received(meta.Sequence.Stream)
	n := meta.NumDelivered
	log := c.log.With("subject", msg.Subject(), "seq", meta.Sequence.Stream, "delivery", n)
	if n > uint64(c.cfg.MaxDeliver) {
		c.deadLetter(log, msg, meta, fmt.Errorf(
			"natsched: delivered %d times, more than max deliver %d: earlier attempts ended without an outcome",
			n, c.cfg.MaxDeliver))
		return
	}
	m := &natsched.Message{Subject: msg.Subject(), Header: cloneHeader(msg.Headers()), Data: msg.Data()}
	hctx, cancel := context.WithTimeout(c.base, c.cfg.AckWait)
	hctx, end := handlerContext(hctx, c.cfg.Group, m, n)
	err = c.dispatch(hctx, m)
	end(err)
	cancel()
	switch {
	case err == nil:
		// Wait for the server's word: a lost ack means handling twice.
		actx, cancel := context.WithTimeout(c.base, ackTimeout)
		err := msg.DoubleAck(actx)
		cancel()
		if err != nil {
			log.Warn("natsched: ack", "err", err) // redelivered after AckWait
			return
		}
		c.acked.Add(1)
		c.count("ok")
	case errors.Is(err, natsched.ErrNoHandler):
		c.skip(log, msg, err)
	case errors.Is(err, natsched.ErrDecode):
		c.deadLetter(log, msg, meta, err)
	case c.base.Err() != nil:
		// Close gave up waiting and cancelled the handler: not the
		// message's fault, so another instance may try at once.
		c.nak(log, msg, 0, err)
	case n >= uint64(c.cfg.MaxDeliver):
		c.deadLetter(log, msg, meta, err)
	default:
		c.nak(log, msg, c.backoff(n), err)
	}
}

// dispatch calls the dispatcher, turning a panic into an error wrapping
// natsched.ErrHandlerPanic (a *natsched.Router recovers its own).
func (c *Consumer) dispatch(ctx context.Context, m *natsched.Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if e, ok := p.(error); ok {
				err = fmt.Errorf("%w: subject %q: %w", natsched.ErrHandlerPanic, m.Subject, e)
			} else {
				err = fmt.Errorf("%w: subject %q: %v", natsched.ErrHandlerPanic, m.Subject, p)
			}
		}
	}()
	return c.d.Dispatch(ctx, m)
}

// backoff is the delay after the n-th failed delivery (n >= 1).
func (c *Consumer) backoff(n uint64) time.Duration {
	b := c.cfg.Backoff
	return b[min(max(n, 1)-1, uint64(len(b)-1))]
}

func (c *Consumer) nak(log *slog.Logger, msg js.Msg, delay time.Duration, cause error) {
	var err error
	if delay > 0 {
		err = msg.NakWithDelay(delay)
	} else {
		err = msg.Nak()
	}
	if err != nil {
		log.Warn("natsched: nak", "err", err, "cause", cause) // redelivered after AckWait
		return
	}
	c.naked.Add(1)
	c.count("retry")
	log.Warn("natsched: handler failed; will retry", "err", cause, "retry_in", delay)
}

// skip terminates a message no handler of the group was registered for.
// Terminating, rather than naking, keeps it from coming back to a group
// that cannot handle it, where pending redeliveries would hold up its own
// messages; the stream keeps it for other consumers. No dead letter: it is
// not a failure of the group's.
func (c *Consumer) skip(log *slog.Logger, msg js.Msg, cause error) {
	reason := oneLine(fmt.Sprintf("no handler in group %s: %s", c.cfg.Group, cause), 256)
	if err := msg.TermWithReason(reason); err != nil {
		log.Warn("natsched: term", "err", err, "cause", cause) // redelivered, then skipped again
		return
	}
	c.skipped.Add(1)
	log.Info("natsched: no handler in this group; terminated, not dead-lettered", "err", cause)
}

// deadLetter publishes msg to the dead letters and, once stored,
// terminates it; if it cannot be stored, msg is nak'ed.
func (c *Consumer) deadLetter(log *slog.Logger, msg js.Msg, meta *js.MsgMetadata, cause error) {
	subject := c.cfg.DeadPrefix + "." + msg.Subject()
	text := oneLine(cause.Error(), MaxDeadErrorLen)
	dm := &nats.Msg{Subject: subject, Header: make(nats.Header, len(msg.Headers())+2), Data: msg.Data()}
	for k, v := range msg.Headers() {
		if hasPrefixFold(k, "Nats-") || strings.EqualFold(k, deadHeaderError) || strings.EqualFold(k, deadHeaderDeliveries) {
			continue
		}
		dm.Header[k] = append([]string(nil), v...)
	}
	dm.Header.Set(deadHeaderError, text)
	dm.Header.Set(deadHeaderDeliveries, strconv.FormatUint(meta.NumDelivered, 10))
	// One ID per stored message and group: if the Term below is lost, the
	// next delivery is dead-lettered again and JetStream drops the copy.
	id := fmt.Sprintf("natsched-dead:%s:%s:%d:%d", meta.Stream, meta.Consumer, meta.Sequence.Stream, meta.Timestamp.UnixNano())
	ctx, cancel := context.WithTimeout(c.base, deadLetterTimeout)
	_, err := c.js.PublishMsg(ctx, dm, js.WithMsgID(id))
	cancel()
	if err != nil {
		log.Error("natsched: dead letter not stored; will retry", "dead_subject", subject, "err", err, "cause", cause)
		c.nak(log, msg, c.backoff(meta.NumDelivered), fmt.Errorf("dead letter: %w", err))
		return
	}
	c.deadLettered.Add(1)
	c.count("dead")
	log.Error("natsched: dead-lettered", "dead_subject", subject, "err", cause)
	reason := oneLine(fmt.Sprintf("dead-lettered to %s: %s", subject, text), 256)
	if err := msg.TermWithReason(reason); err != nil {
		log.Warn("natsched: term", "err", err) // redelivered, then deduplicated
	}
}

func cloneHeader(h nats.Header) nats.Header {
	if h == nil {
		return nil
	}
	c := make(nats.Header, len(h))
	for k, v := range h {
		c[k] = append([]string(nil), v...)
	}
	return c
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// oneLine collapses white space (line breaks included) to single spaces
// and cuts s to at most n bytes, on a rune boundary.
func oneLine(s string, n int) string { return subject.Cut(subject.OneLine(s), n) }

// EnsureDeadStream creates or updates stream NATSCHED_DEAD, file storage,
// on natsched.dead.> (dead letters) and natsched.rejected.> (rejected
// intake). replicas 0 means 1.
//
// Errors: natsched.ErrInvalid for a nil jsc or negative replicas; the
// server's errors.
func EnsureDeadStream(ctx context.Context, jsc js.JetStream, replicas int) error {
	if jsc == nil {
		return fmt.Errorf("%w: dead stream: nil JetStream", natsched.ErrInvalid)
	}
	if replicas < 0 {
		return fmt.Errorf("%w: dead stream: replicas %d", natsched.ErrInvalid, replicas)
	}
	return ensureDeadLetters(ctx, jsc, NamesFor(DefaultPrefix), max(replicas, 1))
}
