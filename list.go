package natsched

import "strings"

// MatchPrefix reports whether id lies in the namespace prefix, matching
// whole tokens: "billing" matches "billing" and "billing.x", not "billingx".
// The empty prefix matches everything.
func MatchPrefix(id, prefix string) bool {
	return prefix == "" || id == prefix || (strings.HasPrefix(id, prefix) && id[len(prefix)] == '.')
}

// CheckList validates list options and returns the page size to use.
func CheckList(o *ListOptions) (int, error) {
	if o.Prefix != "" && !ValidID(o.Prefix) {
		return 0, Invalid("prefix", "%q is not a valid ID prefix", Truncate(o.Prefix))
	}
	switch o.Status {
	case "", StatusActive, StatusPaused, StatusDone:
	default:
		return 0, Invalid("status", "must be active, paused, done or empty, got %q", Truncate(string(o.Status)))
	}
	if o.Limit < 0 {
		return 0, Invalid("limit", "must not be negative")
	}
	if o.After != "" && !ValidID(o.After) {
		return 0, Invalid("after", "%q is not a cursor from a previous page", Truncate(o.After))
	}
	switch {
	case o.Limit == 0:
		return DefaultListLimit, nil
	case o.Limit > MaxListLimit:
		return MaxListLimit, nil
	}
	return o.Limit, nil
}
