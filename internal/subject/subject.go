// Package subject holds the rules of NATS subjects, ID tokens and wire
// text that the root package, the JetStream scheduler, the router and the
// CLI share: one copy of each.
package subject

import (
	"strings"
	"unicode/utf8"
)

// Valid reports whether s is a subject: non-empty tokens separated by '.',
// no white space or control characters. With wildcards, a token may be
// "*" or, last, ">", and "*" and ">" may not appear inside a token; without,
// neither "*" nor ">" may be a token.
func Valid(s string, wildcards bool) bool {
	if s == "" {
		return false
	}
	for rest := s; ; {
		tok, tail, more := strings.Cut(rest, ".")
		switch {
		case tok == "":
			return false
		case tok == "*" || tok == ">":
			if !wildcards || tok == ">" && more {
				return false
			}
		case wildcards && strings.ContainsAny(tok, "*>"):
			return false
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; c <= ' ' || c == 0x7f {
				return false
			}
		}
		if !more {
			return true
		}
		rest = tail
	}
}

// Match reports whether pattern (with * for one token and > for one or
// more trailing tokens) covers subject: for a literal subject, whether it
// matches; for one with wildcards, whether pattern covers all it stands
// for (a stream filter capturing it). It does not allocate.
func Match(pattern, subject string) bool {
	for {
		p, prest, pmore := strings.Cut(pattern, ".")
		s, srest, smore := strings.Cut(subject, ".")
		switch {
		case p == ">":
			// Like "*", ">" matches no empty token: such subjects are
			// malformed, and NATS would not deliver them.
			return subject != "" && subject[0] != '.' && subject[len(subject)-1] != '.' &&
				!strings.Contains(subject, "..")
		case s == "" || s == ">":
			return false
		case p != "*" && p != s:
			return false
		}
		switch {
		case !pmore && !smore:
			return true
		case pmore != smore:
			return false
		}
		pattern, subject = prest, srest
	}
}

// ValidToken reports whether t is one non-empty token of [A-Za-z0-9_-],
// the characters of schedule IDs, prefixes and group names.
func ValidToken(t string) bool {
	if t == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		if !tokenByte(t[i]) {
			return false
		}
	}
	return true
}

func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// Cut shortens s to at most n bytes, on a rune boundary.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// OneLine collapses white space, line breaks included, to single spaces:
// error text for a header, which must be one line.
func OneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
