package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	js "github.com/nats-io/nats.go/jetstream"

	"github.com/natsched/natsched/internal/subject"
	"github.com/natsched/natsched/jetstream/internal/lease"
)

// Max ages of the streams natsched creates, unless WithFireMaxAge and
// WithDeadMaxAge say otherwise.
const (
	DefaultFireMaxAge = 7 * 24 * time.Hour
	DefaultDeadMaxAge = 30 * 24 * time.Hour
)

// ErrDuplicateWindow is returned by Start when the fire stream exists with
// a duplicate window shorter than natsched needs to publish each
// occurrence once (see MinDuplicateWindow).
var ErrDuplicateWindow = errors.New("natsched: duplicate window too short")

// WithFireMaxAge sets the max age the fire stream is created with (default
// DefaultFireMaxAge, 7 days; 0: no limit). It must not be shorter than the
// duplicate window. A fire stream that exists keeps its own.
func WithFireMaxAge(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return invalidOption("fire max age must not be negative, got %s", d)
		}
		o.fireMaxAge = d
		return nil
	}
}

// WithDeadMaxAge sets the max age the dead-letter stream is created with
// (default DefaultDeadMaxAge, 30 days; 0: no limit). A dead-letter stream
// that exists keeps its own.
func WithDeadMaxAge(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return invalidOption("dead max age must not be negative, got %s", d)
		}
		o.deadMaxAge = d
		return nil
	}
}

// neededDuplicateWindow is the shortest duplicate window of the fire stream
// that covers a failover: 2 minutes, or 10 lease TTLs if longer.
func neededDuplicateWindow(leaseTTL time.Duration) time.Duration {
	return max(MinDuplicateWindow, 10*leaseTTL)
}

// ensure creates the buckets and streams that do not exist and checks
// those that do. What exists is the operator's: its limits, replicas and
// placement stay as they are. Only what natsched depends on is checked:
// that the streams capture natsched's subjects and the schedules do not
// expire (a warning otherwise), that the lease bucket's TTL is the lease
// TTL (see ensureLease), and that the fire stream's duplicate window
// covers a failover (ErrDuplicateWindow otherwise).
// infra is what ensure needs and what it finds.
type infra struct {
	js       js.JetStream
	names    Names
	replicas int
	// leaseTTL is the lease TTL asked for; ensure may change it to the
	// lease bucket's (see ensureLease).
	leaseTTL                          time.Duration
	dupWindow, fireMaxAge, deadMaxAge time.Duration
	intake                            bool // the intake stream too
	log                               *slog.Logger

	kv, leaseKV js.KeyValue // the schedules and lease buckets
	markers     bool        // the lease bucket announces expiries
	// schedules is the schedules bucket's stream, and batched whether it
	// takes fast batches (see fastbatch.go): the firer's state writes then
	// cost one PubAck a batch.
	schedules js.Stream
	batched   bool
}

func (inf *infra) ensure(ctx context.Context) error {
	n, r := inf.names, inf.replicas
	kv, cfg, err := inf.ensureBucket(ctx, n.SchedulesBucket, func(ctx context.Context) (js.KeyValue, error) {
		return inf.js.CreateKeyValue(ctx, js.KeyValueConfig{
			Bucket: n.SchedulesBucket, Description: "natsched schedules: key = schedule ID, value = schedule JSON",
			History: 1, Storage: js.FileStorage, Replicas: r,
		})
	})
	if err != nil {
		return err
	}
	if cfg.MaxAge > 0 {
		inf.log.Warn("natsched: the schedules bucket has a TTL: schedules not written for that long disappear",
			"bucket", n.SchedulesBucket, "ttl", cfg.MaxAge)
	}
	inf.kv = kv
	if err := inf.allowBatches(ctx, cfg); err != nil {
		return err
	}
	if err := inf.ensureLease(ctx); err != nil {
		return err
	}

	need := neededDuplicateWindow(inf.leaseTTL)
	fire, err := ensureStream(ctx, inf.js, js.StreamConfig{
		Name: n.FireStream, Description: "natsched fired messages",
		Subjects: []string{n.FireSubjects}, Storage: js.FileStorage, Replicas: r,
		Duplicates: max(inf.dupWindow, need), MaxAge: inf.fireMaxAge,
	})
	if err != nil {
		return err
	}
	inf.checkCaptured(fire, "put refuses targets there unless another stream captures them", n.FireSubjects)
	if fire.Duplicates < need {
		return fmt.Errorf("%w: stream %s has a duplicate window of %s, natsched needs at least %s "+
			"(2m or 10 lease TTLs of %s, whichever is longer) to publish each occurrence once across a failover; "+
			"raise it (nats stream edit %s --dupe-window %s) or shorten the lease",
			ErrDuplicateWindow, n.FireStream, fire.Duplicates, need, inf.leaseTTL, n.FireStream, need)
	}

	dead, err := ensureStream(ctx, inf.js, deadStream(n, r, inf.deadMaxAge))
	if err != nil {
		return err
	}
	inf.checkCaptured(dead, "dead letters and rejected intake messages published there are not stored",
		n.DeadPrefix+".>", n.RejectedPrefix+".>")
	if !inf.intake {
		return nil
	}
	// No max age: an intake message waits, however long no scheduler
	// runs, rather than vanish after JetStream acknowledged it.
	in, err := ensureStream(ctx, inf.js, js.StreamConfig{
		Name: n.IntakeStream, Description: "natsched durable intake: publish to " + n.IntakePrefix + ".<id>",
		Subjects: []string{n.IntakePrefix + ".>"}, Retention: js.WorkQueuePolicy,
		Storage: js.FileStorage, Replicas: r,
	})
	if err != nil {
		return err
	}
	inf.checkCaptured(in, "intake messages published there are not stored", n.IntakePrefix+".>")
	return nil
}

