package cli

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched/cmd/natsched/internal/bench"
)

var flagInBackquotes = regexp.MustCompile("`(?:-[a-z]`/`)?(--[a-z][a-z-]*)")

// TestREADMEListsEveryFlag: the README's command reference names exactly
// the flags the generated help has, command by command, so that neither
// can drift from the other.
func TestREADMEListsEveryFlag(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../../../README.md")
	require.NoError(t, err)
	readme := string(b)
	start := strings.Index(readme, "\n## Command reference\n")
	require.NotEqual(t, -1, start, "README has a Command reference section")
	section := readme[start+1:]
	if end := strings.Index(section[3:], "\n## "); end != -1 {
		section = section[:end+3]
	}

	root := newRoot(&env{stdin: bytes.NewReader(nil), stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, getenv: func(string) string { return "" }})
	// What the help shows, per command path and for the connection flags.
	want := map[string][]string{}
	conn := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if !sub.IsAvailableCommand() || sub.Name() == "completion" || sub.Name() == "help" {
				continue
			}
			path := strings.TrimPrefix(sub.CommandPath(), "natsched ")
			if sub.HasSubCommands() {
				walk(sub)
				continue
			}
			own := []string{}
			if sub.Name() == "bench" {
				bench.FlagSet().VisitAll(func(f *pflag.Flag) {
					if !f.Hidden {
						own = append(own, "--"+f.Name)
					}
				})
			} else {
				sub.LocalFlags().VisitAll(func(f *pflag.Flag) {
					switch {
					case f.Hidden || f.Name == "help":
					case isConnection(f):
						conn["--"+f.Name] = true
					default:
						own = append(own, "--"+f.Name)
					}
				})
			}
			want[path] = own
		}
	}
	walk(root)
	// bench's connection flags are the shared ones.
	for path, flags := range want {
		if path == "bench" {
			want[path] = slices.DeleteFunc(flags, func(f string) bool { return conn[f] })
		}
	}

	got := map[string][]string{}
	var gotConn []string
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "- ") {
			continue
		}
		if strings.HasPrefix(line, "- connection flags") {
			for _, m := range flagInBackquotes.FindAllStringSubmatch(line, -1) {
				gotConn = append(gotConn, m[1])
			}
			continue
		}
		if strings.HasPrefix(line, "- `natsched completion") {
			continue // cobra's own
		}
		head, list, ok := strings.Cut(line, ": `")
		require.True(t, ok, "a reference line names commands, a colon, then flags: %q", line)
		list = "`" + list
		var flags []string
		for _, m := range flagInBackquotes.FindAllStringSubmatch(list, -1) {
			flags = append(flags, m[1])
		}
		for _, name := range strings.Split(head, "`") {
			words := strings.Fields(strings.TrimPrefix(strings.TrimSpace(name), "natsched "))
			if len(words) == 0 || strings.HasPrefix(words[0], "-") || strings.Contains(words[0], ",") || strings.HasPrefix(words[0], "(") {
				continue
			}
			c := root
			var path []string
			for _, w := range words {
				next := findSub(c, w)
				if next == nil {
					break
				}
				c, path = next, append(path, w)
			}
			if len(path) == 0 || path[0] == "completion" {
				continue
			}
			got[strings.Join(path, " ")] = flags
		}
	}
	for path, flags := range want {
		require.Contains(t, got, path, "README's command reference has no line for natsched %s", path)
		require.ElementsMatch(t, flags, got[path], "README's flags of natsched %s against its help", path)
	}
	for path := range got {
		require.Contains(t, want, path, "README lists natsched %s, which help does not have", path)
	}
	var wantConn []string
	for f := range conn {
		wantConn = append(wantConn, f)
	}
	require.ElementsMatch(t, wantConn, gotConn, "README's connection flags against the help")
}

func findSub(c *cobra.Command, name string) *cobra.Command {
	for _, sub := range c.Commands() {
		if sub.Name() == name {
			return sub
		}
	}
	return nil
}
