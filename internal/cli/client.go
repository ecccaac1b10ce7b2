package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	natschedjs "github.com/natsched/natsched/jetstream"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsched/natsched"
)

var osGetenv = os.Getenv

// Defaults of the connection flags.
const (
	defaultPrefix  = "natsched"
	defaultTimeout = 5 * time.Second
)

// connFlags are the flags of every command that connects to NATS.
type connFlags struct {
	urls    string
	creds   string
	tlsCert string
	tlsKey  string
	tlsCA   string
	prefix  string
	timeout time.Duration
}

// register adds --server/-s (defaulting to $NATS_URL), the security flags,
// --prefix and --timeout.
func (c *connFlags) register(fs *flag.FlagSet, e *env) {
	def := e.getenv("NATS_URL")
	if def == "" {
		def = nats.DefaultURL
	}
	fs.StringVar(&c.urls, "server", def, "NATS URL(s)")
	fs.StringVar(&c.urls, "s", def, "NATS URL(s)")
	c.registerSecurity(fs)
	fs.StringVar(&c.prefix, "prefix", defaultPrefix, "API prefix")
	fs.DurationVar(&c.timeout, "timeout", defaultTimeout, "request timeout")
}

// registerSecurity adds --creds and --tls-cert/--tls-key/--tls-ca (also
// spelt --tlscert/--tlskey/--tlsca, as the nats CLI does).
func (c *connFlags) registerSecurity(fs *flag.FlagSet) {
	fs.StringVar(&c.creds, "creds", "", "credentials file")
	for _, n := range []string{"tls-cert", "tlscert"} {
		fs.StringVar(&c.tlsCert, n, "", "client certificate")
	}
	for _, n := range []string{"tls-key", "tlskey"} {
		fs.StringVar(&c.tlsKey, n, "", "client key")
	}
	for _, n := range []string{"tls-ca", "tlsca"} {
		fs.StringVar(&c.tlsCA, n, "", "CA certificate")
	}
}

func (c *connFlags) validate() error {
	if strings.TrimSpace(c.urls) == "" {
		return usagef("--server: empty URL")
	}
	if !natschedjs.ValidPrefix(c.prefix) {
		return usagef("--prefix %q: want one token of [A-Za-z0-9_-], at most 32 characters", c.prefix)
	}
	if c.timeout <= 0 {
		return usagef("--timeout must be positive, got %s", c.timeout)
	}
	return c.validateSecurity()
}

func (c *connFlags) validateSecurity() error {
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	return nil
}

// options are the nats.go options the security flags ask for.
func (c *connFlags) options() []nats.Option {
	var opts []nats.Option
	if c.creds != "" {
		opts = append(opts, nats.UserCredentials(c.creds))
	}
	if c.tlsCert != "" {
		opts = append(opts, nats.ClientCert(c.tlsCert, c.tlsKey))
	}
	if c.tlsCA != "" {
		opts = append(opts, nats.RootCAs(c.tlsCA))
	}
	return opts
}

