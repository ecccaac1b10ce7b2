package jetstream

import (
	"fmt"
	"strings"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/internal/subject"
)

// AllowRule lets schedules whose ID matches IDPattern target subjects that
// match SubjectPattern (NATS wildcards on both sides). When any rule is
// given, a schedule that no rule allows is refused with ErrForbidden (403),
// so that the scheduler, which publishes with its own credentials, cannot
// be used to reach subjects a tenant could not publish to itself.
type AllowRule struct {
	IDPattern      string
	SubjectPattern string
}

// ParseAllow reads "ID_PATTERN=SUBJECT_PATTERN", e.g. "tenant-a.>=a.>".
func ParseAllow(s string) (AllowRule, error) {
	id, subj, ok := strings.Cut(s, "=")
	r := AllowRule{IDPattern: strings.TrimSpace(id), SubjectPattern: strings.TrimSpace(subj)}
	if !ok || !validPattern(r.IDPattern) || !validPattern(r.SubjectPattern) {
		return AllowRule{}, fmt.Errorf("%w: allow rule %q: want ID_PATTERN=SUBJECT_PATTERN with NATS wildcards, e.g. \"tenant-a.>=a.>\"", natsched.ErrInvalid, s)
	}
	return r, nil
}

// String renders the rule as ParseAllow reads it.
func (r AllowRule) String() string { return r.IDPattern + "=" + r.SubjectPattern }

// WithAllow restricts targets by ID (see AllowRule); may be repeated.
func WithAllow(rules ...AllowRule) Option {
	return func(o *options) error {
		for _, r := range rules {
			if !validPattern(r.IDPattern) || !validPattern(r.SubjectPattern) {
				return invalidOption("allow rule %q is not ID_PATTERN=SUBJECT_PATTERN", r.String())
			}
		}
		o.allow = append(o.allow, rules...)
		return nil
	}
}

// allowed reports whether the rules let schedule id publish to target.
func allowed(rules []AllowRule, id, target string) bool {
	if len(rules) == 0 {
		return true
	}
	for _, r := range rules {
		if subject.Match(r.IDPattern, id) && subject.Match(r.SubjectPattern, target) {
			return true
		}
	}
	return false
}

func validPattern(p string) bool { return subject.Valid(p, true) }
