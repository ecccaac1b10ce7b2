package natsched

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
)

// Status is where a schedule stands.
type Status string

const (
	StatusActive Status = "active"
	StatusPaused Status = "paused"
	// StatusDone: a one-shot fired, max_runs was reached or end has passed.
	// Done schedules stay readable for a retention period, then disappear.
	StatusDone Status = "done"
)

// Misfire says what happens to occurrences of a recurring schedule that
// could not fire because no scheduler was running (downtime, failover).
type Misfire string

const (
	// MisfireSkip drops missed occurrences.
	MisfireSkip Misfire = "skip"
	// MisfireOnce fires one occurrence now, planned at the latest missed one.
	MisfireOnce Misfire = "once"
	// MisfireAll fires every missed occurrence within Catchup, oldest first.
	MisfireAll Misfire = "all"
)

// Defaults of the schedule options.
const (
	DefaultMisfire    = MisfireOnce
	DefaultCatchup    = time.Hour
	MaxCatchupRuns    = 10000
	MinEvery          = time.Millisecond
	DefaultSubjectFmt = "natsched.fire.%s" // subject for typed messages without WithSubject
)

// Schedule is a message to deliver at one or more instants. Exactly one of
// At, In, Every and Cron says when. The fields below State are maintained by
// the scheduler and ignored by Put, except Revision, which makes Put a
// compare-and-set when non-zero.
//
// Its JSON form is the wire contract: see MarshalJSON and ParseSchedule.
type Schedule struct {
	ID      string // dotted tokens of [A-Za-z0-9_-], 1-255 characters
	Subject string // target subject, no wildcards
	// Type is the registered name of the payload's Go type, sent as the
	// Natsched-Type header. Set by the typed helpers (ScheduleIn, ...).
	Type string

	At    time.Time     // one-shot at an instant
	In    time.Duration // one-shot after a delay from acceptance; stored as At
	Every time.Duration // fixed interval, >= 1ms
	Cron  string        // 5, 6 (seconds first) or 7 fields, or a macro
	TZ    string        // IANA zone for Cron; default UTC

	Start   time.Time // no occurrence before Start; anchors Every
	End     time.Time // no occurrence after End
	MaxRuns int64     // 0: unlimited
	Misfire Misfire   // default MisfireOnce
	Catchup time.Duration
	Jitter  time.Duration
	Paused  bool

	Header nats.Header // carried to every fired message
	Data   []byte      // the payload

	// State.
	Status  Status
	NextRun time.Time // planned time of the next occurrence (zero when none)
	// LastRun is the planned time (jitter excluded) of the latest
	// occurrence fired so far: the nominal time it stands for, not when
	// it was published, so a once-misfired occurrence fired late shows
	// the latest missed time, and a trigger its acceptance time. Zero
	// until the first fire; a Put that replaces the schedule resets it.
	LastRun   time.Time
	Runs      int64 // occurrences fired, triggers included
	Created   time.Time
	Updated   time.Time
	Revision  uint64
	LastError string
	// Generation changes whenever the definition changes, so that the
	// occurrences of a replaced schedule never share an ID with its
	// predecessor's.
	Generation uint64
	// Anchor is the instant an Every cadence counts from: Start, or
	// acceptance + Every.
	Anchor time.Time
	// Triggers are accepted triggers that have not fired yet.
	Triggers []time.Time
	// TraceParent and TraceState are the W3C trace context of whoever
	// created the schedule (the traceparent and tracestate headers of the
	// put request or intake message): every fired occurrence is a new span
	// of that trace.
	TraceParent string
	TraceState  string

	// everyZero: the JSON form gave "every" as a zero duration ("0s"),
	// which Validate refuses rather than take for "not given".
	everyZero bool
}

// Recurring reports whether s fires more than once by design.
func (s *Schedule) Recurring() bool { return s.Every > 0 || s.Cron != "" }

// Clone returns a deep copy of s.
func (s *Schedule) Clone() *Schedule {
	if s == nil {
		return nil
	}
	c := *s
	if s.Header != nil {
		c.Header = make(nats.Header, len(s.Header))
		for k, v := range s.Header {
			c.Header[k] = append([]string(nil), v...)
		}
	}
	if s.Data != nil {
		c.Data = append([]byte(nil), s.Data...)
	}
	if s.Triggers != nil {
		c.Triggers = append([]time.Time(nil), s.Triggers...)
	}
	return &c
}

// ListOptions select schedules for List.
type ListOptions struct {
	// Prefix matches whole tokens: "billing" selects "billing" and
	// "billing.x", not "billingx". Empty selects all.
	Prefix string
	// Status filters by status; empty means every status.
	Status Status
	// Limit caps the page size; 0 means 100.
	Limit int
	// After is the cursor: the Next of the previous page.
	After string
}

// DefaultListLimit and MaxListLimit bound List pages.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// ListPage is one page of List, ordered by ID byte-wise. Next is empty at
// the end. Skipped counts the stored values in the page's range that could
// not be decoded (see ErrUnreadable): they are left out rather than failing
// the list.
type ListPage struct {
	Schedules []*Schedule `json:"schedules"`
	Next      string      `json:"next"`
	Skipped   int         `json:"skipped"`
}

