package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/natsched/natsched"
)

func nextCommand(e *env) *cobra.Command {
	var (
		count    int
		tz, from string
	)
	cmd := &cobra.Command{
		Use:   "next EXPR [--tz ZONE] [-n COUNT] [--from T]",
		Short: "print the next fire times of a cron expression (local, no server)",
		Long: `Prints the next COUNT (default 5) fire times of the cron expression EXPR
strictly after T (RFC 3339, default now), one RFC 3339 UTC time a line,
read in ZONE (IANA, default UTC) as the scheduler reads it, daylight saving
included. When fewer than COUNT exist, prints those. Nothing is sent.

EXPR: 5 fields (minute hour day-of-month month day-of-week), 6 fields
(seconds first), 7 fields (seconds ... year), or @yearly @annually
@monthly @weekly @daily @midnight @hourly. Quote it.`,
		Args: exactArgs("EXPR"),
		RunE: func(_ *cobra.Command, args []string) error {
			return runNext(e, args[0], count, tz, from)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.IntVarP(&count, "count", "n", 5, "how many times to print")
	fs.StringVar(&tz, "tz", "", "time `ZONE`, e.g. Europe/Berlin")
	fs.StringVar(&from, "from", "", "start after `T`, e.g. 2026-03-27T00:00:00Z (default now)")
	return cmd
}

func runNext(e *env, expr string, count int, tz, from string) error {
	if count < 1 {
		return usagef("--count must be at least 1, got %d", count)
	}
	after := time.Now()
	if from != "" {
		var err error
		if after, err = parseTime("from", from); err != nil {
			return err
		}
	}
	c, err := natsched.ParseCron(expr, tz)
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
