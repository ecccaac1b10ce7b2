package jetstream

import (
	"fmt"
	"strings"

	"github.com/natsched/natsched"
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

// allowed reports whether the rules let schedule id publish to subject.
func allowed(rules []AllowRule, id, subject string) bool {
	if len(rules) == 0 {
		return true
	}
	for _, r := range rules {
		if subjectMatches(r.IDPattern, id) && subjectMatches(r.SubjectPattern, subject) {
			return true
		}
	}
	return false
}

func validPattern(p string) bool {
	if p == "" {
		return false
	}
	toks := strings.Split(p, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return false
		case t == ">" && i != len(toks)-1:
			return false
		case strings.ContainsAny(t, " \t\r\n") || (len(t) > 1 && strings.ContainsAny(t, "*>")):
			return false
		}
	}
	return true
}

// subjectMatches reports whether every subject that subject stands for
// matches pattern, both with * (one token) and > (one or more trailing
// tokens): for a literal subject, whether it matches; for a wildcard one,
// whether pattern covers all it covers (a stream filter capturing it).
func subjectMatches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, t := range p {
		switch {
		case t == ">":
			return len(s) > i
		case i >= len(s), s[i] == ">":
			return false
		case t != "*" && t != s[i]:
			return false
		}
	}
	return len(p) == len(s)
}
