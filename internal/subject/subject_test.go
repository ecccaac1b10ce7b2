package subject

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		s         string
		lit, wild bool
	}{
		{"a", true, true}, {"a.b.c", true, true}, {"a*b", true, false}, {"$KV.x", true, true},
		{"a.*", false, true}, {"a.>", false, true}, {">", false, true}, {"a.>.b", false, false},
		{"", false, false}, {"a..b", false, false}, {".a", false, false}, {"a.", false, false},
		{"a b", false, false}, {"a\tb", false, false}, {"a\x00", false, false}, {"a.x>", true, false},
	} {
		require.Equal(t, tc.lit, Valid(tc.s, false), "literal %q", tc.s)
		require.Equal(t, tc.wild, Valid(tc.s, true), "pattern %q", tc.s)
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, subject string
		want             bool
	}{
		{"a.b", "a.b", true}, {"a.b", "a.c", false}, {"a.*", "a.b", true}, {"a.*", "a.b.c", false},
		{"a.>", "a.b.c", true}, {"a.>", "a", false}, {">", "a", true}, {"*", "a.b", false},
		{"a.>", "a.>", true}, {"a.>", "a.*", true}, {"a.*", "a.>", false}, {"a.*", "a.*", true},
		{"a.b", "a.*", false}, {"a", "a.b", false}, {"a.b.c", "a.b", false},
	} {
		require.Equal(t, tc.want, Match(tc.pattern, tc.subject), "%q ~ %q", tc.pattern, tc.subject)
	}
	require.Zero(t, testing.AllocsPerRun(100, func() { Match("a.*.>", "a.b.c.d") }))
}

func TestTokenAndText(t *testing.T) {
	require.True(t, ValidToken("a-B_9"))
	require.False(t, ValidToken(""))
	require.False(t, ValidToken("a.b"))
	require.Equal(t, "ab", Cut("abc", 2))
	require.Equal(t, "a", Cut("aé", 2), "never half a rune")
	require.Equal(t, "a b c", OneLine("a\r\n b\tc "))
	require.Equal(t, strings.Repeat("x", 5), Cut(strings.Repeat("x", 9), 5))
}

func FuzzValidAndMatch(f *testing.F) {
	f.Add("a.b", "a.*")
	f.Add(">", "a..b")
	f.Fuzz(func(t *testing.T, s, p string) {
		lit, wild := Valid(s, false), Valid(s, true)
		if lit && !wild && !strings.ContainsAny(s, "*>") {
			t.Fatalf("%q is a literal but not a pattern", s)
		}
		if Valid(p, true) && lit {
			_ = Match(p, s) // never panics
		}
		if lit && !Match(s, s) {
			t.Fatalf("%q does not match itself", s)
		}
	})
}
