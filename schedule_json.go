package natsched

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsched/natsched/internal/subject"
)

// wireSchedule is the contract's JSON shape, in the contract's field order.
type wireSchedule struct {
	ID         string      `json:"id"`
	Subject    string      `json:"subject"`
	Type       string      `json:"type,omitempty"`
	Cron       string      `json:"cron,omitempty"`
	TZ         string      `json:"tz,omitempty"`
	At         string      `json:"at,omitempty"`
	In         string      `json:"in,omitempty"`
	Every      string      `json:"every,omitempty"`
	Start      string      `json:"start,omitempty"`
	End        string      `json:"end,omitempty"`
	MaxRuns    int64       `json:"max_runs,omitempty"`
	Misfire    Misfire     `json:"misfire,omitempty"`
	Catchup    string      `json:"catchup,omitempty"`
	Jitter     string      `json:"jitter,omitempty"`
	Paused     bool        `json:"paused"`
	Header     nats.Header `json:"header,omitempty"`
	Data       string      `json:"data"`
	Status     Status      `json:"status,omitempty"`
	NextRun    string      `json:"next_run,omitempty"`
	LastRun    string      `json:"last_run,omitempty"`
	Runs       int64       `json:"runs"`
	Created    string      `json:"created,omitempty"`
	Updated    string      `json:"updated,omitempty"`
	Revision   uint64      `json:"revision"`
	LastError  string      `json:"last_error"`
	Generation uint64      `json:"generation,omitempty"`
	Anchor     string      `json:"anchor,omitempty"`
	Triggers   []string    `json:"triggers,omitempty"`
	// W3C trace context of the schedule's creator (state: set from the
	// put request's or intake message's headers, ignored in a body).
	TraceParent string `json:"traceparent,omitempty"`
	TraceState  string `json:"tracestate,omitempty"`
}

// FormatTime renders t as the contract does: RFC 3339 with nanoseconds, UTC;
// the zero time renders empty.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func formatDuration(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// MarshalJSON renders the contract's JSON: times in RFC 3339 nano UTC,
// durations in Go syntax, the payload as standard base64 in "data".
func (s Schedule) MarshalJSON() ([]byte, error) {
	w := wireSchedule{
		ID: s.ID, Subject: s.Subject, Type: s.Type, Cron: s.Cron, TZ: s.TZ,
		At: FormatTime(s.At), In: formatDuration(s.In), Every: formatDuration(s.Every),
		Start: FormatTime(s.Start), End: FormatTime(s.End), MaxRuns: s.MaxRuns,
		Misfire: s.Misfire, Catchup: formatDuration(s.Catchup), Jitter: formatDuration(s.Jitter),
		Paused: s.Paused, Header: s.Header, Data: base64.StdEncoding.EncodeToString(s.Data),
		Status: s.Status, NextRun: FormatTime(s.NextRun), LastRun: FormatTime(s.LastRun),
		Runs: s.Runs, Created: FormatTime(s.Created), Updated: FormatTime(s.Updated),
		Revision: s.Revision, LastError: s.LastError, Generation: s.Generation,
		Anchor: FormatTime(s.Anchor), TraceParent: s.TraceParent, TraceState: s.TraceState,
	}
	if s.everyZero {
		// A zero interval that was given stays given, so that the JSON
		// says what Validate refuses ("every: ... got 0s"), not "at".
		w.Every = "0s"
	}
	for _, t := range s.Triggers {
		w.Triggers = append(w.Triggers, FormatTime(t))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&w); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// UnmarshalJSON reads the JSON form, state fields included. It is lenient
// about unknown fields (stored values may come from a newer version); use
// ParseSchedule for requests. Stored values are read on every fire and
// every watch event, so this decodes in one pass into the wire struct and
// only falls back to the field-by-field decoder to word an error.
func (s *Schedule) UnmarshalJSON(b []byte) error {
	var w wireSchedule
	if err := json.Unmarshal(b, &w); err == nil {
		if out, ok := w.schedule(); ok {
			*s = out
			return nil
		}
	}
	d, err := decodeSchedule(b, true, time.Time{})
	if err != nil {
		return err
	}
	*s = *d
	return nil
}

// schedule converts the wire form; false if a time, duration or payload
// does not parse.
func (w *wireSchedule) schedule() (Schedule, bool) {
	ok := true
	t := func(v string) time.Time {
		if v == "" {
			return time.Time{}
		}
		tt, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			ok = false
		}
		return tt.UTC()
	}
	d := func(v string) time.Duration {
		if v == "" {
			return 0
		}
		dd, err := ParseDuration(v)
		if err != nil || dd < 0 {
			ok = false
		}
		return dd
	}
	s := Schedule{
		ID: w.ID, Subject: w.Subject, Type: w.Type, Cron: w.Cron, TZ: w.TZ,
		At: t(w.At), In: d(w.In), Every: d(w.Every), Start: t(w.Start), End: t(w.End),
		MaxRuns: w.MaxRuns, Misfire: w.Misfire, Catchup: d(w.Catchup), Jitter: d(w.Jitter),
		Paused: w.Paused, Header: w.Header, Status: w.Status, NextRun: t(w.NextRun),
		LastRun: t(w.LastRun), Runs: w.Runs, Created: t(w.Created), Updated: t(w.Updated),
		Revision: w.Revision, LastError: w.LastError, Generation: w.Generation, Anchor: t(w.Anchor),
		TraceParent: w.TraceParent, TraceState: w.TraceState,
	}
	if w.Data != "" {
		data, err := base64.StdEncoding.DecodeString(w.Data)
		if err != nil {
			return Schedule{}, false
		}
		s.Data = data
	}
	for _, tr := range w.Triggers {
		s.Triggers = append(s.Triggers, t(tr))
	}
	if w.MaxRuns < 0 || w.Runs < 0 {
		ok = false
	}
	s.everyZero = w.Every != "" && s.Every == 0
	return s, ok
}