// allowBatches turns on fast batch publishing (allow_batched) on the
// schedules bucket's stream, which changes nothing for what it stores or
// for other writers. A server without it (before 2.14), or an account not
// allowed to edit the stream, leaves the firer writing states one publish
// each, as it says.
func (inf *infra) allowBatches(ctx context.Context, cfg *js.StreamConfig) error {
	name := "KV_" + inf.names.SchedulesBucket
	st, err := inf.js.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("natsched: bucket %s: %w", inf.names.SchedulesBucket, err)
	}
	inf.schedules = st
	if cfg.AllowBatchPublish {
		inf.batched = true
		return nil
	}
	c := *cfg
	c.AllowBatchPublish = true
	updated, err := inf.js.UpdateStream(ctx, c)
	if err == nil && updated.CachedInfo().Config.AllowBatchPublish {
		inf.schedules, inf.batched = updated, true
		return nil
	}
	inf.log.Info("natsched: the schedules bucket does not take fast batches (nats-server 2.14+, allow_batched); "+
		"firing writes each state with its own publish", "stream", name, "err", err)
	return nil
}

// ensureLease opens the lease bucket, creating it when absent, and makes
// its TTL the lease TTL: the server expires a lease after the bucket's
// TTL, while a leader renews and stops firing by its own --lease, so the
// two must agree. Every instance shares the bucket, so a changed lease
// TTL is applied to it, except when that would shorten it while some
// instance holds the lease: that instance renews by the longer TTL, and
// a shorter one would let its lease expire on the server while it still
// fires. This instance then runs with the bucket's TTL, says so, and
// applies its own at a later start that finds the lease free.
func (inf *infra) ensureLease(ctx context.Context) error {
	n := inf.names
	cfg := js.KeyValueConfig{
		Bucket: n.LeaderBucket, Description: "natsched leader lease",
		History: 1, TTL: inf.leaseTTL, Storage: js.FileStorage, Replicas: inf.replicas,
		// Markers make an expired lease visible to watchers at once.
		LimitMarkerTTL: max(inf.leaseTTL, time.Second),
	}
	kv, sc, err := inf.ensureBucket(ctx, n.LeaderBucket, func(ctx context.Context) (js.KeyValue, error) {
		kv, err := inf.js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, js.ErrLimitMarkerTTLNotSupported) {
			cfg.LimitMarkerTTL = 0
			kv, err = inf.js.CreateKeyValue(ctx, cfg)
		}
		return kv, err
	})
	if err != nil {
		return err
	}
	inf.leaseKV = kv
	inf.markers = sc.SubjectDeleteMarkerTTL > 0
	ttl := sc.MaxAge
	if ttl == inf.leaseTTL {
		return nil
	}
	if ttl > inf.leaseTTL {
		v, _, err := lease.Current(ctx, kv, LeaderKey)
		holder := v.ID
		if err != nil {
			return fmt.Errorf("natsched: bucket %s: %w", n.LeaderBucket, err)
		}
		if holder != "" {
			inf.log.Warn("natsched: lease TTL differs from the lease bucket's TTL; keeping the bucket's while another instance holds the lease",
				"bucket", n.LeaderBucket, "bucket_ttl", ttl, "lease", inf.leaseTTL, "holder", holder)
			inf.leaseTTL = ttl
			return nil
		}
	}
	// 0 (no TTL) never expires a lease: always replaced.
	sc.MaxAge = inf.leaseTTL
	sc.Duplicates = min(sc.Duplicates, inf.leaseTTL) // the server wants it within MaxAge
	if _, err := inf.js.UpdateStream(ctx, *sc); err != nil {
		return fmt.Errorf("natsched: bucket %s: set its TTL to the lease TTL %s: %w", n.LeaderBucket, inf.leaseTTL, err)
	}
	inf.log.Warn("natsched: lease bucket TTL set to the lease TTL; run every instance with the same lease",
		"bucket", n.LeaderBucket, "was", ttl, "now", inf.leaseTTL)
	return nil
}

