package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/natsched/natsched"
)

// putRequest is the schedule JSON of a put, in the contract's field order.
// A get reply decodes into it too (state fields dropped), which is how edit
// puts a schedule back.
type putRequest struct {
	ID       string              `json:"id"`
	Subject  string              `json:"subject"`
	Type     string              `json:"type,omitempty"`
	Cron     string              `json:"cron,omitempty"`
	TZ       string              `json:"tz,omitempty"`
	At       string              `json:"at,omitempty"`
	In       string              `json:"in,omitempty"`
	Every    string              `json:"every,omitempty"`
	Start    string              `json:"start,omitempty"`
	End      string              `json:"end,omitempty"`
	MaxRuns  int64               `json:"max_runs,omitempty"`
	Misfire  string              `json:"misfire,omitempty"`
	Catchup  string              `json:"catchup,omitempty"`
	Jitter   string              `json:"jitter,omitempty"`
	Paused   bool                `json:"paused,omitempty"`
	Header   map[string][]string `json:"header,omitempty"`
	Data     string              `json:"data"`
	Revision uint64              `json:"revision,omitempty"`
}

// scheduleFlags are the flags of add and edit that describe a schedule.
type scheduleFlags struct {
	subject, in, at, every, cron, tz string
	data, dataFile                   string
	headers                          stringList
	start, end                       string
	maxRuns                          int64
	misfire, catchup, jitter         string
	paused, json                     bool
	revision                         uint64
}

func registerSchedule(fs *pflag.FlagSet, f *scheduleFlags) {
	fs.StringVar(&f.in, "in", "", "once, `D` after the service accepts it (Go duration: 90s, 1h30m)")
	fs.StringVar(&f.at, "at", "", "once, at `T` (RFC 3339: 2026-11-27T21:00:00Z)")
	fs.StringVar(&f.every, "every", "", "every `D` (at least 1ms); first fire one D after acceptance or on the grid of --start")
	fs.StringVar(&f.cron, "cron", "", "cron `EXPR`: 5 fields, 6 (seconds first), 7 (with year) or @daily etc.")
	fs.StringVar(&f.subject, "subject", "", "target `SUBJECT` (some JetStream stream must capture it)")
	fs.StringVar(&f.tz, "tz", "", "IANA `ZONE` for --cron (default UTC)")
	fs.StringVar(&f.data, "data", "", "payload `STR`")
	fs.StringVar(&f.dataFile, "data-file", "", "payload from `FILE` ('-' reads stdin)")
	fs.Var(&f.headers, "header", "`K:V` header of the fired message (repeatable)")
	fs.StringVar(&f.start, "start", "", "start `T` of a recurring schedule's window (RFC 3339)")
	fs.StringVar(&f.end, "end", "", "end `T` of a recurring schedule's window (RFC 3339)")
	fs.Int64Var(&f.maxRuns, "max-runs", 0, "stop after `N` occurrences")
	fs.StringVar(&f.misfire, "misfire", "", "`M`: skip, once (default) or all: occurrences missed while no scheduler ran")
	fs.StringVar(&f.catchup, "catchup", "", "how far back misfire=all goes, `D` (default 1h)")
	fs.StringVar(&f.jitter, "jitter", "", "random delay in [0, `D`] per occurrence")
	fs.BoolVar(&f.paused, "paused", false, "paused (edit: --paused=false resumes it)")
	fs.BoolVar(&f.json, "json", false, "print the stored schedule as the wire JSON")
}