// redactURLs hides passwords and tokens in a comma-separated URL list, for
// messages.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		u, err := url.Parse(p)
		if err != nil || u.User == nil {
			if err != nil && strings.Contains(p, "@") {
				p = "<unparsable URL>"
			}
			parts[i] = p
			continue
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else {
			u.User = url.User("xxxxx")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// client speaks the wire API: request/reply on <prefix>.api.<verb>[.<id>].
type client struct {
	nc      *nats.Conn
	prefix  string
	timeout time.Duration
}

func dial(c connFlags, cmd string) (*client, error) {
	opts := append([]nats.Option{
		nats.Name("natsched " + cmd),
		nats.Timeout(c.timeout),
		nats.NoReconnect(),
	}, c.options()...)
	nc, err := nats.Connect(c.urls, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to %s: %w", redactURLs(c.urls), err)
	}
	return &client{nc: nc, prefix: c.prefix, timeout: c.timeout}, nil
}

func (cl *client) close() { cl.nc.Close() }

// apiError is an error reply of the wire API.
type apiError struct {
	Code    int
	Message string
}

func (e *apiError) Error() string {
	if e.Code == 0 {
		return e.Message
	}
	return fmt.Sprintf("%s (%d)", e.Message, e.Code)
}

type errorBody struct {
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// call sends body to <prefix>.api.<verb>[.<id>] and returns the reply body,
// or an *apiError for an error reply.
func (cl *client) call(ctx context.Context, verb, id string, body []byte) ([]byte, error) {
	subject := cl.prefix + ".api." + verb
	if id != "" {
		subject += "." + id
	}
	ctx, cancel := context.WithTimeout(ctx, cl.timeout)
	defer cancel()
	msg, err := cl.nc.RequestWithContext(ctx, subject, body)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("no natsched service answers on %s.api (is 'natsched server' running with --prefix %s?)", cl.prefix, cl.prefix)
	case errors.Is(err, nats.ErrMaxPayload):
		// nats.go refuses to send it; the service would answer 413.
		return nil, &apiError{Code: 413, Message: fmt.Sprintf(
			"data: the request takes %d bytes, over the server's max payload of %d bytes (the payload travels base64-encoded, a third larger)",
			len(body), cl.nc.MaxPayload())}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return nil, fmt.Errorf("no reply on %s within %s", subject, cl.timeout)
	case err != nil:
		return nil, fmt.Errorf("request %s: %w", subject, err)
	}
	if err := replyError(msg); err != nil {
		return nil, err
	}
	return msg.Data, nil
}

// replyError reads micro's error headers, falling back on the JSON body
// {"error":{"code":..,"message":..}}.
func replyError(msg *nats.Msg) error {
	var e apiError
	if code := msg.Header.Get("Nats-Service-Error-Code"); code != "" {
		e.Code, _ = strconv.Atoi(code)
		e.Message = msg.Header.Get("Nats-Service-Error")
		if e.Code == 0 && e.Message == "" {
			return nil
		}
	}
	if bytes.HasPrefix(bytes.TrimSpace(msg.Data), []byte(`{"error"`)) {
		var b errorBody
		if json.Unmarshal(msg.Data, &b) == nil && b.Error != nil {
			if e.Code == 0 {
				e.Code = b.Error.Code
			}
			if e.Message == "" {
				e.Message = b.Error.Message
			}
		}
	}
	if e.Code == 0 && e.Message == "" {
		return nil
	}
	if e.Message == "" {
		e.Message = "error reply"
	}
	return &e
}

// printSchedule prints a schedule reply: raw with --json, else for humans.
func printSchedule(w io.Writer, body []byte, asJSON bool, title string) error {
	if asJSON {
		return writeRaw(w, body)
	}
	var s natsched.Schedule
	if err := json.Unmarshal(body, &s); err != nil {
		return fmt.Errorf("unreadable reply: %v", err)
	}
	if title != "" {
		fmt.Fprintln(w, title)
	}
	return formatSchedule(w, &s, time.Now())
}

func writeRaw(w io.Writer, body []byte) error {
	body = bytes.TrimRight(body, "\n")
	_, err := fmt.Fprintf(w, "%s\n", body)
	return err
}

// checkID rejects IDs that would not make a valid API subject.
func checkID(id string) error {
	if !natsched.ValidID(id) {
		return usagef("id: %q is not 1-255 characters of dot-separated tokens of [A-Za-z0-9_-]", id)
	}
	return nil
}

// --- get, cancel, pause, resume, trigger ---

var getCommand = &command{
	name:    "get",
	summary: "show a schedule",
	usage: `Usage: natsched get ID [--json]

Shows the schedule ID; --json prints the wire JSON as received.

` + globalFlagsHelp,
	run: func(ctx context.Context, e *env, args []string) error {
		return runVerb(ctx, e, "get", args, "")
	},
}

func verbCommand(verb, summary string) *command {
	return &command{
		name:    verb,
		summary: summary,
		usage: fmt.Sprintf(`Usage: natsched %s ID [--json]

%s%s; prints the schedule the service returns (--json: the wire JSON).

%s`, verb, strings.ToUpper(summary[:1]), summary[1:], globalFlagsHelp),
		run: func(ctx context.Context, e *env, args []string) error {
			return runVerb(ctx, e, verb, args, verbTitle[verb])
		},
	}
}

var verbTitle = map[string]string{
	"cancel":  "Cancelled %s; it was:",
	"trigger": "Triggered %s: one extra occurrence fires now.",
}

func runVerb(ctx context.Context, e *env, verb string, args []string, title string) error {
	fs := newFlagSet(verb)
	var cf connFlags
	cf.register(fs, e)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, "ID"); err != nil {
		return err
	}
	if err := cf.validate(); err != nil {
		return err
	}
	id := pos[0]
	if err := checkID(id); err != nil {
		return err
	}
	cl, err := dial(cf, verb)
	if err != nil {
		return err
	}
	defer cl.close()
	body, err := cl.call(ctx, verb, id, nil)
	if err != nil {
		return err
	}
	if title != "" {
		title = fmt.Sprintf(title, id)
	}
	return printSchedule(e.stdout, body, *asJSON, title)
}

// --- status ---

var statusCommand = &command{
	name:    "status",
	summary: "show who leads, how many schedules are pending, fired, late",
	usage: `Usage: natsched status [--json]

Asks one scheduler instance (whichever answers) for its view: the leader,
schedules pending in the leader's index, occurrences fired and fired late.

` + globalFlagsHelp,
	run: runStatus,
}

func runStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("status")
	var cf connFlags
	cf.register(fs, e)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos); err != nil {
		return err
	}
	if err := cf.validate(); err != nil {
		return err
	}
	cl, err := dial(cf, "status")
	if err != nil {
		return err
	}
	defer cl.close()
	body, err := cl.call(ctx, "status", "", nil)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeRaw(e.stdout, body)
	}
	return formatStatus(e.stdout, body)
}

