// Package cli is the natsched command: the daemon (`natsched server`), the
// client commands that speak the wire API (add, ls, get, cancel, pause,
// resume, trigger, status) and the local cron checker (next).
//
// Exit status: 0 on success, 1 on a server-side error (an error reply, a
// timeout, a connection failure), 2 on a usage error (unknown command or
// flag, missing or extra arguments, bad expressions, zones, durations or
// times). Messages go to stderr; results to stdout.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/natsched/natsched/internal/bench"
	"io"
	"strings"
)

// Exit statuses.
const (
	ExitOK     = 0
	ExitServer = 1
	ExitUsage  = 2
)

// env bundles what a command reads and writes, so that commands run the same
// in the binary and in tests.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	usage   string // full help text, printed for -h
	run     func(ctx context.Context, e *env, args []string) error
}

// commands in the order help lists them.
var commands []*command

func init() {
	commands = []*command{
		serverCommand, addCommand, lsCommand, getCommand,
		verbCommand("cancel", "delete a schedule (prints it as it was)"),
		verbCommand("pause", "pause a schedule"),
		verbCommand("resume", "resume a paused schedule"),
		verbCommand("trigger", "fire one extra occurrence now"),
		nextCommand, statusCommand, benchCommand,
	}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// Main runs the natsched command line and returns its exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(ctx, &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: osGetenv}, args)
}

func run(ctx context.Context, e *env, args []string) int {
	args = hoistGlobalFlags(args)
	if len(args) > 0 && args[0] == "bench" {
		// The benchmark has its own flags; it joins a server with --nats.
		return bench.Main(ctx, benchArgs(args[1:]), e.stdout, e.stderr)
	}
	if len(args) == 0 {
		fmt.Fprint(e.stderr, mainUsage())
		return ExitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c := lookup(args[1]); c != nil {
				fmt.Fprint(e.stdout, c.usage)
				return ExitOK
			}
			fmt.Fprintf(e.stderr, "natsched: unknown command %q\n", args[1])
			return ExitUsage
		}
		fmt.Fprint(e.stdout, mainUsage())
		return ExitOK
	}
	c := lookup(args[0])
	if c == nil {
		name, _, _ := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		switch {
		case globalValueFlags[name]:
			fmt.Fprintf(e.stderr, "natsched: missing command\nRun 'natsched help' for usage.\n")
		case strings.HasPrefix(args[0], "-"):
			fmt.Fprintf(e.stderr, "natsched: unknown flag %s before the command\nRun 'natsched help' for usage.\n", args[0])
		default:
			fmt.Fprintf(e.stderr, "natsched: unknown command %q\nRun 'natsched help' for usage.\n", args[0])
		}
		return ExitUsage
	}
	err := c.run(ctx, e, args[1:])
	var ue *usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(e.stdout, c.usage)
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "natsched %s: %s\nRun 'natsched %s -h' for usage.\n", c.name, ue.msg, c.name)
		return ExitUsage
	default:
		fmt.Fprintf(e.stderr, "natsched %s: %v\n", c.name, err)
		return ExitServer
	}
}

func mainUsage() string {
	var b strings.Builder
	b.WriteString(`natsched schedules NATS messages.

Usage:
  natsched <command> [arguments] [flags]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-9s %s\n", c.name, c.summary)
	}
	b.WriteString(`  help      show this help, or 'natsched help <command>'

Flags may come before or after the arguments; both -flag and --flag work.
` + globalFlagsHelp + `
Exit status: 0 success, 1 server-side error, 2 usage error.
`)
	return b.String()
}

const globalFlagsHelp = `Connection flags (every client command):
  -s, --server URL   NATS URL or comma-separated list (env NATS_URL; default nats://127.0.0.1:4222);
                     user:password@host URLs work
  --creds FILE       NATS credentials file
  --tls-cert FILE    client certificate (with --tls-key)
  --tls-key FILE     client key
  --tls-ca FILE      CA certificate(s) to verify the server
  --prefix P         natsched prefix of the API subjects (default natsched)
  --timeout D        request timeout (default 5s)
`

// hoistGlobalFlags lets connection flags come before the command name
// (`natsched -s URL ls`) by moving them behind it.
func hoistGlobalFlags(args []string) []string {
	var lead []string
	i := 0
	for i < len(args) {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") || len(a) < 2 {
			break
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !globalValueFlags[name] {
			break
		}
		lead = append(lead, a)
		i++
		if !hasValue && i < len(args) {
			lead = append(lead, args[i])
			i++
		}
	}
	if len(lead) == 0 || i >= len(args) {
		return args
	}
	out := append([]string{args[i]}, lead...)
	return append(out, args[i+1:]...)
}

var globalValueFlags = map[string]bool{
	"server": true, "s": true, "creds": true, "prefix": true, "timeout": true,
	"tls-cert": true, "tls-key": true, "tls-ca": true, "tlscert": true, "tlskey": true, "tlsca": true,
}

// newFlagSet returns a flag set that reports errors as values, not on
// stderr, so that Main decides the exit status.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseArgs parses args with fs, letting flags and positional arguments
// come in any order: the standard package stops at the first positional
// argument. A flag that takes a value consumes the next argument unless
// written --flag=value; "--" ends the flags; "-" alone is positional. It
// returns the positional arguments, flag.ErrHelp for -h/--help, or a
// *usageError.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var flags, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		body := a[1:]
		if body[0] == '-' {
			body = body[1:]
		}
		name, value, hasValue := strings.Cut(body, "=")
		if name == "" || name[0] == '-' {
			return nil, usagef("bad flag syntax: %s", a)
		}
		f := fs.Lookup(name)
		if f == nil {
			if name == "h" || name == "help" {
				return nil, flag.ErrHelp
			}
			return nil, usagef("unknown flag --%s", name)
		}
		if isBoolFlag(f) {
			flags = append(flags, a)
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return nil, usagef("flag --%s needs a value", name)
			}
			i++
			value = args[i]
		}
		flags = append(flags, "-"+name+"="+value)
	}
	if err := fs.Parse(flags); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usagef("%s", strings.Replace(err.Error(), "for flag -", "for flag --", 1))
	}
	return positional, nil
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// setFlags returns the names of the flags given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	m := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { m[f.Name] = true })
	return m
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// wantArgs checks the count of positional arguments.
func wantArgs(args []string, names ...string) error {
	switch {
	case len(args) < len(names):
		return usagef("missing %s", strings.Join(names[len(args):], " and "))
	case len(args) > len(names):
		return usagef("unexpected argument %q", args[len(names)])
	}
	return nil
}

// benchCommand is listed in help; run hands bench its arguments untouched.
var benchCommand = &command{
	name:    "bench",
	summary: "measure throughput, lateness and memory, optionally against NATS server message schedules",
	usage:   "Usage: natsched bench [--workloads spread,instant,burst,create,pending,failover,idle] [--compare-native] [--raw] [--json] [--nats URL]\n\nRun 'natsched bench -h' for every flag.\n",
	run: func(ctx context.Context, e *env, args []string) error {
		if code := bench.Main(ctx, benchArgs(args), e.stdout, e.stderr); code != 0 {
			return fmt.Errorf("exit status %d", code)
		}
		return nil
	},
}

// benchArgs turns the global -s/--server into bench's --nats.
func benchArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && (name == "s" || name == "server") {
			if hasValue {
				out = append(out, "--nats="+value)
			} else if i+1 < len(args) {
				out = append(out, "--nats", args[i+1])
				i++
			}
			continue
		}
		out = append(out, a)
	}
	return out
}
