package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
)

// runCLI runs the command line with NATS_URL unset and returns the exit
// status, stdout and stderr.
func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	code := run(context.Background(), e, args)
	return code, out.String(), errOut.String()
}

func TestParseArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		pos     []string
		subject string
		count   int
		json    bool
		headers []string
		err     string
	}{
		{name: "flags after", args: []string{"id1", "--subject", "a.b", "-n", "3"}, pos: []string{"id1"}, subject: "a.b", count: 3},
		{name: "flags before", args: []string{"--subject", "a.b", "-json", "id1"}, pos: []string{"id1"}, subject: "a.b", json: true},
		{name: "mixed", args: []string{"-n=7", "x", "--json", "y", "--subject=s.t"}, pos: []string{"x", "y"}, subject: "s.t", count: 7, json: true},
		{name: "equals keeps dashes", args: []string{"--subject=-weird", "a"}, pos: []string{"a"}, subject: "-weird"},
		{name: "value may start with dash", args: []string{"--subject", "-x", "a"}, pos: []string{"a"}, subject: "-x"},
		{name: "double dash ends flags", args: []string{"a", "--", "--json", "-n"}, pos: []string{"a", "--json", "-n"}},
		{name: "lone dash is positional", args: []string{"-", "--json"}, pos: []string{"-"}, json: true},
		{name: "repeatable", args: []string{"--header", "A:1", "x", "--header=B:2"}, pos: []string{"x"}, headers: []string{"A:1", "B:2"}},
		{name: "bool with value", args: []string{"--json=false", "x"}, pos: []string{"x"}},
		{name: "unknown flag", args: []string{"x", "--nope"}, err: "unknown flag --nope"},
		{name: "missing value", args: []string{"x", "--subject"}, err: "flag --subject needs a value"},
		{name: "bad int", args: []string{"-n", "many"}, err: `invalid value "many" for flag --count`},
		{name: "triple dash", args: []string{"---json"}, err: "bad flag syntax"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var (
				subject string
				count   int
				asJSON  bool
				headers stringList
			)
			cmd := &cobra.Command{Use: "t"}
			cmd.SetFlagErrorFunc(flagError)
			fs := cmd.Flags()
			fs.StringVar(&subject, "subject", "", "")
			fs.IntVarP(&count, "count", "n", 0, "")
			fs.BoolVar(&asJSON, "json", false, "")
			fs.Var(&headers, "header", "")
			err := cmd.ParseFlags(normalizeDashes(fs, tt.args))
			if err != nil {
				err = flagError(cmd, err) // as cobra's Execute does
			}
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				var ue *usageError
				require.ErrorAs(t, err, &ue)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.pos, fs.Args())
			require.Equal(t, tt.subject, subject)
			require.Equal(t, tt.count, count)
			require.Equal(t, tt.json, asJSON)
			require.Equal(t, tt.headers, []string(headers))
		})
	}
}

func TestParseArgsHelp(t *testing.T) {
	t.Parallel()
	for _, a := range []string{"-h", "--help", "-help"} {
		code, out, errOut := runCLI(t, "", "get", "x", a)
		require.Equal(t, ExitOK, code, errOut)
		require.Contains(t, out, "Usage:\n  natsched get ID")
	}
}

func TestHoistGlobalFlags(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"ls", "-s", "nats://h:1", "--prefix=p", "x"},
		hoistGlobalFlags([]string{"-s", "nats://h:1", "--prefix=p", "ls", "x"}))
	require.Equal(t, []string{"ls"}, hoistGlobalFlags([]string{"ls"}))
	require.Equal(t, []string{"dead", "ls", "--context", "prod", "--tlsfirst", "--json"},
		hoistGlobalFlags([]string{"--context", "prod", "--tlsfirst", "dead", "ls", "--json"}))
	require.Equal(t, []string{"--json", "ls"}, hoistGlobalFlags([]string{"--json", "ls"}))
}

