// Package cli is the natsched command: the daemon (`natsched server`), the
// client commands that speak the wire API (add, edit, ls, get, cancel,
// pause, resume, trigger, status), the day-2 commands that read the
// streams (tail, dead), the local cron checker (next), version and bench.
//
// The command line is built with spf13/cobra: help and shell completion
// are generated from the flag definitions, and the connection flags come
// from internal/natsconn, shared with bench.
//
// Exit status: 0 on success, 1 on a server-side error (an error reply, a
// timeout, a connection failure), 2 on a usage error (unknown command or
// flag, missing or extra arguments, bad expressions, zones, durations or
// times). Messages go to stderr; results to stdout.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/natsched/natsched/cmd/natsched/internal/natsconn"
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

var osGetenv = os.Getenv

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitError carries an exit status decided elsewhere (bench's).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// Main runs the natsched command line and returns its exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(ctx, &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: osGetenv}, args)
}

func run(ctx context.Context, e *env, args []string) int {
	root := newRoot(e)
	args = hoistGlobalFlags(args)
	if len(args) == 0 {
		fmt.Fprint(e.stderr, helpText(root))
		return ExitUsage
	}
	switch args[0] {
	case cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
		// What the completion scripts call: cobra answers.
		root.SetArgs(args)
		if err := root.ExecuteContext(ctx); err != nil {
			return ExitServer
		}
		return ExitOK
	case "-h", "-help", "--help":
		args = []string{"help"}
	case "help":
		if len(args) > 1 {
			if c, rest, err := root.Find(args[1:]); err != nil || c == root || len(rest) > 0 {
				fmt.Fprintf(e.stderr, "natsched: unknown command %q\nRun 'natsched help' for usage.\n", strings.Join(args[1:], " "))
				return ExitUsage
			}
		}
	}
	cmd, _, err := root.Find(args)
	if err != nil || cmd == root && args[0] != "help" {
		name, _, _ := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		switch {
		case isGlobalFlag(name):
			fmt.Fprintf(e.stderr, "natsched: missing command\nRun 'natsched help' for usage.\n")
		case strings.HasPrefix(args[0], "-"):
			fmt.Fprintf(e.stderr, "natsched: unknown flag %s before the command\nRun 'natsched help' for usage.\n", args[0])
		default:
			fmt.Fprintf(e.stderr, "natsched: unknown command %q\nRun 'natsched help' for usage.\n", args[0])
		}
		return ExitUsage
	}
	if !cmd.DisableFlagParsing {
		args = normalizeDashes(cmd.Flags(), args)
	}
	root.SetArgs(args)
	executed, err := root.ExecuteContextC(ctx)
	if executed == nil {
		executed = cmd
	}
	name := strings.TrimPrefix(executed.CommandPath(), "natsched ")
	var ue *usageError
	var xe *exitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &xe):
		return xe.code
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "natsched %s: %s\nRun 'natsched %s -h' for usage.\n", name, ue.msg, name)
		return ExitUsage
	case errors.Is(err, natsconn.ErrUsage):
		fmt.Fprintf(e.stderr, "natsched %s: %s\n", name, strings.TrimPrefix(err.Error(), natsconn.ErrUsage.Error()+": "))
		return ExitUsage
	default:
		fmt.Fprintf(e.stderr, "natsched %s: %v\n", name, err)
		return ExitServer
	}
}

func init() {
	// Help lists the commands in the order newRoot adds them.
	cobra.EnableCommandSorting = false
}

// newRoot builds the command tree, bound to e. Each run builds its own, so
// that runs in one process (the tests) share no flag values.
func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "natsched",
		Short: "natsched schedules NATS messages",
		Long: `natsched schedules NATS messages: 'natsched server' runs the scheduler
(with an embedded NATS server unless told to join one); the other commands
talk to it over NATS.`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		DisableAutoGenTag: true,
	}
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetFlagErrorFunc(flagError)
	root.SetHelpFunc(func(c *cobra.Command, _ []string) { fmt.Fprint(c.OutOrStdout(), helpText(c)) })
	root.SetUsageFunc(func(c *cobra.Command) error { _, err := fmt.Fprint(c.OutOrStderr(), helpText(c)); return err })
	root.AddCommand(
		serverCommand(e), addCommand(e), editCommand(e), lsCommand(e), getCommand(e),
		verbCommand(e, "cancel", "delete a schedule (prints it as it was)"),
		verbCommand(e, "pause", "pause a schedule"),
		verbCommand(e, "resume", "resume a paused schedule"),
		verbCommand(e, "trigger", "fire one extra occurrence now"),
		nextCommand(e), statusCommand(e), tailCommand(e), deadCommand(e),
		versionCommand(e), benchCommand(e),
	)
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Short = "generate a shell completion script (bash, zsh, fish, powershell)"
		}
	}
	return root
}