func addCommand(e *env) *cobra.Command {
	var (
		f   scheduleFlags
		req *putRequest
	)
	return clientCommand(e, "add ID --subject S (--in D | --at T | --every D | --cron EXPR) [flags]", "create or replace a schedule",
		`Creates the schedule ID, or replaces it, and prints it as stored. Give
exactly one of --in, --at, --every and --cron. With --revision N the put is
a compare-and-set: it succeeds only while the stored schedule is at
revision N (409 otherwise).`,
		exactArgs("ID"),
		func(cmd *cobra.Command) {
			registerSchedule(cmd.Flags(), &f)
			cmd.Flags().Uint64Var(&f.revision, "revision", 0, "compare-and-set: replace only if the schedule is at revision `N`")
			cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
				set := setFlags(cmd.Flags())
				if set["revision"] && f.revision == 0 {
					return usagef("--revision must be at least 1 (revisions start at 1)")
				}
				var err error
				req, err = buildPut(&putRequest{ID: args[0], Revision: f.revision}, &f, set, e.stdin, time.Now(), true)
				return err
			}
		},
		func(ctx context.Context, c *conn, _ []string) error {
			body, err := json.Marshal(req)
			if err != nil {
				return err
			}
			reply, err := c.scheduler().put(ctx, req.ID, body)
			if err != nil {
				return conflictError(err, req.ID, req.Revision)
			}
			return printSchedule(e.stdout, reply, f.json, "")
		})
}

func editCommand(e *env) *cobra.Command {
	var (
		f   scheduleFlags
		set map[string]bool
	)
	return clientCommand(e, "edit ID [flags]", "change some fields of a schedule",
		`Gets the schedule ID, changes the fields the flags give (one of --in,
--at, --every, --cron replaces how it recurs), and puts it back as a
compare-and-set on the revision it read. If the schedule changed in
between (another writer, or a fire that updated its state) the put is
refused with 409 and nothing changes: run edit again.`,
		idArg,
		func(cmd *cobra.Command) {
			registerSchedule(cmd.Flags(), &f)
			cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
				set = setFlags(cmd.Flags())
				delete(set, "json")
				for k := range set {
					if cmd.Flags().Lookup(k) != nil && !isConnection(cmd.Flags().Lookup(k)) {
						return nil
					}
				}
				return usagef("nothing to change: give the flags to change (see 'natsched edit -h')")
			}
		},
		func(ctx context.Context, c *conn, args []string) error {
			id := args[0]
			sch := c.scheduler()
			current, err := sch.get(ctx, id)
			if err != nil {
				return err
			}
			var base putRequest
			if err := json.Unmarshal(current, &base); err != nil {
				return fmt.Errorf("unreadable reply: %v", err)
			}
			if base.Revision == 0 {
				return fmt.Errorf("the reply for %s carries no revision to compare with", id)
			}
			req, err := buildPut(&base, &f, set, e.stdin, time.Now(), false)
			if err != nil {
				return err
			}
			body, err := json.Marshal(req)
			if err != nil {
				return err
			}
			reply, err := sch.put(ctx, id, body)
			if err != nil {
				return conflictError(err, id, req.Revision)
			}
			return printSchedule(e.stdout, reply, f.json, "")
		})
}

// conflictError says plainly what a 409 on a compare-and-set means.
func conflictError(err error, id string, revision uint64) error {
	var ae *apiError
	if revision == 0 || !errors.As(err, &ae) || ae.Code != 409 {
		return err
	}
	return &apiError{Code: 409, Message: fmt.Sprintf(
		"%s is no longer at revision %d (changed by another writer or by a fire); nothing was changed: %s",
		id, revision, ae.Message)}
}