func TestNext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{
			// 2026-03-29 is the EU spring-forward: CET (+1) before, CEST (+2) after.
			name: "weekdays in Berlin across DST",
			args: []string{"0 9 * * MON-FRI", "--tz", "Europe/Berlin", "-n", "3", "--from", "2026-03-27T00:00:00Z"},
			want: []string{"2026-03-27T08:00:00Z", "2026-03-30T07:00:00Z", "2026-03-31T07:00:00Z"},
		},
		{
			name: "flags before the expression",
			args: []string{"--from=2026-01-01T00:00:00Z", "--count", "2", "@daily"},
			want: []string{"2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"},
		},
		{
			name: "six fields are seconds first",
			args: []string{"30 15 10 * * *", "-n", "2", "--from", "2026-06-01T00:00:00Z"},
			want: []string{"2026-06-01T10:15:30Z", "2026-06-02T10:15:30Z"},
		},
		{
			name: "strictly after from",
			args: []string{"*/15 * * * * *", "-n", "2", "--from", "2026-06-01T00:00:15Z"},
			want: []string{"2026-06-01T00:00:30Z", "2026-06-01T00:00:45Z"},
		},
		{
			name: "hourly macro",
			args: []string{"@hourly", "-n", "2", "--from", "2026-06-01T10:30:00+02:00"},
			want: []string{"2026-06-01T09:00:00Z", "2026-06-01T10:00:00Z"},
		},
		{
			name: "default count is 5",
			args: []string{"@yearly", "--from", "2026-06-01T00:00:00Z"},
			want: []string{"2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z", "2029-01-01T00:00:00Z", "2030-01-01T00:00:00Z", "2031-01-01T00:00:00Z"},
		},
		{
			name: "fewer than asked: a year-limited expression",
			args: []string{"0 0 12 1 1,7 * 2027", "-n", "10", "--from", "2026-06-01T00:00:00Z"},
			want: []string{"2027-01-01T12:00:00Z", "2027-07-01T12:00:00Z"},
		},
		{
			name: "none left",
			args: []string{"0 0 12 1 1 * 2027", "--from", "2028-01-01T00:00:00Z"},
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCLI(t, "", append([]string{"next"}, tt.args...)...)
			require.Equal(t, ExitOK, code, errOut)
			require.Empty(t, errOut)
			var lines []string
			if out != "" {
				lines = strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			}
			require.Equal(t, tt.want, lines)
		})
	}
}

