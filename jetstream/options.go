package jetstream

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/clock"
	"github.com/natsched/natsched/internal/engine"
)

// Defaults.
const (
	DefaultLeaseTTL = 3 * time.Second
	DefaultWorkers  = 1024
	// MinDuplicateWindow is the least duplicate window of the fire stream;
	// the window is also at least 10 lease TTLs.
	MinDuplicateWindow = 2 * time.Minute
)

// Option configures a Scheduler.
type Option func(*options) error

type options struct {
	prefix     string
	name       string
	replicas   int
	leaseTTL   time.Duration
	clock      clock.Clock
	leaseClock clock.Clock
	engine     engine.Options
	dupWindow  time.Duration
	fireMaxAge time.Duration
	deadMaxAge time.Duration
	workers    int
	partitions int
	logger     *slog.Logger
	router     *natsched.Router
	consumers  []ConsumerConfig
	allow      []AllowRule
	clockSync  *bool
	noAPI      bool
	noIntake   bool
	version    string
	registerer prometheus.Registerer
}

// ErrInvalidOption: an Option, or a ConsumerConfig, is not valid. It is
// about the scheduler's configuration, not a schedule: errors.Is it, not
// natsched.ErrInvalid.
var ErrInvalidOption = errors.New("natsched: invalid option")

func invalidOption(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidOption, fmt.Sprintf(format, args...))
}

// WithPrefix sets the prefix of every bucket, stream and subject (default
// "natsched"): one token of [A-Za-z0-9_-].
func WithPrefix(p string) Option {
	return func(o *options) error {
		if !ValidPrefix(p) {
			return invalidOption("prefix %q: want one token of [A-Za-z0-9_-], at most 32 characters", p)
		}
		o.prefix = p
		return nil
	}
}

// WithName sets the instance name shown in the lease and in status
// (default: host name and process ID).
func WithName(name string) Option {
	return func(o *options) error {
		if name == "" || len(name) > 128 {
			return invalidOption("name must be 1-128 characters")
		}
		o.name = name
		return nil
	}
}

// WithReplicas sets the replicas of the buckets and streams the scheduler
// creates (default 1; 3 on a cluster).
func WithReplicas(n int) Option {
	return func(o *options) error {
		if n < 1 || n > 5 {
			return invalidOption("replicas must be 1 to 5, got %d", n)
		}
		o.replicas = n
		return nil
	}
}

// WithLeaseTTL sets how long a leader's lease lives without renewal
// (default 3s). A killed leader is replaced about this long after it died.
// The lease bucket's TTL is set to it at Start, except that a shorter TTL
// is not applied while another instance holds the lease: this instance
// then keeps the bucket's TTL (and logs a warning). Run every instance
// with the same lease TTL.
func WithLeaseTTL(d time.Duration) Option {
	return func(o *options) error {
		if d < 300*time.Millisecond {
			return invalidOption("lease TTL must be at least 300ms, got %s", d)
		}
		o.leaseTTL = d
		return nil
	}
}

// WithClock sets the clock firing follows (default clock.Real()).
func WithClock(c clock.Clock) Option {
	return func(o *options) error {
		if c == nil {
			return invalidOption("nil clock")
		}
		o.clock = c
		return nil
	}
}

// WithLeaseClock sets the clock the lease is renewed by (default
// clock.Real()). The server expires leases in real time, so only tests of
// the lease itself want another.
func WithLeaseClock(c clock.Clock) Option {
	return func(o *options) error {
		if c == nil {
			return invalidOption("nil lease clock")
		}
		o.leaseClock = c
		return nil
	}
}

// WithMisfireThreshold: occurrences planned more than d before a leader
// took over are missed and follow their misfire policy (default 1s).
func WithMisfireThreshold(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return invalidOption("misfire threshold must be positive")
		}
		o.engine.MisfireThreshold = d
		return nil
	}
}

// WithRetention sets how long done schedules stay readable (default 24h).
func WithRetention(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return invalidOption("retention must be positive")
		}
		o.engine.Retention = d
		return nil
	}
}

// WithDuplicateWindow sets the duplicate window the fire stream is created
// with; it is raised to at least 2 minutes and 10 lease TTLs. Start
// refuses an existing fire stream whose window is shorter than that
// minimum (ErrDuplicateWindow).
func WithDuplicateWindow(d time.Duration) Option {
	return func(o *options) error { o.dupWindow = d; return nil }
}

// WithWorkers bounds how many schedules the leader fires concurrently
// (default 1024).
func WithWorkers(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return invalidOption("workers must be positive")
		}
		o.workers = n
		return nil
	}
}

// MaxPartitions bounds WithPartitions (an index entry keeps its
// partition in one byte).
const MaxPartitions = 256

// WithPartitions splits firing into n partitions (default 1): schedule id
// belongs to partition natsched.Partition(id, n), each partition has its
// own lease, and the instances balance the leases, each firing its share.
// Every instance of a deployment should use the same n; see the package
// documentation for changing it on a running system.
func WithPartitions(n int) Option {
	return func(o *options) error {
		if n < 1 || n > MaxPartitions {
			return invalidOption("partitions must be between 1 and %d, got %d", MaxPartitions, n)
		}
		o.partitions = n
		return nil
	}
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error { o.logger = l; return nil }
}

// WithRouter hands fired messages to router through a durable consumer
// "<prefix>_<Group>" (see ConsumerConfig), and lets the typed helpers
// (natsched.ScheduleIn, ...) find the router's registry. The group
// receives only what the router has handlers for (router.Subjects(), unless
// cfg.Subjects says otherwise), fired after its durable was first created
// (unless cfg.FromStart). It may be given more than once with different
// groups.
func WithRouter(router *natsched.Router, cfg ConsumerConfig) Option {
	return func(o *options) error {
		if router == nil {
			return invalidOption("nil router")
		}
		if o.router == nil {
			o.router = router
		}
		cfg.router = router
		o.consumers = append(o.consumers, cfg)
		return nil
	}
}

// WithoutAPI does not serve the micro service on <prefix>.api.* (it is
// served by default, by every instance).
func WithoutAPI() Option { return func(o *options) error { o.noAPI = true; return nil } }

// WithoutIntake does not consume the durable intake stream <prefix>.in.>
// (consumed by default, shared by every instance).
func WithoutIntake() Option { return func(o *options) error { o.noIntake = true; return nil } }
