package jetstream

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
)

// TestFiredHeaderSlackBoundsNatschedHeaders: the fast path of checkFired
// is only sound if natsched's headers never take more than the slack
// beyond twice the ID, the type and the tracestate.
func TestFiredHeaderSlackBoundsNatschedHeaders(t *testing.T) {
	for _, sch := range []*natsched.Schedule{
		{ID: "a", Subject: "x"},
		{ID: strings.Repeat("i", 200), Subject: "x", Type: strings.Repeat("t", 300), Jitter: 99999 * time.Hour,
			TraceState: "k=" + strings.Repeat("v", 200), TraceParent: "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"},
	} {
		natschedOnly := natsched.FiredHeaderBytes(&natsched.Schedule{ID: sch.ID, Subject: sch.Subject, Type: sch.Type,
			Jitter: sch.Jitter, TraceState: sch.TraceState, TraceParent: sch.TraceParent}) - natsched.HeaderBytes(nats.Header{})
		require.LessOrEqual(t, natschedOnly, firedHeaderSlack+2*len(sch.ID)+len(sch.Type)+len(sch.TraceState))
	}
}
