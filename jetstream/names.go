package jetstream

import "strings"

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
const DefaultPrefix = "natsched"

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

// ValidPrefix reports whether p can prefix natsched's names: one token of
// [A-Za-z0-9_-], at most 32 characters, as bucket names allow.
func ValidPrefix(p string) bool {
	if p == "" || len(p) > 32 {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