// InstanceStatus is one scheduler instance's view, the reply of
// <prefix>.api.status.
type InstanceStatus struct {
	// Instance is the name of the instance that answered, Leader the name
	// of the one holding the lease ("" while none does).
	Instance string `json:"instance"`
	Leader   string `json:"leader"`
	IsLeader bool   `json:"is_leader"`
	// Pending: schedules that are active or paused, as this instance's
	// index (kept on every instance) counts them.
	Pending int `json:"pending"`
	// Fired, Late (fired more than the misfire threshold after their fire
	// time) and Duplicates (publishes JetStream dropped as already
	// stored) count this instance's occurrences since start.
	Fired      uint64 `json:"fired"`
	Late       uint64 `json:"late"`
	Duplicates uint64 `json:"duplicates"`
	// PublishFailures counts failed publishes, retried with backoff.
	PublishFailures uint64 `json:"publish_failures"`
	// Refused counts stored schedules this instance found due but did not
	// fire because they fail the rules Put enforces (written into the
	// bucket by other means, or stored before stricter allow rules); each
	// has last_error saying why.
	Refused uint64 `json:"refused"`
	// Fenced counts fires this instance held back, mid-batch, because its
	// lease could have lapsed (a frozen or starved process); the next
	// leader fires them.
	Fenced uint64 `json:"fenced"`
	// Version is natsched's (the module version of the build, else
	// Version), Started when this instance started (RFC 3339), and
	// ClockOffset the estimated server clock minus this host's (Go
	// duration; empty until estimated).
	Version     string `json:"version"`
	Started     string `json:"started"`
	ClockOffset string `json:"clock_offset"`
	// Partitions is the answering instance's partition count, and
	// HeldPartitions the partitions it fires (IsLeader: at least one).
	// PartitionLeaders names the holder of each partition's lease, by
	// partition ("" while free), as the leader bucket says; Leader is
	// partition 0's.
	Partitions       int      `json:"partitions"`
	HeldPartitions   []int    `json:"held_partitions"`
	PartitionLeaders []string `json:"partition_leaders"`
}

// Scheduler stores schedules and fires them. The memory and JetStream
// implementations pass the same conformance suite (package schedulertest).
//
// Every method returns a copy the caller may keep. Errors wrap ErrNotFound,
// ErrInvalid (a *FieldError), ErrConflict, ErrForbidden, ErrTooLarge or
// ErrUnavailable.
type Scheduler interface {
	// Put creates or replaces the schedule s.ID and returns it as stored.
	// With s.Revision != 0 it is a compare-and-set: ErrConflict unless the
	// stored revision is still s.Revision (ErrNotFound if it is gone).
	Put(ctx context.Context, s *Schedule) (*Schedule, error)
	// Get returns the schedule or ErrNotFound.
	Get(ctx context.Context, id string) (*Schedule, error)
	// Cancel deletes the schedule and returns it as it was.
	Cancel(ctx context.Context, id string) (*Schedule, error)
	// Pause stops a schedule firing; occurrences while paused are skipped
	// (a paused one-shot whose time passes fires on Resume).
	Pause(ctx context.Context, id string) (*Schedule, error)
	// Resume undoes Pause; the next fire is the first occurrence after it.
	Resume(ctx context.Context, id string) (*Schedule, error)
	// Trigger fires one extra occurrence now, paused or not; ErrConflict on
	// a done schedule. It returns the schedule as it stood when accepted.
	Trigger(ctx context.Context, id string) (*Schedule, error)
	// List returns one page of schedules.
	List(ctx context.Context, opts ListOptions) (*ListPage, error)
}

// Message is a fired occurrence as handlers see it.
type Message struct {
	Subject string
	Header  nats.Header
	Data    []byte
}

// Headers of fired messages (contract).
const (
	HeaderMsgID   = "Nats-Msg-Id"
	HeaderID      = "Natsched-Id"
	HeaderPlanned = "Natsched-Planned"
	HeaderRun     = "Natsched-Run"
	HeaderType    = "Natsched-Type"
	HeaderJitter  = "Natsched-Jitter"
	// On dead letters and rejected intake messages.
	HeaderError      = "Natsched-Error"
	HeaderDeliveries = "Natsched-Deliveries"
)

// ScheduleID returns the Natsched-Id header.
func (m *Message) ScheduleID() string { return m.Header.Get(HeaderID) }

// Planned returns the nominal time of the occurrence (Natsched-Planned).
func (m *Message) Planned() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, m.Header.Get(HeaderPlanned))
	return t
}

// Type returns the Natsched-Type header.
func (m *Message) Type() string { return m.Header.Get(HeaderType) }

// Dispatcher consumes fired messages; *Router is one.
type Dispatcher interface {
	Dispatch(ctx context.Context, m *Message) error
}

// DispatcherFunc adapts a function to Dispatcher.
type DispatcherFunc func(ctx context.Context, m *Message) error

// Dispatch calls f.
func (f DispatcherFunc) Dispatch(ctx context.Context, m *Message) error { return f(ctx, m) }