// --- ls ---

var lsCommand = &command{
	name:    "ls",
	summary: "list schedules",
	usage: `Usage: natsched ls [PREFIX] [--status active|paused|done] [--limit N] [--json]

Lists schedules ordered by ID, following the service's pages to the end.
PREFIX selects whole ID tokens: 'billing' lists billing and billing.*.
--json prints one object {"schedules":[...]}.

` + globalFlagsHelp,
	run: runLs,
}

// listRequest and listReply are the bodies of <prefix>.api.list[.<prefix>].
type listRequest struct {
	Status string `json:"status,omitempty"`
	Limit  int    `json:"limit,omitempty"`
	After  string `json:"after,omitempty"`
}

type listReply struct {
	Schedules []json.RawMessage `json:"schedules"`
	Next      string            `json:"next"`
}

// listPageSize is how many schedules one list request asks for.
const listPageSize = 100

func runLs(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("ls")
	var cf connFlags
	cf.register(fs, e)
	asJSON := fs.Bool("json", false, "print JSON")
	status := fs.String("status", "", "active, paused or done")
	limit := fs.Int("limit", 0, "at most N schedules")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("unexpected argument %q", pos[1])
	}
	if err := cf.validate(); err != nil {
		return err
	}
	var prefix string
	if len(pos) == 1 {
		prefix = pos[0]
		if !natsched.ValidID(prefix) {
			return usagef("prefix %q: want dot-separated tokens of [A-Za-z0-9_-]", prefix)
		}
	}
	switch natsched.Status(*status) {
	case "", natsched.StatusActive, natsched.StatusPaused, natsched.StatusDone:
	default:
		return usagef("--status must be active, paused or done, got %q", *status)
	}
	if *limit < 0 {
		return usagef("--limit must not be negative, got %d", *limit)
	}
	cl, err := dial(cf, "ls")
	if err != nil {
		return err
	}
	defer cl.close()

	var all []json.RawMessage
	req := listRequest{Status: *status}
	for {
		req.Limit = listPageSize
		if *limit > 0 {
			req.Limit = min(listPageSize, *limit-len(all))
		}
		body, _ := json.Marshal(req)
		reply, err := cl.call(ctx, "list", prefix, body)
		if err != nil {
			return err
		}
		var page listReply
		if err := json.Unmarshal(reply, &page); err != nil {
			return fmt.Errorf("unreadable list reply: %v", err)
		}
		all = append(all, page.Schedules...)
		if *limit > 0 && len(all) >= *limit {
			all = all[:*limit]
			break
		}
		// An unchanged cursor would loop forever: a server bug, not ours
		// to spin on.
		if page.Next == "" || page.Next == req.After {
			break
		}
		req.After = page.Next
	}
	if *asJSON {
		if all == nil {
			all = []json.RawMessage{}
		}
		out, err := json.Marshal(listReply{Schedules: all})
		if err != nil {
			return err
		}
		// Drop "next": the listing is complete.
		out = bytes.Replace(out, []byte(`,"next":""`), nil, 1)
		return writeRaw(e.stdout, out)
	}
	scheds := make([]*natsched.Schedule, 0, len(all))
	for _, raw := range all {
		var s natsched.Schedule
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("unreadable schedule in list reply: %v", err)
		}
		scheds = append(scheds, &s)
	}
	if len(scheds) == 0 {
		fmt.Fprintln(e.stderr, "no schedules")
		return nil
	}
	return formatTable(e.stdout, scheds)
}

