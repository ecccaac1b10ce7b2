package jetstream

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
)

var accepted = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

func TestScheduleFromHeaders(t *testing.T) {
	for _, tc := range []struct {
		name  string
		h     nats.Header
		check func(t *testing.T, s *natsched.Schedule)
	}{
		{"at", nats.Header{"Natsched-Schedule": {"@at 2026-01-05T10:00:00.5+01:00"}, "Natsched-Target": {"t.x"}},
			func(t *testing.T, s *natsched.Schedule) {
				require.Equal(t, time.Date(2026, 1, 5, 9, 0, 0, 5e8, time.UTC), s.At)
			}},
		{"in from the message's timestamp", nats.Header{"Natsched-Schedule": {"@in 90s"}, "Natsched-Target": {"t.x"}},
			func(t *testing.T, s *natsched.Schedule) { require.Equal(t, accepted.Add(90*time.Second), s.At) }},
		{"every with options", nats.Header{"Natsched-Schedule": {"@every 1m"}, "Natsched-Target": {"t.x"},
			"Natsched-Max-Runs": {"3"}, "Natsched-Misfire": {"skip"}, "Natsched-Jitter": {"5s"},
			"Natsched-Start": {"2026-01-06T00:00:00Z"}, "Natsched-End": {"2026-01-07T00:00:00Z"}},
			func(t *testing.T, s *natsched.Schedule) {
				require.Equal(t, time.Minute, s.Every)
				require.EqualValues(t, 3, s.MaxRuns)
				require.Equal(t, natsched.MisfireSkip, s.Misfire)
				require.Equal(t, 5*time.Second, s.Jitter)
				require.Equal(t, time.Date(2026, 1, 6, 0, 0, 0, 0, time.UTC), s.Start)
			}},
		{"days in durations", nats.Header{"Natsched-Schedule": {"@every 1d12h"}, "Natsched-Target": {"t.x"},
			"Natsched-Jitter": {"0.5d"}, "Natsched-Catchup": {"2d"}},
			func(t *testing.T, s *natsched.Schedule) {
				require.Equal(t, 36*time.Hour, s.Every)
				require.Equal(t, 12*time.Hour, s.Jitter)
				require.Equal(t, 48*time.Hour, s.Catchup)
			}},
		{"in days", nats.Header{"Natsched-Schedule": {"@in 2d"}, "Natsched-Target": {"t.x"}},
			func(t *testing.T, s *natsched.Schedule) { require.Equal(t, accepted.Add(48*time.Hour), s.At) }},
		{"cron, zone, carried headers, any case", nats.Header{"natsched-schedule": {"0 9 * * MON-FRI"}, "NATSCHED-TARGET": {"t.x"},
			"Natsched-Time-Zone": {"Europe/Berlin"}, "X-Trace": {"abc"}, "Nats-Msg-Id": {"dropped"}},
			func(t *testing.T, s *natsched.Schedule) {
				require.Equal(t, "0 9 * * MON-FRI", s.Cron)
				require.Equal(t, "Europe/Berlin", s.TZ)
				require.Equal(t, nats.Header{"X-Trace": {"abc"}}, s.Header)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := scheduleFromHeaders("a.b", tc.h, []byte("body"), accepted)
			require.NoError(t, err)
			require.Equal(t, "a.b", s.ID)
			require.Equal(t, "t.x", s.Subject)
			require.Equal(t, []byte("body"), s.Data)
			tc.check(t, s)
		})
	}
}

func TestScheduleFromHeadersNamesTheHeader(t *testing.T) {
	base := func(kv ...string) nats.Header {
		h := nats.Header{"Natsched-Schedule": {"@in 1s"}, "Natsched-Target": {"t.x"}}
		for i := 0; i+1 < len(kv); i += 2 {
			h[kv[i]] = []string{kv[i+1]}
		}
		return h
	}
	for _, tc := range []struct {
		h      nats.Header
		header string
	}{
		{nats.Header{"Natsched-Target": {"t.x"}}, HeaderSchedule},
		{nats.Header{"Natsched-Schedule": {"@in 1s"}}, HeaderTarget},
		{base("Natsched-Schedule", "@at tomorrow"), HeaderSchedule},
		{base("Natsched-Schedule", "@in soon"), HeaderSchedule},
		{base("Natsched-Schedule", "@every -1s"), HeaderSchedule},
		{base("Natsched-Schedule", "* * *"), HeaderSchedule},
		{base("Natsched-Target", "a.*"), HeaderTarget},
		{base("Natsched-Max-Runs", "-1"), HeaderMaxRuns},
		{base("Natsched-Max-Runs", "x"), HeaderMaxRuns},
		{base("Natsched-Jitter", "1 s"), HeaderJitter},
		{base("Natsched-Start", "monday"), "Natsched-Start"},
		{base("Natsched-Paused", "perhaps"), HeaderPaused},
		{base("Natsched-Time-Zone", "Mars/Olympus"), HeaderTimeZone},
		{base("Natsched-Bogus", "1"), "Natsched-Bogus"},
	} {
		_, err := scheduleFromHeaders("a.b", tc.h, nil, accepted)
		var fe *natsched.FieldError
		require.True(t, errors.As(err, &fe), "%v: %v", tc.h, err)
		require.Equal(t, tc.header, fe.Field, "%v: %v", tc.h, err)
	}
}

// FuzzScheduleFromHeaders: whatever the headers, the parser returns a
// schedule that validates or an error naming a header; it never panics.
func FuzzScheduleFromHeaders(f *testing.F) {
	f.Add("@in 5m", "natsched.fire.x", "", "", "", "")
	f.Add("0 9 * * MON-FRI", "t.x", "Europe/Berlin", "3", "once", "2s")
	f.Add("@every 1ms", "t.x", "", "-1", "all", "1h")
	f.Add("@at 2026-01-01T00:00:00Z", "a b", "Local", "x", "sometimes", "-1s")
	f.Fuzz(func(t *testing.T, spec, target, tz, maxRuns, misfire, jitter string) {
		h := nats.Header{"Natsched-Schedule": {spec}, "Natsched-Target": {target}}
		for k, v := range map[string]string{HeaderTimeZone: tz, HeaderMaxRuns: maxRuns, HeaderMisfire: misfire, HeaderJitter: jitter} {
			if v != "" {
				h[k] = []string{v}
			}
		}
		s, err := scheduleFromHeaders("fuzz.id", h, nil, accepted)
		if err != nil {
			var fe *natsched.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("%v: not a field error: %v", h, err)
			}
			if !strings.HasPrefix(fe.Field, "Natsched-") && fe.Field != "header" && fe.Field != "body" {
				t.Fatalf("%v: error names %q, not a header", h, fe.Field)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("%v: accepted a schedule that does not validate: %v", h, err)
		}
	})
}