func TestNextDefaultFromIsNow(t *testing.T) {
	t.Parallel()
	before := time.Now()
	code, out, errOut := runCLI(t, "", "next", "* * * * * *", "-n", "1")
	require.Equal(t, ExitOK, code, errOut)
	got, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(out))
	require.NoError(t, err)
	require.True(t, got.After(before.Add(-time.Second)) && got.Before(before.Add(5*time.Second)), "next second after now: %s", got)
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	dataFile := filepath.Join(t.TempDir(), "payload")
	require.NoError(t, os.WriteFile(dataFile, []byte("x"), 0o600))
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"no command", nil, "Usage:"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag before command", []string{"--bogus", "ls"}, "unknown flag --bogus"},
		{"only global flags", []string{"-s", "nats://h:1"}, "missing command"},
		{"help of unknown command", []string{"help", "frobnicate"}, "unknown command"},
		{"next bad cron", []string{"next", "61 * * * *"}, "cron:"},
		{"next eight fields", []string{"next", "0 0 0 1 1 * 2027 x"}, "cron: expected 5, 6 or 7 fields, got 8"},
		{"next bad tz", []string{"next", "@daily", "--tz", "Mars/Olympus"}, `tz: unknown time zone "Mars/Olympus"`},
		{"next Local tz", []string{"next", "@daily", "--tz", "Local"}, "tz:"},
		{"next bad from", []string{"next", "@daily", "--from", "tomorrow"}, "--from"},
		{"next zero count", []string{"next", "@daily", "-n", "0"}, "--count must be at least 1"},
		{"next missing expr", []string{"next"}, "missing EXPR"},
		{"next extra arg", []string{"next", "@daily", "@hourly"}, `unexpected argument "@hourly"`},
		{"next unknown flag", []string{"next", "@daily", "--zone", "UTC"}, "unknown flag --zone"},
		{"get missing id", []string{"get"}, "missing ID"},
		{"get bad id", []string{"get", "a.*"}, "id:"},
		{"get extra", []string{"get", "a", "b"}, "unexpected argument"},
		{"cancel bad id", []string{"cancel", "a b"}, "id:"},
		{"bad prefix", []string{"get", "a", "--prefix", "a.b"}, "--prefix"},
		{"bad timeout", []string{"status", "--timeout", "soon"}, "--timeout"},
		{"tls cert without key", []string{"status", "--tls-cert", "c.pem"}, "--tlscert and --tlskey go together"},
		{"ls bad status", []string{"ls", "--status", "cancelled"}, "--status"},
		{"ls negative limit", []string{"ls", "--limit", "-1"}, "--limit"},
		{"ls bad prefix", []string{"ls", "billing.>"}, "prefix"},
		{"add no when", []string{"add", "a", "--subject", "s"}, "give one of --in, --at, --every or --cron"},
		{"add two whens", []string{"add", "a", "--subject", "s", "--in", "1s", "--every", "1s"}, "give only one of --in, --every"},
		{"add no subject", []string{"add", "a", "--in", "1s"}, "--subject is required"},
		{"add bad cron", []string{"add", "a", "--subject", "s", "--cron", "* * *"}, "cron: expected 5, 6 or 7 fields, got 3"},
		{"add bad tz", []string{"add", "a", "--subject", "s", "--cron", "@daily", "--tz", "Nowhere/Land"}, "tz:"},
		{"add tz without cron", []string{"add", "a", "--subject", "s", "--in", "1s", "--tz", "UTC"}, "--tz applies to --cron only"},
		{"add bad duration", []string{"add", "a", "--subject", "s", "--in", "5 minutes"}, `--in "5 minutes": not a duration`},
		{"add negative duration", []string{"add", "a", "--subject", "s", "--in", "-5s"}, "must not be negative"},
		{"add bad time", []string{"add", "a", "--subject", "s", "--at", "2026-13-01T00:00:00Z"}, "--at"},
		{"add every too small", []string{"add", "a", "--subject", "s", "--every", "10us"}, "--every must be at least 1ms"},
		{"add bad id", []string{"add", "a..b", "--subject", "s", "--in", "1s"}, "id:"},
		{"add wildcard subject", []string{"add", "a", "--subject", "s.*", "--in", "1s"}, "subject:"},
		{"add reserved header", []string{"add", "a", "--subject", "s", "--in", "1s", "--header", "Nats-Msg-Id:x"}, "header:"},
		{"add header without colon", []string{"add", "a", "--subject", "s", "--in", "1s", "--header", "X"}, "want NAME:VALUE"},
		{"add bad misfire", []string{"add", "a", "--subject", "s", "--every", "1s", "--misfire", "never"}, "misfire:"},
		{"add end before start", []string{"add", "a", "--subject", "s", "--every", "1s", "--start", "2026-02-01T00:00:00Z", "--end", "2026-01-01T00:00:00Z"}, "end:"},
		{"add start on one-shot", []string{"add", "a", "--subject", "s", "--in", "1s", "--start", "2026-02-01T00:00:00Z"}, "start:"},
		{"add data twice", []string{"add", "a", "--subject", "s", "--in", "1s", "--data", "x", "--data-file", dataFile}, "give --data or --data-file"},
		{"add missing data file", []string{"add", "a", "--subject", "s", "--in", "1s", "--data-file", filepath.Join(t.TempDir(), "none")}, "--data-file"},
		{"add negative max runs", []string{"add", "a", "--subject", "s", "--every", "1s", "--max-runs", "-1"}, "max_runs"},
		{"server extra arg", []string{"server", "now"}, "unexpected argument"},
		{"server bad listen", []string{"server", "--listen", "localhost"}, "--listen"},
		{"server bad port", []string{"server", "--listen", "127.0.0.1:99999"}, "bad port"},
		{"server replicas without cluster", []string{"server", "--replicas", "3"}, "needs a JetStream cluster"},
		{"server replicas range", []string{"server", "--nats", "nats://127.0.0.1:1", "--replicas", "9"}, "--replicas"},
		{"server short lease", []string{"server", "--lease", "10ms"}, "--lease must be at least 300ms"},
		{"server zero misfire", []string{"server", "--misfire-threshold", "0s"}, "--misfire-threshold"},
		{"server bad allow", []string{"server", "--allow", "tenant-a.>"}, "--allow"},
		{"server store with nats", []string{"server", "--nats", "nats://127.0.0.1:1", "--store", "x"}, "do not go with --nats"},
		{"server creds without nats", []string{"server", "--creds", "x.creds"}, "apply to --nats"},
		{"server bad prefix", []string{"server", "--prefix", "a.b"}, "--prefix"},
		{"server empty nats", []string{"server", "--nats="}, "--nats: empty URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCLI(t, "", tt.args...)
			require.Equal(t, ExitUsage, code, "stdout: %s\nstderr: %s", out, errOut)
			require.Contains(t, errOut, tt.msg)
			require.Empty(t, out)
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"help", "add"}, {"add", "-h"}, {"next", "--help"}, {"server", "-h"}, {"ls", "x", "--help"}} {
		code, out, errOut := runCLI(t, "", args...)
		require.Equal(t, ExitOK, code, "%v: %s", args, errOut)
		require.Contains(t, out, "Usage:", "%v", args)
		require.Empty(t, errOut)
	}
	_, out, _ := runCLI(t, "", "help")
	for _, c := range []string{"server", "add", "ls", "get", "cancel", "pause", "resume", "trigger", "next", "status"} {
		require.Contains(t, out, "\n  "+c+" ")
	}
}