// buildPut applies the flags to base and checks locally everything the
// service would refuse that is cheap to check here (a *usageError). add
// starts from an empty base and needs a subject and one of the ways to
// recur (requireWhen); edit starts from the stored schedule.
func buildPut(base *putRequest, f *scheduleFlags, set map[string]bool, stdin io.Reader, now time.Time, requireWhen bool) (*putRequest, error) {
	var kinds []string
	for _, k := range []string{"in", "at", "every", "cron"} {
		if set[k] {
			kinds = append(kinds, "--"+k)
		}
	}
	switch {
	case len(kinds) == 0 && requireWhen:
		return nil, usagef("give one of --in, --at, --every or --cron")
	case len(kinds) > 1:
		return nil, usagef("give only one of %s", strings.Join(kinds, ", "))
	}
	if requireWhen && !set["subject"] {
		return nil, usagef("--subject is required")
	}
	if set["tz"] && !set["cron"] && base.Cron == "" {
		return nil, usagef("--tz applies to --cron only")
	}
	if set["data"] && set["data-file"] {
		return nil, usagef("give --data or --data-file, not both")
	}
	req := *base
	if len(kinds) == 1 {
		// A new way to recur replaces the old one, zone included.
		req.In, req.At, req.Every, req.Cron = "", "", "", ""
		if !set["tz"] {
			req.TZ = ""
		}
	}
	if set["paused"] {
		req.Paused = f.paused
	}
	if set["max-runs"] {
		req.MaxRuns = f.maxRuns
	}
	// Durations and times are checked here and sent in canonical form;
	// the service checks the rest (and so does Validate below).
	verbatim := func(_, v string) (string, error) { return v, nil }
	duration := func(flag, v string) (string, error) {
		d, err := parseDuration(flag, v)
		if err == nil && flag == "every" && d < natsched.MinEvery {
			return "", usagef("--every must be at least %s, got %s", natsched.MinEvery, v)
		}
		return d.String(), err
	}
	instant := func(flag, v string) (string, error) {
		t, err := parseTime(flag, v)
		return natsched.FormatTime(t), err
	}
	values := []struct {
		flag, v string
		dst     *string
		parse   func(flag, v string) (string, error)
	}{
		{"subject", f.subject, &req.Subject, verbatim}, {"cron", f.cron, &req.Cron, verbatim},
		{"tz", f.tz, &req.TZ, verbatim}, {"misfire", f.misfire, &req.Misfire, verbatim},
		{"in", f.in, &req.In, duration}, {"every", f.every, &req.Every, duration},
		{"catchup", f.catchup, &req.Catchup, duration}, {"jitter", f.jitter, &req.Jitter, duration},
		{"at", f.at, &req.At, instant}, {"start", f.start, &req.Start, instant}, {"end", f.end, &req.End, instant},
	}
	for _, x := range values {
		if !set[x.flag] {
			continue
		}
		v, err := x.parse(x.flag, x.v)
		if err != nil {
			return nil, err
		}
		*x.dst = v
	}
	if set["header"] {
		req.Header = nil
		for _, h := range f.headers {
			k, v, ok := strings.Cut(h, ":")
			k = strings.TrimSpace(k)
			if !ok || k == "" {
				return nil, usagef("--header %q: want NAME:VALUE", h)
			}
			if req.Header == nil {
				req.Header = map[string][]string{}
			}
			req.Header[k] = append(req.Header[k], strings.TrimSpace(v))
		}
	}
	switch {
	case set["data-file"]:
		b, err := readData(f.dataFile, stdin)
		if err != nil {
			return nil, err
		}
		req.Data = base64.StdEncoding.EncodeToString(b)
	case set["data"]:
		req.Data = base64.StdEncoding.EncodeToString([]byte(f.data))
	}
	// natsched's own validation, on the very JSON that will be sent.
	body, err := json.Marshal(&req)
	if err != nil {
		return nil, err
	}
	s, err := natsched.ParseSchedule(body, now)
	if err == nil {
		err = s.Validate()
	}
	if err != nil {
		var fe *natsched.FieldError
		if errors.As(err, &fe) {
			return nil, usagef("%s", fe.Error())
		}
		return nil, usagef("%v", err)
	}
	return &req, nil
}

func readData(name string, stdin io.Reader) ([]byte, error) {
	var (
		b   []byte
		err error
	)
	if name == "-" {
		b, err = io.ReadAll(stdin)
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, usagef("--data-file: %v", err)
	}
	return b, nil
}

func parseDuration(field, v string) (time.Duration, error) {
	d, err := natsched.ParseDuration(v)
	if err != nil {
		return 0, usagef("--%s %q: not a duration (use Go syntax such as 90s or 1h30m, and d for days: 2d)", field, v)
	}
	if d < 0 {
		return 0, usagef("--%s must not be negative, got %s", field, v)
	}
	return d, nil
}

func parseTime(field, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, usagef("--%s %q: not an RFC 3339 time such as 2026-11-27T21:00:00Z", field, v)
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return time.Time{}, usagef("--%s %q is out of range", field, v)
	}
	return t.UTC(), nil
}