// ParseSchedule reads a request body strictly, as the wire API does: unknown
// fields, wrong types, bad times and durations are *FieldError naming the
// field. State fields are accepted and ignored, except "revision", which
// makes the request a compare-and-set. "text" gives a UTF-8 payload instead
// of base64 "data". "in" is resolved against accepted into At. The result
// is not yet validated: see Validate.
func ParseSchedule(body []byte, accepted time.Time) (*Schedule, error) {
	return decodeSchedule(body, false, accepted)
}

var requestFields = map[string]bool{
	"id": true, "subject": true, "type": true, "cron": true, "tz": true, "at": true, "in": true,
	"every": true, "start": true, "end": true, "max_runs": true, "misfire": true, "catchup": true,
	"jitter": true, "paused": true, "header": true, "data": true, "text": true, "revision": true,
}

var stateFields = map[string]bool{
	"status": true, "next_run": true, "last_run": true, "runs": true, "created": true,
	"updated": true, "last_error": true, "generation": true, "anchor": true, "triggers": true,
	"traceparent": true, "tracestate": true,
}

func decodeSchedule(body []byte, state bool, accepted time.Time) (*Schedule, error) {
	s := &Schedule{}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || raw == nil {
		if len(bytes.TrimSpace(body)) == 0 {
			return nil, Invalid("body", "empty request, expected a JSON object")
		}
		return nil, Invalid("body", "expected a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, Invalid("body", "trailing data after the JSON object")
	}
	// Report problems in a stable order so that a client sees the same
	// message for the same body.
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var haveText, haveData bool
	for _, k := range keys {
		v := raw[k]
		if !requestFields[k] && !stateFields[k] {
			if state {
				continue
			}
			if k == "" {
				return nil, Invalid("body", "a field has an empty name")
			}
			return nil, Invalid(Truncate(k), "unknown field")
		}
		if string(v) == "null" {
			continue
		}
		if stateFields[k] && !state {
			continue
		}
		var err error
		switch k {
		case "id":
			err = str(k, v, &s.ID)
		case "subject":
			err = str(k, v, &s.Subject)
		case "type":
			err = str(k, v, &s.Type)
		case "cron":
			err = str(k, v, &s.Cron)
		case "tz":
			err = str(k, v, &s.TZ)
		case "at":
			err = tim(k, v, &s.At)
		case "in":
			var in time.Duration
			if err = dur(k, v, &in); err == nil {
				if state || accepted.IsZero() {
					s.In = in
				} else {
					s.At = accepted.Add(in)
					if raw["at"] != nil && string(raw["at"]) != "null" {
						err = Invalid("in", "give at or in, not both")
					}
				}
			}
		case "every":
			err = dur(k, v, &s.Every)
			s.everyZero = err == nil && s.Every == 0
		case "start":
			err = tim(k, v, &s.Start)
		case "end":
			err = tim(k, v, &s.End)
		case "max_runs":
			err = integer(k, v, &s.MaxRuns)
		case "misfire":
			var m string
			err = str(k, v, &m)
			s.Misfire = Misfire(m)
		case "catchup":
			err = dur(k, v, &s.Catchup)
		case "jitter":
			err = dur(k, v, &s.Jitter)
		case "paused":
			if err = json.Unmarshal(v, &s.Paused); err != nil {
				err = Invalid(k, "expected true or false")
			}
		case "header":
			s.Header, err = header(v)
		case "data":
			var b64 string
			if err = str(k, v, &b64); err == nil {
				haveData = true
				if s.Data, err = base64.StdEncoding.DecodeString(b64); err != nil {
					err = Invalid(k, "not standard base64: %v", err)
				}
			}
		case "text":
			var t string
			if err = str(k, v, &t); err == nil {
				haveText = true
				s.Data = []byte(t)
			}
		case "revision":
			var r int64
			if err = integer(k, v, &r); err == nil {
				s.Revision = uint64(r)
			}
		case "status":
			var st string
			err = str(k, v, &st)
			s.Status = Status(st)
		case "next_run":
			err = tim(k, v, &s.NextRun)
		case "last_run":
			err = tim(k, v, &s.LastRun)
		case "runs":
			err = integer(k, v, &s.Runs)
		case "created":
			err = tim(k, v, &s.Created)
		case "updated":
			err = tim(k, v, &s.Updated)
		case "last_error":
			err = str(k, v, &s.LastError)
		case "traceparent":
			err = str(k, v, &s.TraceParent)
		case "tracestate":
			err = str(k, v, &s.TraceState)
		case "generation":
			if err = json.Unmarshal(v, &s.Generation); err != nil {
				err = Invalid(k, "expected a non-negative integer")
			}
		case "anchor":
			err = tim(k, v, &s.Anchor)
		case "triggers":
			var ts []string
			if err = json.Unmarshal(v, &ts); err != nil {
				err = Invalid(k, "expected a list of times")
			}
			for _, t := range ts {
				var tt time.Time
				if err == nil {
					if tt, err = time.Parse(time.RFC3339Nano, t); err != nil {
						err = Invalid(k, "bad time %q", t)
					}
					s.Triggers = append(s.Triggers, tt)
				}
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if haveText && haveData {
		return nil, Invalid("text", "give data or text, not both")
	}
	return s, nil
}

func str(field string, v json.RawMessage, out *string) error {
	if err := json.Unmarshal(v, out); err != nil {
		return Invalid(field, "expected a string")
	}
	return nil
}

func tim(field string, v json.RawMessage, out *time.Time) error {
	var s string
	if err := str(field, v, &s); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return Invalid(field, "expected an RFC 3339 time such as 2026-11-27T21:00:00Z, got %q", Truncate(s))
	}
	// Replies are in UTC; a time whose UTC year leaves 1-9999 could not be
	// written back.
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return Invalid(field, "%q is out of range", Truncate(s))
	}
	*out = t.UTC()
	return nil
}

func dur(field string, v json.RawMessage, out *time.Duration) error {
	var s string
	if err := str(field, v, &s); err != nil {
		return Invalid(field, "expected a duration string such as \"90s\", \"1h30m\" or \"2d\"")
	}
	d, err := ParseFieldDuration(field, s)
	if err != nil {
		return err
	}
	*out = d
	return nil
}

func integer(field string, v json.RawMessage, out *int64) error {
	if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
		return Invalid(field, "expected a non-negative integer")
	}
	var n json.Number
	if err := json.Unmarshal(v, &n); err != nil {
		return Invalid(field, "expected a non-negative integer")
	}
	i, err := n.Int64()
	if err != nil {
		return Invalid(field, "expected a non-negative integer, got %s", n)
	}
	if i < 0 {
		return Invalid(field, "must not be negative, got %d", i)
	}
	*out = i
	return nil
}

func header(v json.RawMessage) (nats.Header, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(v, &raw); err != nil {
		return nil, Invalid("header", "expected an object of header names to lists of strings")
	}
	h := make(nats.Header, len(raw))
	for k, v := range raw {
		var list []string
		if err := json.Unmarshal(v, &list); err != nil {
			var one string
			if err := json.Unmarshal(v, &one); err != nil {
				return nil, Invalid("header", "%q: expected a string or a list of strings", Truncate(k))
			}
			list = []string{one}
		}
		h[k] = list
	}
	return h, nil
}

// ValidID reports whether id is 1-255 characters of tokens of
// [A-Za-z0-9_-] joined by '.'.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 255 {
		return false
	}
	for rest := id; ; {
		tok, tail, more := strings.Cut(rest, ".")
		if !subject.ValidToken(tok) {
			return false
		}
		if !more {
			return true
		}
		rest = tail
	}
}