// ensureBucket opens bucket, or makes it with create when it does not
// exist, and returns it with the configuration of its stream as the
// server has it.
func (inf *infra) ensureBucket(ctx context.Context, bucket string, create func(context.Context) (js.KeyValue, error)) (js.KeyValue, *js.StreamConfig, error) {
	kv, err := createIfAbsent(ctx, func(ctx context.Context) (js.KeyValue, error) {
		return inf.js.KeyValue(ctx, bucket)
	}, create, js.ErrBucketNotFound, js.ErrBucketExists)
	if err != nil {
		return nil, nil, fmt.Errorf("natsched: bucket %s: %w", bucket, err)
	}
	st, err := inf.js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return nil, nil, fmt.Errorf("natsched: bucket %s: %w", bucket, err)
	}
	cfg := st.CachedInfo().Config
	return kv, &cfg, nil
}

// ensureStream creates the stream cfg describes when none of that name
// exists, and returns the configuration the server has: an existing
// stream is left exactly as it is.
func ensureStream(ctx context.Context, jsc js.JetStream, cfg js.StreamConfig) (*js.StreamConfig, error) {
	st, err := createIfAbsent(ctx, func(ctx context.Context) (js.Stream, error) {
		return jsc.Stream(ctx, cfg.Name)
	}, func(ctx context.Context) (js.Stream, error) {
		return jsc.CreateStream(ctx, cfg)
	}, js.ErrStreamNotFound, js.ErrStreamNameAlreadyInUse)
	if err != nil {
		return nil, fmt.Errorf("natsched: stream %s: %w", cfg.Name, err)
	}
	got := st.CachedInfo().Config
	return &got, nil
}

// createIfAbsent returns what get finds or, when get reports absent, what
// create makes. When create reports exists, another instance made it in
// between (instances start at once), and get reads theirs.
func createIfAbsent[T any](ctx context.Context, get, create func(context.Context) (T, error), absent, exists error) (T, error) {
	v, err := get(ctx)
	if !errors.Is(err, absent) {
		return v, err
	}
	v, err = create(ctx)
	if errors.Is(err, exists) {
		return get(ctx)
	}
	return v, err
}

// deadStream is the configuration the dead-letter stream is created with.
func deadStream(n Names, replicas int, maxAge time.Duration) js.StreamConfig {
	return js.StreamConfig{
		Name: n.DeadStream, Description: "natsched dead letters and rejected intake",
		Subjects: []string{n.DeadPrefix + ".>", n.RejectedPrefix + ".>"},
		Storage:  js.FileStorage, Replicas: replicas, MaxAge: maxAge,
	}
}

// ensureDeadLetters creates the dead-letter stream when absent, with the
// default max age; an existing one is left as it is.
func ensureDeadLetters(ctx context.Context, jsc js.JetStream, n Names, replicas int) error {
	_, err := ensureStream(ctx, jsc, deadStream(n, replicas, DefaultDeadMaxAge))
	return err
}

// checkCaptured logs a warning for each of subjects that cfg's stream does
// not capture; effect says what that breaks.
func (inf *infra) checkCaptured(cfg *js.StreamConfig, effect string, subjects ...string) {
	for _, want := range subjects {
		if !slices.ContainsFunc(cfg.Subjects, func(f string) bool { return subject.Match(f, want) }) {
			inf.log.Warn("natsched: a stream does not capture the subjects natsched uses it for: "+effect,
				"stream", cfg.Name, "needs", want, "has", strings.Join(cfg.Subjects, ","))
		}
	}
}
