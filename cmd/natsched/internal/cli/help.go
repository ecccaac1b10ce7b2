package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// groupAnnotation marks the connection flags, which help lists apart.
const groupAnnotation = "natsched-group"

// markConnection puts every flag of fs in the connection group.
func markConnection(fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		_ = fs.SetAnnotation(f.Name, groupAnnotation, []string{"connection"})
	})
}

func isConnection(f *pflag.Flag) bool {
	return len(f.Annotations[groupAnnotation]) > 0
}

// helpText is the help of c, generated from its definition and flags.
func helpText(c *cobra.Command) string {
	var b strings.Builder
	if !c.HasParent() {
		b.WriteString(c.Long + "\n\nUsage:\n  natsched <command> [arguments] [flags]\n\nCommands:\n")
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() {
				fmt.Fprintf(&b, "  %-10s %s\n", sub.Name(), sub.Short)
			}
		}
		b.WriteString(`  help       show this help, or 'natsched help <command>'

Flags may come before or after the arguments; both -flag and --flag work.
Connection flags (every command that connects; they may also come before the
command; a flag beats its environment variable, which beats the context):
`)
		b.WriteString(globalFlags().FlagUsagesWrapped(100))
		b.WriteString("\nExit status: 0 success, 1 server-side error, 2 usage error.\n")
		return b.String()
	}
	fmt.Fprintf(&b, "Usage:\n  %s\n", c.UseLine())
	if c.Long != "" {
		b.WriteString("\n" + strings.TrimRight(c.Long, "\n") + "\n")
	} else if c.Short != "" {
		b.WriteString("\n" + upperFirst(c.Short) + ".\n")
	}
	if c.HasAvailableSubCommands() {
		b.WriteString("\nCommands:\n")
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() {
				fmt.Fprintf(&b, "  %-10s %s\n", sub.Name(), sub.Short)
			}
		}
	}
	own := pflag.NewFlagSet("own", pflag.ContinueOnError)
	conn := pflag.NewFlagSet("conn", pflag.ContinueOnError)
	own.SortFlags, conn.SortFlags = false, false
	c.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		if isConnection(f) {
			conn.AddFlag(f)
		} else {
			own.AddFlag(f)
		}
	})
	if own.HasAvailableFlags() {
		b.WriteString("\nFlags:\n" + own.FlagUsagesWrapped(100))
	}
	if conn.HasAvailableFlags() {
		b.WriteString("\nConnection flags:\n" + conn.FlagUsagesWrapped(100))
	}
	return b.String()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
