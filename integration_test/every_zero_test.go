package integration_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
)

// TestEveryZero: an interval of zero is given, not absent, so every way in
// reports it as a too short every, not as a missing at.
func TestEveryZero(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "every-zero", nil)
	const want = "every: must be at least 1ms, got 0s"

	t.Run("Go API", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), reqTimeout)
		defer cancel()
		body := []byte(`{"id":"zero.go","subject":"natsched.fire.zero","every":"0s"}`)
		sch, err := natsched.ParseSchedule(body, time.Now())
		require.NoError(t, err, "the parser reads it; Validate refuses it")
		_, err = d.sched.Put(ctx, sch)
		require.ErrorIs(t, err, natsched.ErrInvalid)
		var fe *natsched.FieldError
		require.ErrorAs(t, err, &fe)
		require.Equal(t, want, fe.Error())

		// The lenient decoder (stored values, json.Unmarshal) says the same.
		var lenient natsched.Schedule
		require.NoError(t, json.Unmarshal(body, &lenient))
		_, err = d.sched.Put(ctx, &lenient)
		require.ErrorAs(t, err, &fe)
		require.Equal(t, want, fe.Error())
	})

	t.Run("micro API", func(t *testing.T) {
		for _, every := range []string{"0s", "0", "0ms", "0d"} {
			m := d.api(t, "put", "zero.api", map[string]any{"subject": "natsched.fire.zero", "every": every})
			msg := apiError(t, m, 400, "every")
			require.Equal(t, "every: must be at least 1ms, got 0s", msg, "every %q", every)
		}
		// Given with another kind it is still a second kind.
		m := d.api(t, "put", "zero.api", map[string]any{"subject": "natsched.fire.zero", "every": "0s", "at": farFuture})
		require.Equal(t, "every: give exactly one of at, in, every and cron", apiError(t, m, 400, "every"))
		apiError(t, d.api(t, "get", "zero.api", nil), 404)
	})

	t.Run("intake", func(t *testing.T) {
		rejected := subscribe(t, d.nc, rejectedPrefix+".zero.intake")
		d.publishIntake(t, "zero.intake", nats.Header{
			"Natsched-Schedule": {"@every 0s"}, "Natsched-Target": {"natsched.fire.zero"},
		}, "")
		m := next(t, rejected, "rejected intake message")
		require.Equal(t, "Natsched-Schedule: must be at least 1ms, got 0s", m.Header.Get("Natsched-Error"))
		apiError(t, d.api(t, "get", "zero.intake", nil), 404)
	})
}
