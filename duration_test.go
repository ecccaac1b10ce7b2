package natsched_test

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
)

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"2d", 48 * time.Hour},
		{"1d12h", 36 * time.Hour},
		{"1.5d", 36 * time.Hour},
		{"12h1d", 36 * time.Hour},
		{"1d1d", 48 * time.Hour},
		{"0d", 0},
		{".5d", 12 * time.Hour},
		{"7d", 168 * time.Hour},
		{"1d2h3m4s5ms6us7ns", 26*time.Hour + 3*time.Minute + 4*time.Second + 5*time.Millisecond + 6*time.Microsecond + 7},
		{"1d1µs", 24*time.Hour + time.Microsecond},
		{"-1d", -24 * time.Hour},
		{"+1d", 24 * time.Hour},
		{"106751d", 106751 * 24 * time.Hour},
		// Go syntax, unchanged.
		{"90s", 90 * time.Second},
		{"1h30m", 90 * time.Minute},
		{"250ms", 250 * time.Millisecond},
		{"0", 0},
		{"-1.5h", -90 * time.Minute},
	} {
		got, err := natsched.ParseDuration(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
	for _, bad := range []string{
		"", "d", "-", "-d", "1", "1dd", "1 d", "1d ", "d1", "1d2", "0d0", "1d-2h", "1D", "1day", "1.d.5",
		".d", "1d.", "5 minutes", "106752d", "106751d24h", "9223372036854775807d",
		strings.Repeat("1d", 200000),
	} {
		_, err := natsched.ParseDuration(bad)
		require.ErrorIs(t, err, natsched.ErrDuration, "%q", natsched.Truncate(bad))
	}
}

func TestParseFieldDuration(t *testing.T) {
	d, err := natsched.ParseFieldDuration("jitter", "1d")
	require.NoError(t, err)
	require.Equal(t, 24*time.Hour, d)

	_, err = natsched.ParseFieldDuration("jitter", "-1d")
	require.EqualError(t, err, "jitter: must not be negative, got -1d")
	_, err = natsched.ParseFieldDuration("every", "2 days")
	require.EqualError(t, err, `every: bad duration "2 days" (use Go syntax such as "90s" or "1h30m", and "d" for days: "2d")`)
	var fe *natsched.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "every", fe.Field)
}

// Days go wherever a duration goes in the JSON form: in, every, catchup
// and jitter; replies write them back in Go syntax.
func TestScheduleJSONDays(t *testing.T) {
	accepted := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	s, err := natsched.ParseSchedule([]byte(`{"id":"a","subject":"b","in":"2d"}`), accepted)
	require.NoError(t, err)
	require.Equal(t, accepted.Add(48*time.Hour), s.At)

	s, err = natsched.ParseSchedule([]byte(`{"id":"a","subject":"b","every":"1d12h","catchup":"7d","jitter":"0.5d","misfire":"all"}`), accepted)
	require.NoError(t, err)
	require.NoError(t, s.Validate())
	require.Equal(t, 36*time.Hour, s.Every)
	require.Equal(t, 7*24*time.Hour, s.Catchup)
	require.Equal(t, 12*time.Hour, s.Jitter)
	b, err := s.MarshalJSON()
	require.NoError(t, err)
	require.Contains(t, string(b), `"every":"36h0m0s"`)

	// The lenient decoder of stored values reads days too.
	var stored natsched.Schedule
	require.NoError(t, stored.UnmarshalJSON([]byte(`{"id":"a","subject":"b","every":"1d"}`)))
	require.Equal(t, 24*time.Hour, stored.Every)

	// A zero interval in days is still a given, too short, every.
	s, err = natsched.ParseSchedule([]byte(`{"id":"a","subject":"b","every":"0d"}`), accepted)
	require.NoError(t, err)
	var fe *natsched.FieldError
	require.ErrorAs(t, s.Validate(), &fe)
	require.Equal(t, "every: must be at least 1ms, got 0s", fe.Error())

	_, err = natsched.ParseSchedule([]byte(`{"id":"a","subject":"b","every":"1 day"}`), accepted)
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "every", fe.Field)
}

// FuzzParseDuration: never panics; without "d" it is time.ParseDuration;
// with it, a result is well-formed Go syntax once days are hours (the same
// terms, each day 24 of them) and reads back from its String.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"2d", "1d12h", "1.5d", "-1d", "0d", "90s", "1h30m", "0", "1d2", "d", "1dd",
		"106751d", ".5d1µs", "1d1d1d", "+0.000000001d", "9223372036854775807ns"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := natsched.ParseDuration(s)
		if err != nil && !errors.Is(err, natsched.ErrDuration) {
			t.Fatalf("%q: error %v does not wrap ErrDuration", s, err)
		}
		if !strings.Contains(s, "d") {
			want, werr := time.ParseDuration(s)
			if (err == nil) != (werr == nil) || got != want {
				t.Fatalf("%q: got %v, %v; time.ParseDuration says %v, %v", s, got, err, want, werr)
			}
			return
		}
		if err != nil {
			return
		}
		hours, herr := time.ParseDuration(strings.ReplaceAll(s, "d", "h"))
		if herr != nil {
			t.Fatalf("%q parses (%v) but not with hours for days: %v", s, got, herr)
		}
		// Each day counts 24 times what an hour does, so |days| >= |hours|.
		if abs(got) < abs(hours) {
			t.Fatalf("%q = %v, less than %v with hours for days", s, got, hours)
		}
		back, err := natsched.ParseDuration(got.String())
		if err != nil || back != got {
			t.Fatalf("%q = %v does not read back: %v, %v", s, got, back, err)
		}
	})
}

// FuzzDaysTerm: n days followed by a Go duration r is n*24h + r.
func FuzzDaysTerm(f *testing.F) {
	f.Add(uint16(2), "")
	f.Add(uint16(1), "12h")
	f.Add(uint16(0), "1.5s")
	f.Fuzz(func(t *testing.T, n uint16, r string) {
		if strings.ContainsAny(r, "d+-") {
			return
		}
		rest, err := time.ParseDuration("0s" + r)
		if r != "" && err != nil {
			return
		}
		days := time.Duration(n) * 24 * time.Hour
		if rest > math.MaxInt64-days {
			return
		}
		s := strconv.Itoa(int(n)) + "d" + r
		got, err := natsched.ParseDuration(s)
		want := days + rest
		if err != nil || got != want {
			t.Fatalf("%q: got %v, %v; want %v", s, got, err, want)
		}
	})
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		if d == math.MinInt64 {
			return math.MaxInt64
		}
		return -d
	}
	return d
}
