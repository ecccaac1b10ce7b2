package jetstream

import (
	"strings"

	"github.com/natsched/natsched"
)

// Names of the buckets, streams and subjects natsched uses, derived from a
// prefix ("natsched" by default). They are part of the wire contract.
type Names struct {
	Prefix string
	// KV buckets.
	SchedulesBucket string // <prefix>_schedules: key = schedule ID, value = schedule JSON
	LeaderBucket    string // <prefix>_leader: key "leader" = {"id": ..., "term": ...}
	// Streams.
	FireStream   string // <PREFIX>_FIRE on <prefix>.fire.>
	DeadStream   string // <PREFIX>_DEAD on <prefix>.dead.> and <prefix>.rejected.>
	IntakeStream string // <PREFIX>_INTAKE on <prefix>.in.>
	// Subjects.
	FireSubjects   string // <prefix>.fire.>
	DeadPrefix     string // <prefix>.dead
	RejectedPrefix string // <prefix>.rejected
	IntakePrefix   string // <prefix>.in
	APIPrefix      string // <prefix>.api
}

// LeaderKey is the key of the lease in the leader bucket.
const LeaderKey = "leader"

// DefaultPrefix is the prefix of every name unless WithPrefix says
// otherwise.
const DefaultPrefix = natsched.DefaultPrefix

// NamesFor derives the names for prefix.
func NamesFor(prefix string) Names {
	up := strings.ToUpper(prefix)
	return Names{
		Prefix:          prefix,
		SchedulesBucket: prefix + "_schedules",
		LeaderBucket:    prefix + "_leader",
		FireStream:      up + "_FIRE",
		DeadStream:      up + "_DEAD",
		IntakeStream:    up + "_INTAKE",
		FireSubjects:    prefix + ".fire.>",
		DeadPrefix:      prefix + ".dead",
		RejectedPrefix:  prefix + ".rejected",
		IntakePrefix:    prefix + ".in",
		APIPrefix:       prefix + ".api",
	}
}

// ValidPrefix reports whether p can prefix natsched's names (see
// natsched.ValidPrefix).
func ValidPrefix(p string) bool { return natsched.ValidPrefix(p) }

// ReservedTarget reports why subject may not be a schedule's target, or ""
// if it may. NATS's own subjects ($JS., $KV., $O., $SYS., $SRV., ...:
// everything starting with $), request inboxes (_INBOX.) and the
// scheduler's own API, intake, dead-letter and rejected subjects are
// reserved whatever the allow rules say: the scheduler publishes with its
// own credentials, and a fire into its bucket, its lease or its intake
// would let one namespace rewrite another's schedules or act as the
// scheduler. <prefix>.fire.> is the default home of targets.
func (n Names) ReservedTarget(subject string) string {
	switch {
	case strings.HasPrefix(subject, "$"):
		return "subjects starting with $ belong to NATS and JetStream"
	case strings.HasPrefix(subject, "_INBOX."):
		return "_INBOX. subjects are request inboxes"
	}
	for _, p := range []string{n.APIPrefix, n.IntakePrefix, n.DeadPrefix, n.RejectedPrefix} {
		if strings.HasPrefix(subject, p+".") {
			return p + ".> belongs to the scheduler itself"
		}
	}
	return ""
}

// SchedulesStream is the stream behind the schedules bucket.
func (n Names) SchedulesStream() string { return "KV_" + n.SchedulesBucket }

// kvSubject is the subject the schedules bucket stores key id under (what
// KeyValue.Update publishes to).
func (n Names) kvSubject(id string) string { return "$KV." + n.SchedulesBucket + "." + id }
