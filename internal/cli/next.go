package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/natsched/natsched"
)

var nextCommand = &command{
	name:    "next",
	summary: "print the next fire times of a cron expression (local, no server)",
	usage: `Usage: natsched next EXPR [--tz ZONE] [-n COUNT] [--from T]

Prints the next COUNT (default 5) fire times of the cron expression EXPR
strictly after T (RFC 3339, default now), one RFC 3339 UTC time a line,
read in ZONE (IANA, default UTC) as the scheduler reads it, daylight saving
included. When fewer than COUNT exist, prints those. Nothing is sent.

EXPR: 5 fields (minute hour day-of-month month day-of-week), 6 fields
(seconds first), 7 fields (seconds ... year), or @yearly @annually
@monthly @weekly @daily @midnight @hourly. Quote it.

  -n, --count N   how many times to print (default 5)
  --tz ZONE       time zone, e.g. Europe/Berlin
  --from T        start after T, e.g. 2026-03-27T00:00:00Z
`,
	run: runNext,
}

func runNext(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("next")
	var count int
	fs.IntVar(&count, "count", 5, "")
	fs.IntVar(&count, "n", 5, "")
	tz := fs.String("tz", "", "")
	from := fs.String("from", "", "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, "EXPR"); err != nil {
		return err
	}
	if count < 1 {
		return usagef("--count must be at least 1, got %d", count)
	}
	after := time.Now()
	if *from != "" {
		if after, err = parseTime("from", *from); err != nil {
			return err
		}
	}
	c, err := natsched.ParseCron(pos[0], *tz)
	if err != nil {
		var fe *natsched.FieldError
		if errors.As(err, &fe) {
			return usagef("%s", fe.Error())
		}
		return usagef("%v", err)
	}
	for t, i := after, 0; i < count; i++ {
		if t = c.Next(t); t.IsZero() {
			break
		}
		if _, err := fmt.Fprintln(e.stdout, natsched.FormatTime(t)); err != nil {
			return err
		}
	}
	return nil
}
