package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRun runs the example program and checks what it prints.
func TestRun(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	require.NoError(t, run(ctx, &out))
	require.Equal(t, `handled email.send: email to a@b, "hello"
report.ops fires next on a weekday at 09:00 Berlin time
cancelled report.ops
`, out.String())
}
