package natsched_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// exampleFiles are the programs and checked examples the README quotes,
// each compiled and run by a test of its own package: examples/embedded
// (TestRun), client's Example (// Output:) and the TypeScript example
// (run by the TypeScript tests).
var exampleFiles = []string{
	"examples/embedded/main.go",
	"client/example_test.go",
	"clients/typescript/src/example.ts",
}

// TestReadmeSnippets: every Go and TypeScript snippet in README.md is a
// region of an example file, between "// README: begin" and
// "// README: end" lines, so that it compiles and runs; and every such
// region is in the README, so that neither goes stale without the other.
func TestReadmeSnippets(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	var snippets []string
	for _, m := range regexp.MustCompile("(?ms)^```(go|ts|typescript)\n(.*?)^```$").FindAllStringSubmatch(string(readme), -1) {
		snippets = append(snippets, strings.TrimRight(m[2], "\n"))
	}
	require.NotEmpty(t, snippets)

	regions := map[string]string{} // region → file
	for _, f := range exampleFiles {
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		rs := markedRegions(t, f, string(src))
		require.NotEmpty(t, rs, "%s has no README region", f)
		for _, r := range rs {
			regions[r] = f
		}
	}
	for _, s := range snippets {
		_, ok := regions[s]
		require.True(t, ok, "README snippet is not a README region of %v (edit the example, then paste it):\n%s", exampleFiles, s)
	}
	for r, f := range regions {
		require.Contains(t, snippets, r, "the README region of %s is not in README.md:\n%s", f, r)
	}
}

// markedRegions returns the regions of src between the markers, each
// dedented by the indentation its lines share.
func markedRegions(t *testing.T, file, src string) []string {
	t.Helper()
	var out []string
	var cur []string
	in := false
	for i, line := range strings.Split(src, "\n") {
		switch strings.TrimSpace(line) {
		case "// README: begin":
			require.False(t, in, "%s:%d: README: begin inside a region", file, i+1)
			in, cur = true, nil
		case "// README: end":
			require.True(t, in, "%s:%d: README: end outside a region", file, i+1)
			in = false
			out = append(out, dedent(cur))
		default:
			if in {
				cur = append(cur, line)
			}
		}
	}
	require.False(t, in, "%s: a region is not closed", file)
	return out
}

func dedent(lines []string) string {
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		if strings.TrimSpace(l) != "" {
			out[i] = l[indent:]
		}
	}
	return strings.Trim(strings.Join(out, "\n"), "\n")
}