// --- add ---

var addCommand = &command{
	name:    "add",
	summary: "create or replace a schedule",
	usage: `Usage: natsched add ID --subject S (--in D | --at T | --every D | --cron EXPR) [flags]

Creates the schedule ID, or replaces it, and prints it as stored.

When (exactly one):
  --in D             once, D after the service accepts it (Go duration: 90s, 1h30m)
  --at T             once, at T (RFC 3339: 2026-11-27T21:00:00Z)
  --every D          every D (at least 1ms); first fire one D after acceptance or on the grid of --start
  --cron EXPR        cron: 5 fields, 6 (seconds first), 7 (with year) or @daily etc.
Options:
  --subject S        target subject (required; some JetStream stream must capture it)
  --tz ZONE          IANA zone for --cron (default UTC)
  --data STR         payload
  --data-file F      payload from file F ('-' reads stdin)
  --header K:V       header of the fired message (repeatable)
  --start T, --end T window of a recurring schedule (RFC 3339)
  --max-runs N       stop after N occurrences
  --misfire M        skip, once (default) or all: occurrences missed while no scheduler ran
  --catchup D        how far back misfire=all goes (default 1h)
  --jitter D         random delay in [0, D] per occurrence
  --paused           create it paused
  --json             print the stored schedule as JSON

` + globalFlagsHelp,
	run: runAdd,
}

// putRequest is the schedule JSON of a put, in the contract's field order.
type putRequest struct {
	ID      string              `json:"id"`
	Subject string              `json:"subject"`
	Cron    string              `json:"cron,omitempty"`
	TZ      string              `json:"tz,omitempty"`
	At      string              `json:"at,omitempty"`
	In      string              `json:"in,omitempty"`
	Every   string              `json:"every,omitempty"`
	Start   string              `json:"start,omitempty"`
	End     string              `json:"end,omitempty"`
	MaxRuns int64               `json:"max_runs,omitempty"`
	Misfire string              `json:"misfire,omitempty"`
	Catchup string              `json:"catchup,omitempty"`
	Jitter  string              `json:"jitter,omitempty"`
	Paused  bool                `json:"paused,omitempty"`
	Header  map[string][]string `json:"header,omitempty"`
	Data    string              `json:"data"`
}

type addFlags struct {
	subject, in, at, every, cron, tz string
	data, dataFile                   string
	headers                          stringList
	start, end                       string
	maxRuns                          int64
	misfire, catchup, jitter         string
	paused, json                     bool
}

func runAdd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("add")
	var cf connFlags
	cf.register(fs, e)
	var f addFlags
	registerAdd(fs, &f)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, "ID"); err != nil {
		return err
	}
	if err := cf.validate(); err != nil {
		return err
	}
	req, err := buildPut(pos[0], &f, setFlags(fs), e.stdin, time.Now())
	if err != nil {
		return err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	cl, err := dial(cf, "add")
	if err != nil {
		return err
	}
	defer cl.close()
	reply, err := cl.call(ctx, "put", req.ID, body)
	if err != nil {
		return err
	}
	return printSchedule(e.stdout, reply, f.json, "")
}

func registerAdd(fs *flag.FlagSet, f *addFlags) {
	fs.StringVar(&f.subject, "subject", "", "")
	fs.StringVar(&f.in, "in", "", "")
	fs.StringVar(&f.at, "at", "", "")
	fs.StringVar(&f.every, "every", "", "")
	fs.StringVar(&f.cron, "cron", "", "")
	fs.StringVar(&f.tz, "tz", "", "")
	fs.StringVar(&f.data, "data", "", "")
	fs.StringVar(&f.dataFile, "data-file", "", "")
	fs.Var(&f.headers, "header", "")
	fs.StringVar(&f.start, "start", "", "")
	fs.StringVar(&f.end, "end", "", "")
	fs.Int64Var(&f.maxRuns, "max-runs", 0, "")
	fs.StringVar(&f.misfire, "misfire", "", "")
	fs.StringVar(&f.catchup, "catchup", "", "")
	fs.StringVar(&f.jitter, "jitter", "", "")
	fs.BoolVar(&f.paused, "paused", false, "")
	fs.BoolVar(&f.json, "json", false, "")
}

