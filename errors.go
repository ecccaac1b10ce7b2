package natsched

import (
	"errors"
	"fmt"
)

// Sentinel errors returned by every Scheduler. Implementations wrap them with
// %w, so test with errors.Is.
var (
	// ErrNotFound: no schedule has that ID (404 on the wire).
	ErrNotFound = errors.New("natsched: schedule not found")
	// ErrInvalid: the request is malformed; the error is a *FieldError that
	// names the field (400 on the wire).
	ErrInvalid = errors.New("natsched: invalid schedule")
	// ErrConflict: a compare-and-set Put lost against a newer revision, or the
	// operation does not apply to the schedule's state, such as a Trigger on a
	// done schedule (409 on the wire).
	ErrConflict = errors.New("natsched: conflict")
	// ErrForbidden: the target subject is not allowed for this ID (403).
	ErrForbidden = errors.New("natsched: target not allowed")
	// ErrTooLarge: the stored schedule or the fired message would exceed the
	// server's max payload (413).
	ErrTooLarge = errors.New("natsched: payload too large")
	// ErrUnreadable: a value stored in the bucket cannot be decoded as a
	// schedule (422 on the wire). List skips such values and counts them in
	// ListPage.Skipped; Cancel deletes them.
	ErrUnreadable = errors.New("natsched: stored value unreadable")
	// ErrUnavailable: the scheduler is not ready or is closed (503).
	ErrUnavailable = errors.New("natsched: not ready")
	// ErrClosed: the scheduler has been closed.
	ErrClosed = fmt.Errorf("%w: closed", ErrUnavailable)
)

// FieldError is a validation failure about one field of a request. Its
// message reads "field: reason", the form the wire API replies with.
type FieldError struct {
	Field  string // JSON field name ("cron", "header", "id", ...)
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Is makes errors.Is(err, ErrInvalid) true for every FieldError.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// Invalid returns a *FieldError for field with a formatted reason.
func Invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