// flagError turns pflag's errors into usage errors in natsched's words.
func flagError(_ *cobra.Command, err error) error {
	var (
		ne *pflag.NotExistError
		ve *pflag.ValueRequiredError
		ie *pflag.InvalidValueError
		se *pflag.InvalidSyntaxError
	)
	switch {
	case errors.As(err, &ne):
		if s := ne.GetSpecifiedShortnames(); s != "" {
			return usagef("unknown flag -%s", s)
		}
		return usagef("unknown flag --%s", ne.GetSpecifiedName())
	case errors.As(err, &ve):
		return usagef("flag --%s needs a value", ve.GetFlag().Name)
	case errors.As(err, &ie):
		return usagef("invalid value %q for flag --%s", ie.GetValue(), ie.GetFlag().Name)
	case errors.As(err, &se):
		return usagef("bad flag syntax: %s", se.GetSpecifiedFlag())
	}
	return usagef("%v", err)
}

// normalizeDashes lets long flags be written with one dash too (-json,
// -help), as natsched always accepted: pflag reads -json as -j -s -o -n.
// Values of flags that take one are left alone, and so is everything
// after "--".
func normalizeDashes(fs *pflag.FlagSet, args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i := 0; i < len(out); i++ {
		a := out[i]
		if a == "--" {
			break
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if len(name) > 1 && (fs.Lookup(name) != nil || name == "help") {
				a = "-" + a
				out[i] = a
			}
		}
		// Skip the value of a flag that takes one.
		var f *pflag.Flag
		switch {
		case strings.HasPrefix(a, "--") && !strings.Contains(a, "="):
			f = fs.Lookup(a[2:])
		case len(a) == 2 && a[0] == '-' && a[1] != '-':
			f = fs.ShorthandLookup(a[1:])
		}
		if f != nil && f.NoOptDefVal == "" {
			i++
		}
	}
	return out
}

// globalFlags are the flags every connecting command takes, which may
// also come before the command name.
func globalFlags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("global", pflag.ContinueOnError)
	fs.SortFlags = false
	var cf connFlags
	cf.register(fs)
	return fs
}

func isGlobalFlag(name string) bool {
	fs := globalFlags()
	return fs.Lookup(name) != nil || len(name) == 1 && fs.ShorthandLookup(name) != nil
}

// hoistGlobalFlags lets connection flags come before the command name
// (`natsched -s URL ls`) by moving them behind it.
func hoistGlobalFlags(args []string) []string {
	fs := globalFlags()
	var lead []string
	i := 0
	for i < len(args) {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") || len(a) < 2 {
			break
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := fs.Lookup(name)
		if f == nil && len(name) == 1 {
			f = fs.ShorthandLookup(name)
		}
		if f == nil {
			break
		}
		lead = append(lead, a)
		i++
		if !hasValue && f.NoOptDefVal == "" && i < len(args) {
			lead = append(lead, args[i])
			i++
		}
	}
	if len(lead) == 0 || i >= len(args) {
		return args
	}
	// Behind the command's path: `dead ls` is two words.
	end := i + 1
	if args[i] == "dead" && end < len(args) && !strings.HasPrefix(args[end], "-") {
		end++
	}
	out := append(append([]string{}, args[i:end]...), lead...)
	return append(out, args[end:]...)
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func (l *stringList) Type() string { return "stringList" }

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

// exactArgs is a cobra.PositionalArgs in natsched's words.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error { return wantArgs(args, names...) }
}

// maxArgs allows at most n positional arguments.
func maxArgs(n int) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > n {
			return usagef("unexpected argument %q", args[n])
		}
		return nil
	}
}

// setFlags returns the names of the flags given on the command line.
func setFlags(fs *pflag.FlagSet) map[string]bool {
	m := map[string]bool{}
	fs.Visit(func(f *pflag.Flag) { m[f.Name] = true })
	return m
}
