package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	js "github.com/nats-io/nats.go/jetstream"
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

// ensureInfra creates the buckets and streams that do not exist and checks
// those that do. What exists is the operator's: its limits, replicas and
// placement stay as they are. Only what natsched depends on is checked:
// that the streams capture natsched's subjects and the schedules do not
// expire (a warning otherwise), that the lease bucket's TTL is the lease
// TTL (see ensureLease), and that the fire stream's duplicate window
// covers a failover (ErrDuplicateWindow otherwise).
func (s *Scheduler) ensureInfra(ctx context.Context) error {
	n, r := s.names, s.o.replicas
	kv, cfg, err := s.ensureBucket(ctx, n.SchedulesBucket, func(ctx context.Context) (js.KeyValue, error) {
		return s.js.CreateKeyValue(ctx, js.KeyValueConfig{
			Bucket: n.SchedulesBucket, Description: "natsched schedules: key = schedule ID, value = schedule JSON",
			History: 1, Storage: js.FileStorage, Replicas: r,
		})
	})
	if err != nil {
		return err
	}
	if cfg.MaxAge > 0 {
		s.log.Warn("natsched: the schedules bucket has a TTL: schedules not written for that long disappear",
			"bucket", n.SchedulesBucket, "ttl", cfg.MaxAge)
	}
	s.kv = kv
	if err := s.ensureLease(ctx); err != nil {
		return err
	}

	need := neededDuplicateWindow(s.o.leaseTTL)
	fire, err := ensureStream(ctx, s.js, js.StreamConfig{
		Name: n.FireStream, Description: "natsched fired messages",
		Subjects: []string{n.FireSubjects}, Storage: js.FileStorage, Replicas: r,
		Duplicates: max(s.o.dupWindow, need), MaxAge: s.o.fireMaxAge,
	})
	if err != nil {
		return err
	}
	s.checkCaptured(fire, "put refuses targets there unless another stream captures them", n.FireSubjects)
	if fire.Duplicates < need {
		return fmt.Errorf("%w: stream %s has a duplicate window of %s, natsched needs at least %s "+
			"(2m or 10 lease TTLs of %s, whichever is longer) to publish each occurrence once across a failover; "+
			"raise it (nats stream edit %s --dupe-window %s) or shorten the lease",
			ErrDuplicateWindow, n.FireStream, fire.Duplicates, need, s.o.leaseTTL, n.FireStream, need)
	}

	dead, err := ensureStream(ctx, s.js, deadStream(n, r, s.o.deadMaxAge))
	if err != nil {
		return err
	}
	s.checkCaptured(dead, "dead letters and rejected intake messages published there are not stored",
		n.DeadPrefix+".>", n.RejectedPrefix+".>")
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
func (s *Scheduler) ensureLease(ctx context.Context) error {
	n := s.names
	cfg := js.KeyValueConfig{
		Bucket: n.LeaderBucket, Description: "natsched leader lease",
		History: 1, TTL: s.o.leaseTTL, Storage: js.FileStorage, Replicas: s.o.replicas,
		// Markers make an expired lease visible to watchers at once.
		LimitMarkerTTL: max(s.o.leaseTTL, time.Second),
	}
	kv, sc, err := s.ensureBucket(ctx, n.LeaderBucket, func(ctx context.Context) (js.KeyValue, error) {
		kv, err := s.js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, js.ErrLimitMarkerTTLNotSupported) {
			cfg.LimitMarkerTTL = 0
			kv, err = s.js.CreateKeyValue(ctx, cfg)
		}
		return kv, err
	})
	if err != nil {
		return err
	}
	s.leaseKV = kv
	s.leaseMarkers = sc.SubjectDeleteMarkerTTL > 0
	ttl := sc.MaxAge
	if ttl == s.o.leaseTTL {
		return nil
	}
	if ttl > s.o.leaseTTL {
		holder, err := currentLeader(ctx, s)
		if err != nil {
			return fmt.Errorf("natsched: bucket %s: %w", n.LeaderBucket, err)
		}
		if holder != "" {
			s.log.Warn("natsched: lease TTL differs from the lease bucket's TTL; keeping the bucket's while another instance holds the lease",
				"bucket", n.LeaderBucket, "bucket_ttl", ttl, "lease", s.o.leaseTTL, "holder", holder)
			s.o.leaseTTL = ttl
			return nil
		}
	}
	// 0 (no TTL) never expires a lease: always replaced.
	sc.MaxAge = s.o.leaseTTL
	sc.Duplicates = min(sc.Duplicates, s.o.leaseTTL) // the server wants it within MaxAge
	if _, err := s.js.UpdateStream(ctx, *sc); err != nil {
		return fmt.Errorf("natsched: bucket %s: set its TTL to the lease TTL %s: %w", n.LeaderBucket, s.o.leaseTTL, err)
	}
	s.log.Warn("natsched: lease bucket TTL set to the lease TTL; run every instance with the same lease",
		"bucket", n.LeaderBucket, "was", ttl, "now", s.o.leaseTTL)
	return nil
}

// ensureBucket opens bucket, or makes it with create when it does not
// exist, and returns it with the configuration of its stream as the
// server has it.
func (s *Scheduler) ensureBucket(ctx context.Context, bucket string, create func(context.Context) (js.KeyValue, error)) (js.KeyValue, *js.StreamConfig, error) {
	kv, err := createIfAbsent(ctx, func(ctx context.Context) (js.KeyValue, error) {
		return s.js.KeyValue(ctx, bucket)
	}, create, js.ErrBucketNotFound, js.ErrBucketExists)
	if err != nil {
		return nil, nil, fmt.Errorf("natsched: bucket %s: %w", bucket, err)
	}
	st, err := s.js.Stream(ctx, "KV_"+bucket)
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
func (s *Scheduler) checkCaptured(cfg *js.StreamConfig, effect string, subjects ...string) {
	for _, want := range subjects {
		if !slices.ContainsFunc(cfg.Subjects, func(f string) bool { return subjectMatches(f, want) }) {
			s.log.Warn("natsched: a stream does not capture the subjects natsched uses it for: "+effect,
				"stream", cfg.Name, "needs", want, "has", strings.Join(cfg.Subjects, ","))
		}
	}
}