// buildPut turns the flags into a put request, checking locally everything
// the service would refuse that is cheap to check here (a *usageError).
func buildPut(id string, f *addFlags, set map[string]bool, stdin io.Reader, now time.Time) (*putRequest, error) {
	var kinds []string
	for _, k := range []string{"in", "at", "every", "cron"} {
		if set[k] {
			kinds = append(kinds, "--"+k)
		}
	}
	switch {
	case len(kinds) == 0:
		return nil, usagef("give one of --in, --at, --every or --cron")
	case len(kinds) > 1:
		return nil, usagef("give only one of %s", strings.Join(kinds, ", "))
	}
	if !set["subject"] {
		return nil, usagef("--subject is required")
	}
	if set["tz"] && !set["cron"] {
		return nil, usagef("--tz applies to --cron only")
	}
	if set["data"] && set["data-file"] {
		return nil, usagef("give --data or --data-file, not both")
	}
	req := &putRequest{ID: id, Subject: f.subject, Cron: f.cron, TZ: f.tz, Paused: f.paused, MaxRuns: f.maxRuns}
	// s mirrors the request so that natsched's own validation runs here.
	s := &natsched.Schedule{ID: id, Subject: f.subject, Cron: f.cron, TZ: f.tz, MaxRuns: f.maxRuns,
		Misfire: natsched.Misfire(f.misfire), Paused: f.paused}
	var err error
	if set["in"] {
		var d time.Duration
		if d, err = parseDuration("in", f.in); err != nil {
			return nil, err
		}
		req.In = d.String()
		s.At = now.Add(d) // stands in for the acceptance time
	}
	if set["at"] {
		if s.At, err = parseTime("at", f.at); err != nil {
			return nil, err
		}
		req.At = natsched.FormatTime(s.At)
	}
	if set["every"] {
		if s.Every, err = parseDuration("every", f.every); err != nil {
			return nil, err
		}
		if s.Every < natsched.MinEvery {
			return nil, usagef("--every must be at least %s, got %s", natsched.MinEvery, f.every)
		}
		req.Every = s.Every.String()
	}
	if set["start"] {
		if s.Start, err = parseTime("start", f.start); err != nil {
			return nil, err
		}
		req.Start = natsched.FormatTime(s.Start)
	}
	if set["end"] {
		if s.End, err = parseTime("end", f.end); err != nil {
			return nil, err
		}
		req.End = natsched.FormatTime(s.End)
	}
	if set["catchup"] {
		if s.Catchup, err = parseDuration("catchup", f.catchup); err != nil {
			return nil, err
		}
		req.Catchup = s.Catchup.String()
	}
	if set["jitter"] {
		if s.Jitter, err = parseDuration("jitter", f.jitter); err != nil {
			return nil, err
		}
		req.Jitter = s.Jitter.String()
	}
	req.Misfire = f.misfire
	for _, h := range f.headers {
		k, v, ok := strings.Cut(h, ":")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, usagef("--header %q: want NAME:VALUE", h)
		}
		if req.Header == nil {
			req.Header = map[string][]string{}
			s.Header = nats.Header{}
		}
		v = strings.TrimSpace(v)
		req.Header[k] = append(req.Header[k], v)
		s.Header[k] = append(s.Header[k], v)
	}
	switch {
	case set["data-file"]:
		if s.Data, err = readData(f.dataFile, stdin); err != nil {
			return nil, err
		}
	case set["data"]:
		s.Data = []byte(f.data)
	}
	req.Data = base64.StdEncoding.EncodeToString(s.Data)
	if err := s.Validate(); err != nil {
		var fe *natsched.FieldError
		if errors.As(err, &fe) {
			return nil, usagef("%s", fe.Error())
		}
		return nil, usagef("%v", err)
	}
	return req, nil
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
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, usagef("--%s %q: not a duration (use Go syntax such as 90s or 1h30m)", field, v)
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