// DefaultPrefix is the default prefix of natsched's subjects, streams and
// buckets: natsched.api.*, natsched.in.*, NATSCHED_FIRE, ...
const DefaultPrefix = "natsched"

// ValidPrefix reports whether p can prefix natsched's names: one token of
// [A-Za-z0-9_-], at most 32 characters, as bucket names allow.
func ValidPrefix(p string) bool {
	return len(p) <= 32 && subject.ValidToken(p)
}

// MaxSubjectLen bounds target subjects.
const MaxSubjectLen = 1024

// ValidSubject reports whether s is a NATS subject to publish to: non-empty
// tokens separated by '.', no wildcards, no white space or control
// characters, at most MaxSubjectLen bytes.
func ValidSubject(s string) bool {
	return len(s) <= MaxSubjectLen && subject.Valid(s, false)
}

func validHeaderName(k string) bool {
	if k == "" || len(k) > 256 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

// Reserved reports whether a header name belongs to NATS or natsched
// (Nats-... or Natsched-..., case-insensitive).
func Reserved(name string) bool {
	n := strings.ToLower(name)
	return strings.HasPrefix(n, "nats-") || strings.HasPrefix(n, "natsched-")
}

// Validate checks a schedule's definition as Put receives it and returns a
// *FieldError naming the first bad field.
func (s *Schedule) Validate() error {
	if !ValidID(s.ID) {
		if s.ID == "" {
			return Invalid("id", "required")
		}
		return Invalid("id", "%q is not 1-255 characters of dot-separated tokens of [A-Za-z0-9_-]", Truncate(s.ID))
	}
	if s.Subject == "" {
		return Invalid("subject", "required")
	}
	if !ValidSubject(s.Subject) {
		return Invalid("subject", "%q is not a subject to publish to (no wildcards, spaces or empty tokens)", Truncate(s.Subject))
	}
	if s.Type != "" && !ValidID(s.Type) {
		return Invalid("type", "%q is not a dotted name of [A-Za-z0-9_-] tokens", Truncate(s.Type))
	}
	kinds := 0
	for _, set := range []bool{!s.At.IsZero(), s.In != 0, s.hasEvery(), s.Cron != ""} {
		if set {
			kinds++
		}
	}
	switch {
	case kinds == 0:
		return Invalid("at", "one of at, in, every or cron is required")
	case kinds > 1:
		return Invalid(firstKind(s), "give exactly one of at, in, every and cron")
	}
	if s.In < 0 {
		return Invalid("in", "must not be negative")
	}
	if s.hasEvery() {
		if err := CheckEvery(s.Every); err != nil {
			return err
		}
	}
	if _, err := LoadZone(s.TZ); err != nil {
		return err
	}
	if s.Cron != "" {
		c, err := ParseCron(s.Cron, s.TZ)
		if err != nil {
			return err
		}
		from := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
		if !s.Start.IsZero() {
			from = s.Start
		}
		if c.Next(from).IsZero() {
			return Invalid("cron", "%q has no occurrence", s.Cron)
		}
	}
	if !s.Recurring() {
		if !s.Start.IsZero() {
			return Invalid("start", "applies to recurring schedules (every, cron) only")
		}
		if !s.End.IsZero() {
			return Invalid("end", "applies to recurring schedules (every, cron) only")
		}
	}
	if !s.Start.IsZero() && !s.End.IsZero() && !s.End.After(s.Start) {
		return Invalid("end", "must be after start")
	}
	if s.MaxRuns < 0 {
		return Invalid("max_runs", "must not be negative")
	}
	switch s.Misfire {
	case "", MisfireSkip, MisfireOnce, MisfireAll:
	default:
		return Invalid("misfire", "must be skip, once or all, got %q", Truncate(string(s.Misfire)))
	}
	if s.Catchup < 0 {
		return Invalid("catchup", "must not be negative")
	}
	if s.Jitter < 0 {
		return Invalid("jitter", "must not be negative")
	}
	if err := checkJitter(s); err != nil {
		return err
	}
	for k, vs := range s.Header {
		if !validHeaderName(k) {
			return Invalid("header", "%q is not a valid header name", Truncate(k))
		}
		if Reserved(k) {
			return Invalid("header", "%q: names starting Nats- or Natsched- are reserved", Truncate(k))
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				return Invalid("header", "%q: values must not contain line breaks", Truncate(k))
			}
		}
	}
	return nil
}

