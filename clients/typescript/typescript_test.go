// Package typescript_test runs the TypeScript client's tests (npm test:
// tsc, then node --test against a real natsched server) as part of go test,
// so that `go test ./...` covers the TypeScript client too.
package typescript_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"
)

// npmTimeout bounds npm ci and npm test each (the first go build of the
// daemon on a cold cache is the slow part).
const npmTimeout = 10 * time.Minute

// TestTypeScriptClient fails, rather than skips, when Node.js or npm is
// missing: set NATSCHED_SKIP_TS=1 to skip it on purpose.
func TestTypeScriptClient(t *testing.T) {
	if os.Getenv("NATSCHED_SKIP_TS") != "" {
		t.Skip("NATSCHED_SKIP_TS is set: the TypeScript client's tests are not run")
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: the TypeScript client's tests need Node.js 20+ and npm (NATSCHED_SKIP_TS=1 skips them): %v", tool, err)
		}
	}
	if stale() {
		npm(t, "ci", "--no-audit", "--no-fund")
	}
	out := npm(t, "test")
	for _, m := range regexp.MustCompile(`(?m)^# (tests|pass|fail|skipped) \d+$`).FindAll(out, -1) {
		t.Log(string(m))
	}
	if !regexp.MustCompile(`(?m)^# fail 0$`).Match(out) || regexp.MustCompile(`(?m)^# tests 0$`).Match(out) {
		t.Fatalf("npm test ran no test or reported failures:\n%s", out)
	}
}

// stale reports whether node_modules is missing or older than the lock
// file.
func stale() bool {
	installed, err := os.Stat("node_modules/.package-lock.json")
	if err != nil {
		return true
	}
	lock, err := os.Stat("package-lock.json")
	return err != nil || lock.ModTime().After(installed.ModTime())
}

func npm(t *testing.T, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), npmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("npm %v: %v\n%s", args, err, out.Bytes())
	}
	return out.Bytes()
}
