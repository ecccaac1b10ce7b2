package natsched

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// ErrDuration: a string is not a duration ParseDuration reads.
var ErrDuration = errors.New("natsched: invalid duration")

// ParseDuration reads a duration as the wire contract writes it: Go syntax
// ("90s", "1h30m", "250ms", "1.5h", "-2m") with "d" for days, a day being
// 24h exactly whatever the calendar says ("2d" is 48h, "1d12h" is 36h,
// "1.5d" too). Every duration natsched reads from outside goes through it:
// the JSON "in", "every", "catchup" and "jitter", the intake headers and
// the CLI's flags, so a client in any language writes one syntax.
//
// Durations are written back in Go syntax (time.Duration.String: "48h0m0s").
// A string without "d" parses exactly as time.ParseDuration parses it.
//
// Errors wrap ErrDuration.
func ParseDuration(s string) (time.Duration, error) {
	if !strings.Contains(s, "d") {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%w %q", ErrDuration, Truncate(s))
		}
		return d, nil
	}
	orig := s
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" {
		return 0, fmt.Errorf("%w %q", ErrDuration, Truncate(orig))
	}
	var total time.Duration
	for s != "" {
		// One term: a number (digits, an optional fraction) and its unit.
		i := 0
		for i < len(s) && (s[i] == '.' || s[i] >= '0' && s[i] <= '9') {
			i++
		}
		j := i
		for j < len(s) && s[j] != '.' && (s[j] < '0' || s[j] > '9') {
			j++
		}
		num, unit := s[:i], s[i:j]
		s = s[j:]
		if num == "" || unit == "" { // a lone "0" is a duration, not a term
			return 0, fmt.Errorf("%w %q", ErrDuration, Truncate(orig))
		}
		var d time.Duration
		if unit == "d" {
			// Days as hours times 24: time.ParseDuration reads the number
			// (fractions included) exactly as it reads hours.
			h, err := time.ParseDuration(num + "h")
			if err != nil || h > math.MaxInt64/24 {
				return 0, fmt.Errorf("%w %q", ErrDuration, Truncate(orig))
			}
			d = 24 * h
		} else {
			var err error
			if d, err = time.ParseDuration(num + unit); err != nil {
				return 0, fmt.Errorf("%w %q", ErrDuration, Truncate(orig))
			}
		}
		if total > math.MaxInt64-d {
			return 0, fmt.Errorf("%w %q: out of range", ErrDuration, Truncate(orig))
		}
		total += d
	}
	if neg {
		total = -total
	}
	return total, nil
}

// ParseFieldDuration reads the duration v of field with ParseDuration and
// refuses negative ones, with the *FieldError every reader of durations
// (JSON, intake headers, CLI flags) words the same way.
func ParseFieldDuration(field, v string) (time.Duration, error) {
	d, err := ParseDuration(v)
	if err != nil {
		return 0, Invalid(field, "bad duration %q (use Go syntax such as \"90s\" or \"1h30m\", and \"d\" for days: \"2d\")", Truncate(v))
	}
	if d < 0 {
		return 0, Invalid(field, "must not be negative, got %s", Truncate(v))
	}
	return d, nil
}