// jitterSamples is how many gaps between a cron expression's occurrences
// checkJitter looks at.
const jitterSamples = 64

// checkJitter refuses a jitter that reaches the gap between occurrences:
// an occurrence is published at its planned time plus its jitter, and a
// jitter that large would make later occurrences wait for earlier ones
// (or overtake them). For cron the gap is the shortest among its first
// occurrences after start (or 2000-01-01).
func checkJitter(s *Schedule) error {
	switch {
	case s.Jitter == 0:
	case s.Every > 0:
		if s.Jitter >= s.Every {
			return Invalid("jitter", "must be less than every (%s), got %s", s.Every, s.Jitter)
		}
	case s.Cron != "":
		c, err := ParseCron(s.Cron, s.TZ)
		if err != nil {
			return nil // Validate reports the cron expression
		}
		prev := s.Start
		if prev.IsZero() {
			prev = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
		}
		prev = c.Next(prev.Add(-time.Nanosecond))
		for range jitterSamples {
			next := c.Next(prev)
			if prev.IsZero() || next.IsZero() {
				break
			}
			if gap := next.Sub(prev); s.Jitter >= gap {
				return Invalid("jitter", "must be less than the %s between occurrences of %q, got %s", gap, Truncate(s.Cron), s.Jitter)
			}
			prev = next
		}
	}
	return nil
}

// hasEvery reports whether s says every, a zero interval given in JSON
// included.
func (s *Schedule) hasEvery() bool { return s.Every != 0 || s.everyZero }

// CheckEvery returns the "every" *FieldError for an interval below
// MinEvery, or nil. Validate applies it; intake and other parsers that
// read an interval of their own use it to say the same thing.
func CheckEvery(d time.Duration) error {
	if d < MinEvery {
		return Invalid("every", "must be at least %s, got %s", MinEvery, d)
	}
	return nil
}

func firstKind(s *Schedule) string {
	switch {
	case s.Cron != "":
		return "cron"
	case s.hasEvery():
		return "every"
	case s.In != 0:
		return "in"
	}
	return "at"
}

// Truncate shortens s to about 64 bytes (on a rune boundary) for quoting
// in an error message: messages quote requests, and a hostile request can
// be as large as the server allows.
func Truncate(s string) string {
	if len(s) <= 64 {
		return s
	}
	return subject.Cut(s, 64) + "…"
}