func TestBench(t *testing.T) {
	t.Parallel()
	code, out, _ := runCLI(t, "", "bench", "-h")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "--compare-native")
	code, _, _ = runCLI(t, "", "bench", "--workloads", "nonsense")
	require.Equal(t, ExitUsage, code)
	// bench takes the connection flags: -s is its --nats.
	code, _, errOut := runCLI(t, "", "bench", "-s", "nats://127.0.0.1:1", "--workloads", "spread", "--progress=false")
	require.Equal(t, ExitServer, code)
	require.Contains(t, errOut, "connect to nats://127.0.0.1:1")
	code, out, _ = runCLI(t, "", "help", "bench")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "--compare-native")
}

func TestBuildPut(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 27, 0, 0, 0, 0, time.UTC)
	dataFile := filepath.Join(t.TempDir(), "payload.bin")
	require.NoError(t, os.WriteFile(dataFile, []byte{0, 1, 2, 0xff}, 0o600))
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  map[string]any
	}{
		{
			name: "in stays relative for the service to resolve",
			args: []string{"a.b", "--subject", "natsched.fire.x", "--in", "90s", "--data", "hello"},
			want: map[string]any{"id": "a.b", "subject": "natsched.fire.x", "in": "1m30s", "data": b64("hello")},
		},
		{
			name: "at in UTC with nanoseconds",
			args: []string{"a", "--subject", "s", "--at", "2026-11-27T22:00:00.25+01:00"},
			want: map[string]any{"id": "a", "subject": "s", "at": "2026-11-27T21:00:00.25Z", "data": ""},
		},
		{
			name: "cron with everything",
			args: []string{"--cron", "0 0 9 * * MON-FRI", "--tz", "Europe/Berlin", "rep", "--subject", "s",
				"--header", "X-Trace: abc", "--header", "X-Trace:def", "--header", "X-Other:v:w",
				"--misfire", "all", "--catchup", "2h", "--jitter", "2s", "--max-runs", "10", "--paused",
				"--start", "2026-01-01T00:00:00Z", "--end", "2027-01-01T00:00:00Z"},
			want: map[string]any{
				"id": "rep", "subject": "s", "cron": "0 0 9 * * MON-FRI", "tz": "Europe/Berlin",
				"header":  map[string]any{"X-Trace": []any{"abc", "def"}, "X-Other": []any{"v:w"}},
				"misfire": "all", "catchup": "2h0m0s", "jitter": "2s", "max_runs": float64(10), "paused": true,
				"start": "2026-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z", "data": "",
			},
		},
		{
			name: "every with binary data file",
			args: []string{"e", "--subject", "s", "--every", "1m", "--data-file", dataFile},
			want: map[string]any{"id": "e", "subject": "s", "every": "1m0s", "data": "AAEC/w=="},
		},
		{
			name:  "data from stdin",
			args:  []string{"e", "--subject", "s", "--in", "0s", "--data-file", "-"},
			stdin: "from stdin",
			want:  map[string]any{"id": "e", "subject": "s", "in": "0s", "data": b64("from stdin")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := pflag.NewFlagSet("add", pflag.ContinueOnError)
			var f scheduleFlags
			registerSchedule(fs, &f)
			require.NoError(t, fs.Parse(tt.args))
			pos := fs.Args()
			require.Len(t, pos, 1)
			req, err := buildPut(&putRequest{ID: pos[0]}, &f, setFlags(fs), strings.NewReader(tt.stdin), now, true)
			require.NoError(t, err)
			body, err := json.Marshal(req)
			require.NoError(t, err)
			var got map[string]any
			require.NoError(t, json.Unmarshal(body, &got))
			require.Equal(t, tt.want, got)
		})
	}
}
