package cli

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/natsched/natsched"
)

// humanTime renders an instant for people: UTC, RFC 3339, milliseconds
// only when there are any; "-" for none.
func humanTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.999Z07:00")
}

// relative renders how far t is from now ("in 4m59s", "2h ago").
func relative(t, now time.Time) string {
	d := t.Sub(now)
	ago := d < 0
	if ago {
		d = -d
	}
	switch {
	case d < time.Second:
		d = d.Round(time.Millisecond)
	case d < time.Hour:
		d = d.Round(time.Second)
	default:
		d = d.Round(time.Minute)
	}
	if ago {
		return d.String() + " ago"
	}
	return "in " + d.String()
}

// when describes the shape of a schedule in time.
func when(s *natsched.Schedule) string {
	switch {
	case s.Cron != "":
		if s.TZ != "" {
			return "cron " + s.Cron + " (" + s.TZ + ")"
		}
		return "cron " + s.Cron
	case s.Every > 0:
		return "every " + s.Every.String()
	case s.In > 0:
		return "in " + s.In.String()
	case !s.At.IsZero():
		return "at " + humanTime(s.At)
	}
	return "-"
}

// formatSchedule prints one schedule as "field: value" lines, leaving out
// options that are not set.
func formatSchedule(w io.Writer, s *natsched.Schedule, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	line("id", s.ID)
	line("subject", s.Subject)
	if s.Type != "" {
		line("type", s.Type)
	}
	line("when", when(s))
	if !s.Start.IsZero() {
		line("start", humanTime(s.Start))
	}
	if !s.End.IsZero() {
		line("end", humanTime(s.End))
	}
	line("status", string(s.Status))
	next := humanTime(s.NextRun)
	if !s.NextRun.IsZero() {
		next += " (" + relative(s.NextRun, now) + ")"
	}
	line("next run", next)
	line("last run", humanTime(s.LastRun))
	runs := strconv.FormatInt(s.Runs, 10)
	if s.MaxRuns > 0 {
		runs += " of " + strconv.FormatInt(s.MaxRuns, 10)
	}
	line("runs", runs)
	if s.Misfire != "" {
		line("misfire", string(s.Misfire))
	}
	if s.Catchup > 0 {
		line("catchup", s.Catchup.String())
	}
	if s.Jitter > 0 {
		line("jitter", s.Jitter.String())
	}
	keys := make([]string, 0, len(s.Header))
	for k := range s.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range s.Header[k] {
			line("header", k+": "+v)
		}
	}
	line("data", describeData(s.Data))
	line("created", humanTime(s.Created))
	line("updated", humanTime(s.Updated))
	line("revision", strconv.FormatUint(s.Revision, 10))
	if s.LastError != "" {
		line("last error", s.LastError)
	}
	return tw.Flush()
}

// describeData shows a payload: quoted when it is short printable text,
// else its size and the start of its base64.
func describeData(b []byte) string {
	if len(b) == 0 {
		return "(empty)"
	}
	size := fmt.Sprintf("%d bytes", len(b))
	if len(b) == 1 {
		size = "1 byte"
	}
	if len(b) <= 200 && utf8.Valid(b) && printable(string(b)) {
		return strconv.Quote(string(b)) + " (" + size + ")"
	}
	enc := base64.StdEncoding.EncodeToString(b)
	if len(enc) > 60 {
		enc = enc[:60] + "…"
	}
	return size + ", base64 " + enc
}

func printable(s string) bool {
	for _, r := range s {
		if r < ' ' && r != '\t' || r == 0x7f {
			return false
		}
	}
	return true
}

// formatTable prints schedules one a line.
func formatTable(w io.Writer, scheds []*natsched.Schedule) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tNEXT RUN\tRUNS\tSUBJECT\tWHEN")
	for _, s := range scheds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n",
			s.ID, s.Status, humanTime(s.NextRun), s.Runs, s.Subject, when(s))
	}
	return tw.Flush()
}

// formatStatus prints a status reply: the contract's fields first, then any
// others the service reports, by name.
func formatStatus(w io.Writer, body []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("unreadable status reply: %v", err)
	}
	order := []string{"instance", "leader", "is_leader", "pending", "fired", "late"}
	var rest []string
	for k := range m {
		if !slices.Contains(order, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, k := range append(order, rest...) {
		v, ok := m[k]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			s = string(v)
		}
		switch k {
		case "leader":
			if s == "" {
				s = "(none)"
			}
		case "held_partitions":
			var ps []int
			if json.Unmarshal(v, &ps) == nil {
				s = partitionList(ps)
			}
		case "partition_leaders":
			var names []string
			if json.Unmarshal(v, &names) == nil {
				s = partitionLeaders(names)
			}
		}
		fmt.Fprintf(tw, "%s:\t%s\n", strings.ReplaceAll(k, "_", " "), s)
	}
	return tw.Flush()
}

// partitionList prints partitions as "0, 3", or "(none)".
func partitionList(ps []int) string {
	if len(ps) == 0 {
		return "(none)"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ", ")
}

// partitionLeaders prints each partition's holder as "0=a 1=b 2=(none)".
func partitionLeaders(names []string) string {
	s := make([]string, len(names))
	for p, n := range names {
		if n == "" {
			n = "(none)"
		}
		s[p] = strconv.Itoa(p) + "=" + n
	}
	return strings.Join(s, " ")
}

// formatStatusRows prints one row per instance's status reply.
func formatStatusRows(w io.Writer, bodies [][]byte) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tLEADING\tPARTITIONS\tPENDING\tFIRED\tLATE\tVERSION\tSTARTED\tCLOCK OFFSET")
	for _, b := range bodies {
		var st struct {
			Instance    string `json:"instance"`
			IsLeader    bool   `json:"is_leader"`
			Partitions  int    `json:"partitions"`
			Held        []int  `json:"held_partitions"`
			Pending     int    `json:"pending"`
			Fired       uint64 `json:"fired"`
			Late        uint64 `json:"late"`
			Version     string `json:"version"`
			Started     string `json:"started"`
			ClockOffset string `json:"clock_offset"`
		}
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("unreadable status reply: %v", err)
		}
		lead := ""
		if st.IsLeader {
			lead = "yes"
		}
		parts := fmt.Sprintf("%s of %d", partitionList(st.Held), max(st.Partitions, 1))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", st.Instance, lead, parts, st.Pending, st.Fired, st.Late, st.Version, st.Started, st.ClockOffset)
	}
	return tw.Flush()
}
