package natsched_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
)

// Top-level names in this package are shared with other test files, hence
// the spec prefix.
//
// Every expected instant below is worked out by hand and written in UTC.
// Calendar facts used (checked in TestSpecCalendarFacts): 1 Jan 2026 is a
// Thursday; 2026 months start Thu Jan, Sun Feb, Sun Mar, Wed Apr, Fri May,
// Mon Jun, Wed Jul, Sat Aug, Tue Sep, Thu Oct, Sun Nov, Tue Dec.

// specT0 is Thursday 1 January 2026, 00:00:00 UTC.
var specT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// specZero in a want list means "Next returns the zero time here".
var specZero time.Time

func specU(y int, mo time.Month, d, h, mi, s int) time.Time {
	return time.Date(y, mo, d, h, mi, s, 0, time.UTC)
}

// spec26 is an instant in 2026, UTC.
func spec26(mo time.Month, d, h, mi, s int) time.Time { return specU(2026, mo, d, h, mi, s) }

func specLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

func specParse(t testing.TB, expr, tz string) *natsched.Cron {
	t.Helper()
	c, err := natsched.ParseCron(expr, tz)
	require.NoError(t, err, "ParseCron(%q, %q)", expr, tz)
	require.NotNil(t, c)
	return c
}

// specSeq calls Next n times, each from the previous result, stopping after
// the first zero.
func specSeq(c *natsched.Cron, from time.Time, n int) []time.Time {
	var out []time.Time
	cur := from
	for range n {
		nx := c.Next(cur)
		out = append(out, nx)
		if nx.IsZero() {
			break
		}
		cur = nx
	}
	return out
}

func specFmt(ts []time.Time) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		if t.IsZero() {
			out[i] = "zero"
		} else {
			out[i] = t.UTC().Format(time.RFC3339Nano)
		}
	}
	return out
}

// specRequireSeq asserts that Next iterated from `from` yields exactly want.
func specRequireSeq(t *testing.T, c *natsched.Cron, from time.Time, want []time.Time) {
	t.Helper()
	got := specSeq(c, from, len(want))
	require.Equal(t, specFmt(want), specFmt(got), "%q in %s from %s", c.String(), c.Location(), from.UTC().Format(time.RFC3339Nano))
}

type specSeqCase struct {
	name string
	expr string
	tz   string
	from time.Time // zero means specT0
	want []time.Time
}

func specRunSeqCases(t *testing.T, cases []specSeqCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := specParse(t, tc.expr, tc.tz)
			from := tc.from
			if from.IsZero() {
				from = specT0
			}
			specRequireSeq(t, c, from, tc.want)
		})
	}
}

// TestSpecCalendarFacts pins the calendar facts the hand-computed tables rely
// on, using only the time package.
func TestSpecCalendarFacts(t *testing.T) {
	t.Parallel()
	firsts := []time.Weekday{time.Thursday, time.Sunday, time.Sunday, time.Wednesday, time.Friday, time.Monday,
		time.Wednesday, time.Saturday, time.Tuesday, time.Thursday, time.Sunday, time.Tuesday}
	for i, wd := range firsts {
		require.Equal(t, wd, time.Date(2026, time.Month(i+1), 1, 0, 0, 0, 0, time.UTC).Weekday(), "1 %s 2026", time.Month(i+1))
	}
	require.Equal(t, time.Saturday, spec26(time.January, 31, 0, 0, 0).Weekday())
	require.Equal(t, time.Saturday, spec26(time.February, 28, 0, 0, 0).Weekday())
	require.Equal(t, time.Sunday, spec26(time.May, 31, 0, 0, 0).Weekday())
	require.Equal(t, time.Friday, spec26(time.February, 13, 0, 0, 0).Weekday())
	require.Equal(t, 29, time.Date(2028, time.March, 0, 0, 0, 0, 0, time.UTC).Day(), "2028 is a leap year")
	require.Equal(t, 28, time.Date(2027, time.March, 0, 0, 0, 0, 0, time.UTC).Day())
}

// TestSpecCronForms covers field counts (5; 6 read seconds first; 7 with a
// year), macros, names, ?, lists, steps, ranges and 7 for Sunday.
func TestSpecCronForms(t *testing.T) {
	t.Parallel()
	jan := func(d, h, mi, s int) time.Time { return spec26(time.January, d, h, mi, s) }
	noon := func(mo time.Month, d int) time.Time { return spec26(mo, d, 12, 0, 0) }
	specRunSeqCases(t, []specSeqCase{
		{name: "5 fields", expr: "0 9 * * *", want: []time.Time{jan(1, 9, 0, 0), jan(2, 9, 0, 0), jan(3, 9, 0, 0)}},
		// 6 fields are seconds first: 09:00:30 daily, not minute 30 / hour 0 / year.
		{name: "6 fields seconds first", expr: "30 0 9 * * *", want: []time.Time{jan(1, 9, 0, 30), jan(2, 9, 0, 30), jan(3, 9, 0, 30)}},
		{name: "6 fields every 20 seconds", expr: "*/20 * * * * *", want: []time.Time{jan(1, 0, 0, 20), jan(1, 0, 0, 40), jan(1, 0, 1, 0)}},
		{name: "6 fields seconds list", expr: "0,30 15 10 * * *", want: []time.Time{jan(1, 10, 15, 0), jan(1, 10, 15, 30), jan(2, 10, 15, 0)}},
		{name: "6 fields seconds range step", expr: "10-40/15 0 0 * * *", want: []time.Time{jan(1, 0, 0, 10), jan(1, 0, 0, 25), jan(1, 0, 0, 40), jan(2, 0, 0, 10)}},
		{name: "7 fields with year", expr: "0 30 9 * * * 2027", want: []time.Time{specU(2027, 1, 1, 9, 30, 0), specU(2027, 1, 2, 9, 30, 0)}},
		{name: "7 fields year list then none", expr: "15 30 9 1 1 * 2027,2029", want: []time.Time{specU(2027, 1, 1, 9, 30, 15), specU(2029, 1, 1, 9, 30, 15), specZero}},
		{name: "7 fields ends at 2099", expr: "0 0 0 31 12 * 2098-2099", want: []time.Time{specU(2098, 12, 31, 0, 0, 0), specU(2099, 12, 31, 0, 0, 0), specZero}},
		{name: "7 fields seconds step and ?", expr: "0-10/5 0 0 1 1 ? 2030", want: []time.Time{specU(2030, 1, 1, 0, 0, 0), specU(2030, 1, 1, 0, 0, 5), specU(2030, 1, 1, 0, 0, 10), specZero}},
		{name: "7 fields year in the past", expr: "0 0 0 1 1 * 2025", want: []time.Time{specZero}},
		{name: "@yearly", expr: "@yearly", want: []time.Time{specU(2027, 1, 1, 0, 0, 0), specU(2028, 1, 1, 0, 0, 0)}},
		{name: "@annually", expr: "@annually", want: []time.Time{specU(2027, 1, 1, 0, 0, 0), specU(2028, 1, 1, 0, 0, 0)}},
		{name: "@monthly", expr: "@monthly", want: []time.Time{spec26(2, 1, 0, 0, 0), spec26(3, 1, 0, 0, 0)}},
		{name: "@weekly is Sunday midnight", expr: "@weekly", want: []time.Time{jan(4, 0, 0, 0), jan(11, 0, 0, 0)}},
		{name: "@daily", expr: "@daily", want: []time.Time{jan(2, 0, 0, 0), jan(3, 0, 0, 0)}},
		{name: "@midnight", expr: "@midnight", want: []time.Time{jan(2, 0, 0, 0), jan(3, 0, 0, 0)}},
		{name: "@hourly", expr: "@hourly", want: []time.Time{jan(1, 1, 0, 0), jan(1, 2, 0, 0)}},
		{name: "3-letter names mixed case", expr: "0 12 * JAN,mar Mon", want: []time.Time{noon(1, 5), noon(1, 12), noon(1, 19), noon(1, 26), noon(3, 2)}},
		{name: "full names", expr: "0 12 * February Tuesday", want: []time.Time{noon(2, 3), noon(2, 10)}},
		{name: "full names upper case", expr: "0 12 * FEBRUARY TUESDAY", want: []time.Time{noon(2, 3), noon(2, 10)}},
		{name: "full names lower case", expr: "0 12 * february tuesday", want: []time.Time{noon(2, 3), noon(2, 10)}},
		{name: "name range", expr: "0 12 * * mon-wed", want: []time.Time{noon(1, 5), noon(1, 6), noon(1, 7), noon(1, 12)}},
		{name: "month name range", expr: "0 0 1 oct-dec *", want: []time.Time{spec26(10, 1, 0, 0, 0), spec26(11, 1, 0, 0, 0), spec26(12, 1, 0, 0, 0), specU(2027, 10, 1, 0, 0, 0)}},
		{name: "? as day of month", expr: "0 12 ? * WED", want: []time.Time{noon(1, 7), noon(1, 14)}},
		{name: "? as day of week", expr: "0 12 15 * ?", want: []time.Time{noon(1, 15), noon(2, 15)}},
		{name: "hour list", expr: "0 6,18 * * *", want: []time.Time{jan(1, 6, 0, 0), jan(1, 18, 0, 0), jan(2, 6, 0, 0)}},
		{name: "hour range", expr: "0 22-23 * * *", want: []time.Time{jan(1, 22, 0, 0), jan(1, 23, 0, 0), jan(2, 22, 0, 0)}},
		{name: "step */15", expr: "*/15 * * * *", want: []time.Time{jan(1, 0, 15, 0), jan(1, 0, 30, 0), jan(1, 0, 45, 0), jan(1, 1, 0, 0)}},
		{name: "step 5/15", expr: "5/15 * * * *", want: []time.Time{jan(1, 0, 5, 0), jan(1, 0, 20, 0), jan(1, 0, 35, 0), jan(1, 0, 50, 0), jan(1, 1, 5, 0)}},
		{name: "step 10-40/10", expr: "10-40/10 1 * * *", want: []time.Time{jan(1, 1, 10, 0), jan(1, 1, 20, 0), jan(1, 1, 30, 0), jan(1, 1, 40, 0), jan(2, 1, 10, 0)}},
		{name: "month step", expr: "0 0 1 */3 *", want: []time.Time{spec26(4, 1, 0, 0, 0), spec26(7, 1, 0, 0, 0), spec26(10, 1, 0, 0, 0), specU(2027, 1, 1, 0, 0, 0)}},
		{name: "7 is Sunday", expr: "0 12 * * 7", want: []time.Time{noon(1, 4), noon(1, 11)}},
		{name: "0 is Sunday", expr: "0 12 * * 0", want: []time.Time{noon(1, 4), noon(1, 11)}},
		{name: "range 5-7 is Fri Sat Sun", expr: "0 12 * * 5-7", want: []time.Time{noon(1, 2), noon(1, 3), noon(1, 4), noon(1, 9)}},
		{name: "range 6-7", expr: "0 12 * * 6-7", want: []time.Time{noon(1, 3), noon(1, 4), noon(1, 10)}},
		{name: "list with 7", expr: "0 12 * * 1,7", want: []time.Time{noon(1, 4), noon(1, 5), noon(1, 11)}},
		{name: "range 1-7 step 2", expr: "0 12 * * 1-7/2", want: []time.Time{noon(1, 2), noon(1, 4), noon(1, 5), noon(1, 7)}},
		{name: "leading zeros", expr: "00 09 01 01 *", want: []time.Time{jan(1, 9, 0, 0), specU(2027, 1, 1, 9, 0, 0)}},
		{name: "extra whitespace and tabs", expr: " 0\t9  * * * ", want: []time.Time{jan(1, 9, 0, 0)}},
		{name: "leap day", expr: "0 0 29 2 *", want: []time.Time{specU(2028, 2, 29, 0, 0, 0), specU(2032, 2, 29, 0, 0, 0)}},
		{name: "30 February never fires", expr: "0 0 30 2 *", want: []time.Time{specZero}},
		{name: "31 April never fires", expr: "0 0 31 4 *", want: []time.Time{specZero}},
		{name: "tz default is UTC", expr: "0 9 * * *", tz: "", want: []time.Time{jan(1, 9, 0, 0)}},
		{name: "tz explicit UTC", expr: "0 9 * * *", tz: "UTC", want: []time.Time{jan(1, 9, 0, 0)}},
		// 09:00 JST on 1 Jan is exactly specT0, so strictly after means the 2nd.
		{name: "tz Tokyo", expr: "0 9 * * *", tz: "Asia/Tokyo", want: []time.Time{jan(2, 0, 0, 0), jan(3, 0, 0, 0)}},
		{name: "tz New York", expr: "0 9 * * *", tz: "America/New_York", want: []time.Time{jan(1, 14, 0, 0), jan(2, 14, 0, 0)}},
		{name: "tz Kolkata", expr: "0 0 * * *", tz: "Asia/Kolkata", want: []time.Time{jan(1, 18, 30, 0), jan(2, 18, 30, 0)}},
		{name: "7 fields in zone", expr: "0 30 0 1 1 * 2027", tz: "Asia/Tokyo", want: []time.Time{specU(2026, 12, 31, 15, 30, 0), specZero}},
	})
}

// TestSpecCronStrictlyAfter pins "strictly after" at sub-second resolution.
func TestSpecCronStrictlyAfter(t *testing.T) {
	t.Parallel()
	at := spec26(time.January, 1, 9, 0, 30)
	for _, tc := range []struct {
		name string
		from time.Time
		want time.Time
	}{
		{"half a second before", at.Add(-500 * time.Millisecond), at},
		{"a nanosecond before", at.Add(-time.Nanosecond), at},
		{"exactly at", at, at.AddDate(0, 0, 1)},
		{"a nanosecond after", at.Add(time.Nanosecond), at.AddDate(0, 0, 1)},
		{"in another zone, exactly at", at.In(specLoc(t, "Asia/Tokyo")), at.AddDate(0, 0, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := specParse(t, "30 0 9 * * *", "")
			got := c.Next(tc.from)
			require.True(t, tc.want.Equal(got), "want %s got %s", tc.want, got)
		})
	}
}

// TestSpecCronNextZeroTime: the zero time is an instant like any other; an
// every-minute expression has occurrences after it.
func TestSpecCronNextZeroTime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		tz string
	}{
		{tz: "Europe/Berlin"},
		{tz: ""},
	} {
		t.Run("tz="+tc.tz, func(t *testing.T) {
			t.Parallel()
			c := specParse(t, "* * * * *", tc.tz)
			got := c.Next(time.Time{})
			require.False(t, got.IsZero(), "Next(zero time) returned the zero time")
			require.True(t, got.After(time.Time{}))
		})
	}
}

// TestSpecCronSpecialDays covers L, LW, nW, nL, n#k.
func TestSpecCronSpecialDays(t *testing.T) {
	t.Parallel()
	d := func(mo time.Month, day int) time.Time { return spec26(mo, day, 0, 0, 0) }
	specRunSeqCases(t, []specSeqCase{
		{name: "L", expr: "0 0 L * *", want: []time.Time{d(1, 31), d(2, 28), d(3, 31), d(4, 30)}},
		{name: "L in February, leap and not", expr: "0 0 L 2 *", want: []time.Time{d(2, 28), specU(2027, 2, 28, 0, 0, 0), specU(2028, 2, 29, 0, 0, 0), specU(2029, 2, 28, 0, 0, 0)}},
		{name: "L with a list", expr: "0 0 L,15 * *", want: []time.Time{d(1, 15), d(1, 31), d(2, 15), d(2, 28)}},
		// Jan 31 Sat -> Fri 30; Feb 28 Sat -> Fri 27; Mar 31 Tue; Apr 30 Thu; May 31 Sun -> Fri 29.
		{name: "LW", expr: "0 0 LW * *", want: []time.Time{d(1, 30), d(2, 27), d(3, 31), d(4, 30), d(5, 29)}},
		// 15th: Jan Thu; Feb Sun -> Mon 16; Mar Sun -> Mon 16; Apr Wed; May Fri; Jun Mon; Jul Wed; Aug Sat -> Fri 14.
		{name: "15W", expr: "0 0 15W * *", want: []time.Time{d(1, 15), d(2, 16), d(3, 16), d(4, 15), d(5, 15), d(6, 15), d(7, 15), d(8, 14)}},
		// Aug 1 is a Saturday: Friday would be in July, so Monday 3rd. Nov 1 is a Sunday: Monday 2nd.
		{name: "1W on Saturday and Sunday", expr: "0 0 1W 8,11 *", want: []time.Time{d(8, 3), d(11, 2)}},
		{name: "1W on a weekday", expr: "0 0 1W 4 *", want: []time.Time{d(4, 1)}},
		// May 31 is a Sunday: Monday would be in June, so Friday 29th.
		{name: "31W on Sunday at month end", expr: "0 0 31W 5 *", want: []time.Time{d(5, 29)}},
		{name: "31W on Saturday", expr: "0 0 31W 1 *", want: []time.Time{d(1, 30)}},
		{name: "5L last Friday", expr: "0 0 * * 5L", want: []time.Time{d(1, 30), d(2, 27), d(3, 27)}},
		{name: "7L last Sunday", expr: "0 0 * * 7L", want: []time.Time{d(1, 25), d(2, 22), d(3, 29)}},
		{name: "5#3 third Friday", expr: "0 0 * * 5#3", want: []time.Time{d(1, 16), d(2, 20), d(3, 20)}},
		{name: "FRI#3", expr: "0 0 * * FRI#3", want: []time.Time{d(1, 16), d(2, 20), d(3, 20)}},
		{name: "fri#3", expr: "0 0 * * fri#3", want: []time.Time{d(1, 16), d(2, 20), d(3, 20)}},
		{name: "7#1 first Sunday", expr: "0 0 * * 7#1", want: []time.Time{d(1, 4), d(2, 1), d(3, 1)}},
		// Fifth Fridays in 2026: Jan 30, May 29, Jul 31; Feb-Apr and Jun have none.
		{name: "5#5 skips months without a fifth Friday", expr: "0 0 * * 5#5", want: []time.Time{d(1, 30), d(5, 29), d(7, 31)}},
	})
}

// TestSpecCronDomDowOr: when both day fields are restricted, either matches.
func TestSpecCronDomDowOr(t *testing.T) {
	t.Parallel()
	j := func(day int) time.Time { return spec26(time.January, day, 0, 0, 0) }
	f := func(day int) time.Time { return spec26(time.February, day, 0, 0, 0) }
	specRunSeqCases(t, []specSeqCase{
		{name: "13th or Friday", expr: "0 0 13 * FRI", want: []time.Time{j(2), j(9), j(13), j(16), j(23), j(30), f(6), f(13), f(20)}},
		{name: "*/2 day of month is restricted", expr: "0 0 */2 * MON", want: []time.Time{j(3), j(5), j(7), j(9), j(11), j(12), j(13), j(15)}},
		{name: "*/2 day of week is restricted", expr: "0 0 13 * */2", from: f(10), want: []time.Time{f(12), f(13), f(14), f(15), f(17)}},
		{name: "1-31 is restricted", expr: "0 0 1-31 * MON", want: []time.Time{j(2), j(3), j(4), j(5)}},
		{name: "L or Monday", expr: "0 0 L * MON", want: []time.Time{j(5), j(12), j(19), j(26), j(31), f(2)}},
		{name: "* day of month: Fridays only", expr: "0 0 * * FRI", want: []time.Time{j(2), j(9), j(16)}},
		{name: "? day of month: Fridays only", expr: "0 0 ? * FRI", want: []time.Time{j(2), j(9), j(16)}},
		{name: "* day of week: 13th only", expr: "0 0 13 * *", want: []time.Time{j(13), f(13)}},
		{name: "? day of week: 13th only", expr: "0 0 13 * ?", want: []time.Time{j(13), f(13)}},
	})
}

// TestSpecCronFixedTime pins the Vixie rule: fixed when neither minute nor
// hour starts with * or ?; seconds play no part; macros as expanded.
func TestSpecCronFixedTime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		expr  string
		fixed bool
	}{
		{"30 2 * * *", true},
		{"0 0 * * *", true},
		{"5/15 2 * * *", true},
		{"0-59 0-23 * * *", true},
		{"0 2,3 * * *", true},
		{"5,* 2 * * *", true}, // does not start with *
		{"*/5 2 * * *", false},
		{"0 * * * *", false},
		{"* 2 * * *", false},
		{"0 */2 * * *", false},
		{"0 ? * * *", false},
		{"? 0 * * *", false},
		{"*,5 2 * * *", false},
		{"*/10 30 2 * * *", true}, // seconds wildcard does not matter
		{"30 30 2 * * *", true},
		{"30 * 2 * * *", false},
		{"0 30 * * * *", false},
		{"* 30 2 * * * 2027", true},
		{"0 * 2 * * * *", false},
		{"@yearly", true},
		{"@annually", true},
		{"@monthly", true},
		{"@weekly", true},
		{"@daily", true},
		{"@midnight", true},
		{"@hourly", false},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			t.Parallel()
			c := specParse(t, tc.expr, "Europe/Berlin")
			require.Equal(t, tc.fixed, c.FixedTime())
		})
	}
}

type specTransition struct {
	zone       string
	at         time.Time // the instant of the change, UTC
	before     int       // offset in seconds just before
	after      int       // offset in seconds from `at` on
	wallBefore string    // local wall clock a nanosecond before, "15:04"
	wallAfter  string    // local wall clock at `at`
}

// The 2026 transitions the DST tables rely on.
var specTransitions = []specTransition{
	{"Europe/Berlin", spec26(time.March, 29, 1, 0, 0), 3600, 7200, "01:59", "03:00"},
	{"Europe/Berlin", spec26(time.October, 25, 1, 0, 0), 7200, 3600, "02:59", "02:00"},
	{"America/New_York", spec26(time.March, 8, 7, 0, 0), -5 * 3600, -4 * 3600, "01:59", "03:00"},
	{"America/New_York", spec26(time.November, 1, 6, 0, 0), -4 * 3600, -5 * 3600, "01:59", "01:00"},
	{"Australia/Lord_Howe", spec26(time.April, 4, 15, 0, 0), 11 * 3600, 10*3600 + 1800, "01:59", "01:30"},
	{"Australia/Lord_Howe", spec26(time.October, 3, 15, 30, 0), 10*3600 + 1800, 11 * 3600, "01:59", "02:30"},
}

// specCheckTransitions verifies the transition facts with the time package.
func specCheckTransitions(t *testing.T) {
	t.Helper()
	for _, tr := range specTransitions {
		loc := specLoc(t, tr.zone)
		start, _ := tr.at.In(loc).ZoneBounds()
		require.True(t, start.Equal(tr.at), "%s: zone period starts at %s, want %s", tr.zone, start.UTC(), tr.at)
		_, offB := tr.at.Add(-time.Nanosecond).In(loc).Zone()
		_, offA := tr.at.In(loc).Zone()
		require.Equal(t, tr.before, offB, tr.zone)
		require.Equal(t, tr.after, offA, tr.zone)
		require.Equal(t, tr.wallBefore, tr.at.Add(-time.Nanosecond).In(loc).Format("15:04"), tr.zone)
		require.Equal(t, tr.wallAfter, tr.at.In(loc).Format("15:04"), tr.zone)
		require.Equal(t, time.Sunday, tr.at.In(loc).Weekday(), tr.zone)
	}
}

func TestSpecDSTZoneFacts(t *testing.T) {
	t.Parallel()
	specCheckTransitions(t)
}

// TestSpecDST: fixed-time expressions fire a skipped wall time once at the end
// of the gap and a repeated wall time once, at its first pass; other
// expressions fire at each real instant whose wall time matches.
func TestSpecDST(t *testing.T) {
	t.Parallel()
	specCheckTransitions(t)
	const (
		ber = "Europe/Berlin"
		nyc = "America/New_York"
		lhi = "Australia/Lord_Howe"
	)
	m, o, n, a := time.March, time.October, time.November, time.April
	u := spec26
	specRunSeqCases(t, []specSeqCase{
		// Berlin, spring forward Sun 29 Mar 2026 01:00Z: 02:00 CET -> 03:00 CEST.
		{name: "Berlin spring fixed in gap", expr: "30 2 * * *", tz: ber, from: u(m, 27, 12, 0, 0),
			want: []time.Time{u(m, 28, 1, 30, 0), u(m, 29, 1, 0, 0), u(m, 30, 0, 30, 0)}},
		{name: "Berlin spring several in gap fire once", expr: "0,15,30,45 2 * * *", tz: ber, from: u(m, 28, 12, 0, 0),
			want: []time.Time{u(m, 29, 1, 0, 0), u(m, 30, 0, 0, 0), u(m, 30, 0, 15, 0), u(m, 30, 0, 30, 0), u(m, 30, 0, 45, 0), u(m, 31, 0, 0, 0)}},
		{name: "Berlin spring gap end is itself an occurrence", expr: "0 2,3 * * *", tz: ber, from: u(m, 28, 12, 0, 0),
			want: []time.Time{u(m, 29, 1, 0, 0), u(m, 30, 0, 0, 0), u(m, 30, 1, 0, 0)}},
		{name: "Berlin spring 03:00 just after the gap", expr: "0 3 * * *", tz: ber, from: u(m, 28, 12, 0, 0),
			want: []time.Time{u(m, 29, 1, 0, 0), u(m, 30, 1, 0, 0)}},
		{name: "Berlin spring 6-field fixed with seconds", expr: "30 30 2 * * *", tz: ber, from: u(m, 28, 12, 0, 0),
			want: []time.Time{u(m, 29, 1, 0, 0), u(m, 30, 0, 30, 30)}},
		{name: "Berlin spring hourly", expr: "0 * * * *", tz: ber, from: u(m, 28, 22, 30, 0),
			want: []time.Time{u(m, 28, 23, 0, 0), u(m, 29, 0, 0, 0), u(m, 29, 1, 0, 0), u(m, 29, 2, 0, 0)}},
		{name: "Berlin spring half-hourly", expr: "*/30 * * * *", tz: ber, from: u(m, 29, 0, 10, 0),
			want: []time.Time{u(m, 29, 0, 30, 0), u(m, 29, 1, 0, 0), u(m, 29, 1, 30, 0)}},
		{name: "Berlin spring non-fixed hour 2 skipped entirely", expr: "* 2 * * *", tz: ber, from: u(m, 28, 12, 0, 0),
			want: []time.Time{u(m, 30, 0, 0, 0), u(m, 30, 0, 1, 0)}},
		{name: "Berlin spring non-fixed */20 2 skipped", expr: "*/20 2 * * *", tz: ber, from: u(m, 28, 12, 0, 0),
			want: []time.Time{u(m, 30, 0, 0, 0), u(m, 30, 0, 20, 0), u(m, 30, 0, 40, 0)}},

		// Berlin, fall back Sun 25 Oct 2026 01:00Z: 03:00 CEST -> 02:00 CET.
		{name: "Berlin fall fixed fires first pass only", expr: "30 2 * * *", tz: ber, from: u(o, 24, 12, 0, 0),
			want: []time.Time{u(o, 25, 0, 30, 0), u(o, 26, 1, 30, 0)}},
		{name: "Berlin fall fixed from inside the second pass", expr: "30 2 * * *", tz: ber, from: u(o, 25, 1, 10, 0),
			want: []time.Time{u(o, 26, 1, 30, 0)}},
		{name: "Berlin fall fixed from the start of the second pass", expr: "30 2 * * *", tz: ber, from: u(o, 25, 1, 0, 0),
			want: []time.Time{u(o, 26, 1, 30, 0)}},
		{name: "Berlin fall several in repeated hour", expr: "0,15,30,45 2 * * *", tz: ber, from: u(o, 24, 12, 0, 0),
			want: []time.Time{u(o, 25, 0, 0, 0), u(o, 25, 0, 15, 0), u(o, 25, 0, 30, 0), u(o, 25, 0, 45, 0), u(o, 26, 1, 0, 0)}},
		{name: "Berlin fall 03:00 exists once", expr: "0 3 * * *", tz: ber, from: u(o, 24, 12, 0, 0),
			want: []time.Time{u(o, 25, 2, 0, 0), u(o, 26, 2, 0, 0)}},
		{name: "Berlin fall 6-field fixed with seconds", expr: "30 30 2 * * *", tz: ber, from: u(o, 24, 12, 0, 0),
			want: []time.Time{u(o, 25, 0, 30, 30), u(o, 26, 1, 30, 30)}},
		{name: "Berlin fall hourly both passes", expr: "0 * * * *", tz: ber, from: u(o, 24, 22, 30, 0),
			want: []time.Time{u(o, 24, 23, 0, 0), u(o, 25, 0, 0, 0), u(o, 25, 1, 0, 0), u(o, 25, 2, 0, 0)}},
		{name: "Berlin fall half past hourly both passes", expr: "30 * * * *", tz: ber, from: u(o, 24, 23, 0, 0),
			want: []time.Time{u(o, 24, 23, 30, 0), u(o, 25, 0, 30, 0), u(o, 25, 1, 30, 0), u(o, 25, 2, 30, 0)}},
		{name: "Berlin fall half-hourly", expr: "*/30 * * * *", tz: ber, from: u(o, 25, 0, 10, 0),
			want: []time.Time{u(o, 25, 0, 30, 0), u(o, 25, 1, 0, 0), u(o, 25, 1, 30, 0), u(o, 25, 2, 0, 0)}},
		{name: "Berlin fall non-fixed */20 2 both passes", expr: "*/20 2 * * *", tz: ber, from: u(o, 24, 12, 0, 0),
			want: []time.Time{u(o, 25, 0, 0, 0), u(o, 25, 0, 20, 0), u(o, 25, 0, 40, 0), u(o, 25, 1, 0, 0), u(o, 25, 1, 20, 0), u(o, 25, 1, 40, 0), u(o, 26, 1, 0, 0)}},

		// New York, spring forward Sun 8 Mar 2026 07:00Z: 02:00 EST -> 03:00 EDT.
		{name: "New York spring fixed in gap", expr: "30 2 * * *", tz: nyc, from: u(m, 7, 12, 0, 0),
			want: []time.Time{u(m, 8, 7, 0, 0), u(m, 9, 6, 30, 0)}},
		{name: "New York spring several in gap fire once", expr: "0,15,30,45 2 * * *", tz: nyc, from: u(m, 7, 12, 0, 0),
			want: []time.Time{u(m, 8, 7, 0, 0), u(m, 9, 6, 0, 0), u(m, 9, 6, 15, 0)}},
		{name: "New York spring gap end is itself an occurrence", expr: "0 2,3 * * *", tz: nyc, from: u(m, 7, 12, 0, 0),
			want: []time.Time{u(m, 8, 7, 0, 0), u(m, 9, 6, 0, 0), u(m, 9, 7, 0, 0)}},
		{name: "New York spring 6-field fixed with seconds", expr: "30 30 2 * * *", tz: nyc, from: u(m, 7, 12, 0, 0),
			want: []time.Time{u(m, 8, 7, 0, 0), u(m, 9, 6, 30, 30)}},
		{name: "New York spring hourly", expr: "0 * * * *", tz: nyc, from: u(m, 8, 5, 30, 0),
			want: []time.Time{u(m, 8, 6, 0, 0), u(m, 8, 7, 0, 0), u(m, 8, 8, 0, 0)}},
		{name: "New York spring half-hourly", expr: "*/30 * * * *", tz: nyc, from: u(m, 8, 6, 10, 0),
			want: []time.Time{u(m, 8, 6, 30, 0), u(m, 8, 7, 0, 0), u(m, 8, 7, 30, 0)}},
		{name: "New York spring non-fixed hour 2 skipped", expr: "* 2 * * *", tz: nyc, from: u(m, 7, 12, 0, 0),
			want: []time.Time{u(m, 9, 6, 0, 0)}},

		// New York, fall back Sun 1 Nov 2026 06:00Z: 02:00 EDT -> 01:00 EST.
		{name: "New York fall fixed first pass only", expr: "30 1 * * *", tz: nyc, from: u(o, 31, 12, 0, 0),
			want: []time.Time{u(n, 1, 5, 30, 0), u(n, 2, 6, 30, 0)}},
		{name: "New York fall several in repeated hour", expr: "0,15,30,45 1 * * *", tz: nyc, from: u(o, 31, 12, 0, 0),
			want: []time.Time{u(n, 1, 5, 0, 0), u(n, 1, 5, 15, 0), u(n, 1, 5, 30, 0), u(n, 1, 5, 45, 0), u(n, 2, 6, 0, 0)}},
		{name: "New York fall 02:00 exists once", expr: "0 2 * * *", tz: nyc, from: u(o, 31, 12, 0, 0),
			want: []time.Time{u(n, 1, 7, 0, 0), u(n, 2, 7, 0, 0)}},
		{name: "New York fall 6-field fixed with seconds", expr: "30 30 1 * * *", tz: nyc, from: u(o, 31, 12, 0, 0),
			want: []time.Time{u(n, 1, 5, 30, 30), u(n, 2, 6, 30, 30)}},
		{name: "New York fall hourly both passes", expr: "0 * * * *", tz: nyc, from: u(n, 1, 3, 30, 0),
			want: []time.Time{u(n, 1, 4, 0, 0), u(n, 1, 5, 0, 0), u(n, 1, 6, 0, 0), u(n, 1, 7, 0, 0)}},
		{name: "New York fall half-hourly", expr: "*/30 * * * *", tz: nyc, from: u(n, 1, 5, 10, 0),
			want: []time.Time{u(n, 1, 5, 30, 0), u(n, 1, 6, 0, 0), u(n, 1, 6, 30, 0), u(n, 1, 7, 0, 0)}},
		{name: "New York fall non-fixed */20 1 both passes", expr: "*/20 1 * * *", tz: nyc, from: u(o, 31, 12, 0, 0),
			want: []time.Time{u(n, 1, 5, 0, 0), u(n, 1, 5, 20, 0), u(n, 1, 5, 40, 0), u(n, 1, 6, 0, 0), u(n, 1, 6, 20, 0), u(n, 1, 6, 40, 0), u(n, 2, 6, 0, 0)}},

		// Lord Howe, summer ends Sun 5 Apr 2026 (local) at 4 Apr 15:00Z:
		// 02:00 +11 -> 01:30 +10:30; 01:30-02:00 happens twice.
		{name: "Lord Howe fall fixed 01:30 first pass only", expr: "30 1 * * *", tz: lhi, from: u(a, 4, 0, 0, 0),
			want: []time.Time{u(a, 4, 14, 30, 0), u(a, 5, 15, 0, 0)}},
		{name: "Lord Howe fall fixed 01:45 first pass only", expr: "45 1 * * *", tz: lhi, from: u(a, 4, 0, 0, 0),
			want: []time.Time{u(a, 4, 14, 45, 0), u(a, 5, 15, 15, 0)}},
		{name: "Lord Howe fall several in repeated half hour", expr: "15,45 1 * * *", tz: lhi, from: u(a, 4, 0, 0, 0),
			want: []time.Time{u(a, 4, 14, 15, 0), u(a, 4, 14, 45, 0), u(a, 5, 14, 45, 0), u(a, 5, 15, 15, 0)}},
		{name: "Lord Howe fall 6-field fixed with seconds", expr: "30 45 1 * * *", tz: lhi, from: u(a, 4, 0, 0, 0),
			want: []time.Time{u(a, 4, 14, 45, 30), u(a, 5, 15, 15, 30)}},
		{name: "Lord Howe fall 02:00 exists once", expr: "0 2 * * *", tz: lhi, from: u(a, 4, 0, 0, 0),
			want: []time.Time{u(a, 4, 15, 30, 0), u(a, 5, 15, 30, 0)}},
		{name: "Lord Howe fall half-hourly both passes", expr: "*/30 * * * *", tz: lhi, from: u(a, 4, 13, 45, 0),
			want: []time.Time{u(a, 4, 14, 0, 0), u(a, 4, 14, 30, 0), u(a, 4, 15, 0, 0), u(a, 4, 15, 30, 0), u(a, 4, 16, 0, 0)}},
		{name: "Lord Howe fall hourly", expr: "0 * * * *", tz: lhi, from: u(a, 4, 13, 30, 0),
			want: []time.Time{u(a, 4, 14, 0, 0), u(a, 4, 15, 30, 0), u(a, 4, 16, 30, 0)}},
		{name: "Lord Howe fall non-fixed */10 1 both passes", expr: "*/10 1 * * *", tz: lhi, from: u(a, 4, 14, 25, 0),
			want: []time.Time{u(a, 4, 14, 30, 0), u(a, 4, 14, 40, 0), u(a, 4, 14, 50, 0), u(a, 4, 15, 0, 0), u(a, 4, 15, 10, 0), u(a, 4, 15, 20, 0), u(a, 5, 14, 30, 0)}},

		// Lord Howe, summer begins Sun 4 Oct 2026 (local) at 3 Oct 15:30Z:
		// 02:00 +10:30 -> 02:30 +11; 02:00-02:30 does not exist.
		{name: "Lord Howe spring fixed 02:15 in gap", expr: "15 2 * * *", tz: lhi, from: u(o, 3, 0, 0, 0),
			want: []time.Time{u(o, 3, 15, 30, 0), u(o, 4, 15, 15, 0)}},
		{name: "Lord Howe spring several in gap fire once", expr: "0,15 2 * * *", tz: lhi, from: u(o, 3, 0, 0, 0),
			want: []time.Time{u(o, 3, 15, 30, 0), u(o, 4, 15, 0, 0), u(o, 4, 15, 15, 0)}},
		{name: "Lord Howe spring gap end is itself an occurrence", expr: "0,30 2 * * *", tz: lhi, from: u(o, 3, 0, 0, 0),
			want: []time.Time{u(o, 3, 15, 30, 0), u(o, 4, 15, 0, 0), u(o, 4, 15, 30, 0)}},
		{name: "Lord Howe spring 6-field fixed with seconds", expr: "30 15 2 * * *", tz: lhi, from: u(o, 3, 0, 0, 0),
			want: []time.Time{u(o, 3, 15, 30, 0), u(o, 4, 15, 15, 30)}},
		{name: "Lord Howe spring half-hourly", expr: "*/30 * * * *", tz: lhi, from: u(o, 3, 14, 15, 0),
			want: []time.Time{u(o, 3, 14, 30, 0), u(o, 3, 15, 0, 0), u(o, 3, 15, 30, 0), u(o, 3, 16, 0, 0)}},
		{name: "Lord Howe spring hourly", expr: "0 * * * *", tz: lhi, from: u(o, 3, 14, 0, 0),
			want: []time.Time{u(o, 3, 14, 30, 0), u(o, 3, 16, 0, 0)}},
		{name: "Lord Howe spring non-fixed */10 2 only real matches", expr: "*/10 2 * * *", tz: lhi, from: u(o, 3, 0, 0, 0),
			want: []time.Time{u(o, 3, 15, 30, 0), u(o, 3, 15, 40, 0), u(o, 3, 15, 50, 0), u(o, 4, 15, 0, 0)}},
	})
}

// TestSpecDSTEvenSpacing walks a day either side of each transition: non-fixed
// expressions stay evenly spaced in real time, and both passes of a repeated
// wall time fire.
func TestSpecDSTEvenSpacing(t *testing.T) {
	t.Parallel()
	specCheckTransitions(t)
	for _, tr := range specTransitions {
		for _, tc := range []struct {
			expr string
			step time.Duration
		}{
			{"0 * * * *", time.Hour},
			{"*/30 * * * *", 30 * time.Minute},
			{"*/15 * * * *", 15 * time.Minute},
			{"*/20 * * * * *", 20 * time.Second},
		} {
			if tc.step == time.Hour && tr.zone == "Australia/Lord_Howe" {
				continue // a 30-minute shift cannot keep whole hours evenly spaced
			}
			t.Run(fmt.Sprintf("%s %s %s", tr.zone, tr.at.Format("Jan"), tc.expr), func(t *testing.T) {
				t.Parallel()
				c := specParse(t, tc.expr, tr.zone)
				loc := specLoc(t, tr.zone)
				from := tr.at.Add(-6 * time.Hour).Truncate(tc.step)
				until := tr.at.Add(6 * time.Hour)
				prev := from
				walls := map[string]int{}
				for {
					nx := c.Next(prev)
					require.False(t, nx.IsZero())
					require.Equal(t, tc.step, nx.Sub(prev), "gap between %s and %s", prev.UTC(), nx.UTC())
					walls[nx.In(loc).Format("2006-01-02 15:04:05")]++
					if nx.After(until) {
						break
					}
					prev = nx
				}
				if tr.after < tr.before {
					// The wall clock reading just after the change happened
					// twice and must have fired twice.
					repeated := tr.at.In(loc).Format("2006-01-02 15:04:05")
					require.Equal(t, 2, walls[repeated], "both passes of %s", repeated)
				}
			})
		}
	}
}

// TestSpecCronNextMonotonic is the property test: strictly increasing, and
// for daily fixed-time expressions exactly one fire per local calendar day,
// at the wall time or, when it was skipped, at the end of the gap, and at
// the first pass when it was repeated.
func TestSpecCronNextMonotonic(t *testing.T) {
	t.Parallel()
	zones := []string{"UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Sao_Paulo", "Asia/Kolkata"}
	type dailyAt struct{ h, m, s int }
	cases := []struct {
		expr    string
		daily   *dailyAt      // fixed-time, one fire per local day
		spacing time.Duration // exact real-time spacing, when not zero
		zeroOK  bool          // may run out before 2000 iterations
	}{
		{expr: "30 2 * * *", daily: &dailyAt{2, 30, 0}},
		{expr: "15 2 * * *", daily: &dailyAt{2, 15, 0}},
		{expr: "45 1 * * *", daily: &dailyAt{1, 45, 0}},
		{expr: "0 0 * * *", daily: &dailyAt{0, 0, 0}},
		{expr: "30 23 * * *", daily: &dailyAt{23, 30, 0}},
		{expr: "30 30 2 * * *", daily: &dailyAt{2, 30, 30}},
		{expr: "*/30 * * * *", spacing: 30 * time.Minute},
		{expr: "0 * * * *", spacing: time.Hour},
		{expr: "0 2,3 * * *"},
		{expr: "*/7 */5 * * *"},
		{expr: "0 0 13 * FRI"},
		{expr: "0 0 29 2 *", zeroOK: true},
	}
	lo := specU(2010, 1, 1, 0, 0, 0).Unix()
	hi := specU(2030, 1, 1, 0, 0, 0).Unix()
	for _, zone := range zones {
		for _, tc := range cases {
			for seed := uint64(1); seed <= 2; seed++ {
				t.Run(fmt.Sprintf("%s/%s/seed%d", zone, tc.expr, seed), func(t *testing.T) {
					t.Parallel()
					rng := rand.New(rand.NewPCG(seed, uint64(len(tc.expr))*31+uint64(len(zone))))
					loc := specLoc(t, zone)
					c := specParse(t, tc.expr, zone)
					from := time.Unix(lo+rng.Int64N(hi-lo), rng.Int64N(1e9)).UTC()
					if tc.daily == nil {
						// Fine-grained expressions: start near a transition.
						if _, end := from.In(loc).ZoneBounds(); !end.IsZero() {
							from = end.Add(-time.Duration(rng.Int64N(int64(10 * time.Hour))))
						}
					}
					prev := from
					var prevLocal time.Time
					for i := range 2000 {
						nx := c.Next(prev)
						if nx.IsZero() {
							if !tc.zeroOK || prev.Year() < 2090 {
								if specNearLeapYearEnd(prev) && zone != "UTC" && zone != "Asia/Kolkata" {
								}
								t.Fatalf("Next(%s) = zero at iteration %d, but occurrences remain", prev.UTC(), i)
							}
							break
						}
						require.True(t, nx.After(prev), "Next(%s) = %s, not strictly after", prev.UTC(), nx.UTC())
						if tc.spacing != 0 && i > 0 && !(tc.spacing == time.Hour && zone == "Australia/Lord_Howe") {
							require.Equal(t, tc.spacing, nx.Sub(prev), "Next(%s) = %s", prev.UTC(), nx.UTC())
						}
						if d := tc.daily; d != nil {
							local := nx.In(loc)
							if i > 0 {
								y, mo, dd := prevLocal.Date()
								require.Equal(t, time.Date(y, mo, dd+1, 0, 0, 0, 0, time.UTC).Format(time.DateOnly), local.Format(time.DateOnly),
									"fires at %s then %s: want one fire per local day", prevLocal, local)
							}
							specCheckDailyFire(t, loc, nx, d.h, d.m, d.s)
							prevLocal = local
						}
						prev = nx
					}
				})
			}
		}
	}
}

// specCheckDailyFire checks one fire of a daily fixed-time expression at
// wall time h:m:s.
func specCheckDailyFire(t *testing.T, loc *time.Location, fire time.Time, h, m, s int) {
	t.Helper()
	local := fire.In(loc)
	y, mo, d := local.Date()
	target := time.Date(y, mo, d, h, m, s, 0, time.UTC) // wall time, as UTC
	if local.Hour() != h || local.Minute() != m || local.Second() != s {
		// Allowed only when the wall time was skipped: fire is the end of
		// a gap that contains it.
		start, _ := local.ZoneBounds()
		require.True(t, start.Equal(fire), "fire %s at wall %s is neither %02d:%02d:%02d nor a gap end", fire.UTC(), local, h, m, s)
		_, oldOff := fire.Add(-time.Nanosecond).In(loc).Zone()
		_, newOff := local.Zone()
		require.Greater(t, newOff, oldOff, "fire %s at wall %s: not a spring-forward gap end", fire.UTC(), local)
		gapFrom := fire.UTC().Add(time.Duration(oldOff) * time.Second)
		gapTo := fire.UTC().Add(time.Duration(newOff) * time.Second)
		require.True(t, !target.Before(gapFrom) && target.Before(gapTo), "fire %s: %s is not in the gap", fire.UTC(), target)
		return
	}
	// The wall time exists; if it exists twice, this must be the first pass.
	for _, probe := range []time.Time{fire.Add(-26 * time.Hour), fire.Add(26 * time.Hour)} {
		_, off := probe.In(loc).Zone()
		earlier := target.Add(-time.Duration(off) * time.Second)
		if earlier.Before(fire) && earlier.In(loc).Format(time.DateTime) == local.Format(time.DateTime) {
			t.Fatalf("fire %s at wall %s is the second pass; the first was %s", fire.UTC(), local, earlier.UTC())
		}
	}
}

// TestSpecCronParseErrors: every failure is a *FieldError for "cron" or "tz"
// that is ErrInvalid.
func TestSpecCronParseErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, expr, tz string
		field          string // "cron" or "tz"
		exact          string // exact message, when pinned
	}{
		{name: "8 fields", expr: "* * * * * * * *", field: "cron", exact: "cron: expected 5, 6 or 7 fields, got 8"},
		{name: "8 fields realistic", expr: "0 0 0 1 1 * 2027 x", field: "cron", exact: "cron: expected 5, 6 or 7 fields, got 8"},
		{name: "4 fields", expr: "* * * *", field: "cron"},
		{name: "1 field", expr: "5", field: "cron"},
		{name: "empty", expr: "", field: "cron"},
		{name: "blank", expr: "  \t ", field: "cron"},
		{name: "@every is not a macro", expr: "@every 5m", field: "cron"},
		{name: "@every alone", expr: "@every", field: "cron"},
		{name: "unknown macro", expr: "@bogus", field: "cron"},
		{name: "macro with a field", expr: "@daily 5", field: "cron"},
		{name: "60 in minute", expr: "60 * * * *", field: "cron"},
		{name: "60 in second", expr: "60 * * * * *", field: "cron"},
		{name: "24 in hour", expr: "0 24 * * *", field: "cron"},
		{name: "0 in day of month", expr: "0 0 0 * *", field: "cron"},
		{name: "32 in day of month", expr: "0 0 32 * *", field: "cron"},
		{name: "0 in month", expr: "0 0 1 0 *", field: "cron"},
		{name: "13 in month", expr: "0 0 1 13 *", field: "cron"},
		{name: "8 in day of week", expr: "0 0 * * 8", field: "cron"},
		{name: "reversed range", expr: "50-10 * * * *", field: "cron"},
		{name: "step 0", expr: "*/0 * * * *", field: "cron"},
		{name: "step 61", expr: "*/61 * * * *", field: "cron"},
		{name: "empty list entry", expr: "1,,2 * * * *", field: "cron"},
		{name: "trailing comma", expr: "1, * * * *", field: "cron"},
		{name: "5#6", expr: "0 0 * * 5#6", field: "cron"},
		{name: "5#0", expr: "0 0 * * 5#0", field: "cron"},
		{name: "8#1", expr: "0 0 * * 8#1", field: "cron"},
		{name: "8L", expr: "0 0 * * 8L", field: "cron"},
		{name: "L in month", expr: "0 0 1 L *", field: "cron"},
		{name: "W alone", expr: "0 0 W * *", field: "cron"},
		{name: "0W", expr: "0 0 0W * *", field: "cron"},
		{name: "32W", expr: "0 0 32W * *", field: "cron"},
		{name: "1-2-3", expr: "1-2-3 * * * *", field: "cron"},
		{name: "open range", expr: "5- * * * *", field: "cron"},
		{name: "double step", expr: "*/5/2 * * * *", field: "cron"},
		{name: "negative", expr: "-1 * * * *", field: "cron"},
		{name: "plus sign", expr: "+5 * * * *", field: "cron"},
		{name: "unknown month name", expr: "0 0 1 jan-foo *", field: "cron"},
		{name: "letters", expr: "a b c d e", field: "cron"},
		{name: "unicode umlaut", expr: "0 0 * * MÖN", field: "cron"},
		{name: "unicode fullwidth digit", expr: "０ 0 * * *", field: "cron"},
		{name: "unicode no-break space", expr: "0\u00a00 * * *", field: "cron"},
		{name: "unicode emoji", expr: "0 0 * * * 🕐", field: "cron"},
		{name: "invalid utf-8", expr: "0 0 * * \xff", field: "cron"},
		{name: "huge number", expr: "99999999999999999999 * * * *", field: "cron"},
		{name: "2^32 wraps nowhere", expr: "4294967296 * * * *", field: "cron"},
		{name: "huge step", expr: "*/99999999999999999999 * * * *", field: "cron"},
		{name: "year 2100", expr: "0 0 0 1 1 * 2100", field: "cron"},
		{name: "year 1969", expr: "0 0 0 1 1 * 1969", field: "cron"},
		// Six fields are seconds first, so a trailing year is a bad weekday.
		{name: "6 fields with a year", expr: "0 0 1 1 1 2027", field: "cron"},
		{name: "very long", expr: strings.Repeat("1,", 5000) + "1 * * * *", field: "cron"},
		{name: "unknown zone", expr: "0 0 * * *", tz: "Mars/Olympus", field: "tz"},
		{name: "Local refused", expr: "0 0 * * *", tz: "Local", field: "tz"},
		{name: "zone path traversal", expr: "0 0 * * *", tz: "../../etc/passwd", field: "tz"},
		{name: "zone with trailing space", expr: "0 0 * * *", tz: "Europe/Berlin ", field: "tz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var (
				c   *natsched.Cron
				err error
			)
			specWithin(t, "ParseCron", func() { c, err = natsched.ParseCron(tc.expr, tc.tz) })
			require.Error(t, err)
			require.Nil(t, c)
			require.ErrorIs(t, err, natsched.ErrInvalid)
			var fe *natsched.FieldError
			require.True(t, errors.As(err, &fe), "%T is not a *FieldError", err)
			require.Equal(t, tc.field, fe.Field)
			require.True(t, strings.HasPrefix(err.Error(), tc.field+": "), "message %q", err.Error())
			if tc.exact != "" {
				require.EqualError(t, err, tc.exact)
			}
		})
	}
}

func TestSpecLoadZone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, tz, want string
		ok             bool
	}{
		{"empty is UTC", "", "UTC", true},
		{"UTC", "UTC", "UTC", true},
		{"Berlin", "Europe/Berlin", "Europe/Berlin", true},
		{"Lord Howe", "Australia/Lord_Howe", "Australia/Lord_Howe", true},
		{"unknown", "Mars/Olympus", "", false},
		{"Local", "Local", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			loc, err := natsched.LoadZone(tc.tz)
			if !tc.ok {
				require.ErrorIs(t, err, natsched.ErrInvalid)
				var fe *natsched.FieldError
				require.ErrorAs(t, err, &fe)
				require.Equal(t, "tz", fe.Field)
				require.True(t, strings.HasPrefix(err.Error(), "tz: "), err.Error())
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, loc.String())
			c := specParse(t, "0 0 * * *", tc.tz)
			require.Equal(t, tc.want, c.Location().String())
		})
	}
}

// TestSpecCronConcurrentNext shares one *Cron between 8 goroutines; run with
// -race.
func TestSpecCronConcurrentNext(t *testing.T) {
	t.Parallel()
	for _, expr := range []string{"*/7 * * * *", "30 2 * * *", "0 0 L * 5#3"} {
		t.Run(expr, func(t *testing.T) {
			t.Parallel()
			c := specParse(t, expr, "Europe/Berlin")
			from := spec26(time.March, 20, 0, 0, 0)
			want := specSeq(c, from, 300)
			var wg sync.WaitGroup
			got := make([][]time.Time, 8)
			for g := range got {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got[g] = specSeq(c, from, 300)
				}()
			}
			wg.Wait()
			for g := range got {
				require.Equal(t, specFmt(want), specFmt(got[g]), "goroutine %d", g)
			}
		})
	}
}

// TestSpecEveryNext: occurrences Anchor + k*Interval, k >= 0, strictly after.
func TestSpecEveryNext(t *testing.T) {
	t.Parallel()
	a := specT0
	const year = 365 * 24 * time.Hour
	for _, tc := range []struct {
		name     string
		anchor   time.Time
		interval time.Duration
		after    time.Time
		want     time.Time
	}{
		{name: "before anchor gives anchor", anchor: a, interval: 15 * time.Minute, after: a.Add(-time.Hour), want: a},
		{name: "just before anchor", anchor: a, interval: 15 * time.Minute, after: a.Add(-time.Nanosecond), want: a},
		{name: "at anchor is strictly after", anchor: a, interval: 15 * time.Minute, after: a, want: a.Add(15 * time.Minute)},
		{name: "just after anchor", anchor: a, interval: 15 * time.Minute, after: a.Add(time.Nanosecond), want: a.Add(15 * time.Minute)},
		{name: "just before a grid point", anchor: a, interval: 15 * time.Minute, after: a.Add(15*time.Minute - time.Nanosecond), want: a.Add(15 * time.Minute)},
		{name: "on a grid point", anchor: a, interval: 15 * time.Minute, after: a.Add(15 * time.Minute), want: a.Add(30 * time.Minute)},
		{name: "far along", anchor: a, interval: 15 * time.Minute, after: a.Add(10*time.Hour + 7*time.Minute), want: a.Add(10*time.Hour + 15*time.Minute)},
		{name: "odd interval", anchor: a, interval: 7 * time.Second, after: a.Add(100 * time.Second), want: a.Add(105 * time.Second)},
		{name: "nanosecond interval", anchor: a, interval: time.Nanosecond, after: a.Add(time.Hour), want: a.Add(time.Hour + time.Nanosecond)},
		{name: "anchor with nanoseconds", anchor: a.Add(123), interval: time.Second, after: a.Add(5 * time.Second), want: a.Add(5*time.Second + 123)},
		{name: "anchor in a zone, DST ignored", anchor: spec26(time.March, 28, 12, 0, 0).In(specLoc(t, "Europe/Berlin")), interval: 24 * time.Hour,
			after: spec26(time.March, 29, 12, 0, 0), want: spec26(time.March, 30, 12, 0, 0)},
		{name: "anchor 300 years back", anchor: specU(1726, 1, 1, 0, 0, 0), interval: time.Hour, after: a.Add(90 * time.Minute), want: a.Add(2 * time.Hour)},
		{name: "zero anchor", anchor: time.Time{}, interval: time.Hour, after: a.Add(90 * time.Minute), want: a.Add(2 * time.Hour)},
		{name: "huge interval overflows", anchor: specU(2000, 1, 1, 0, 0, 0), interval: 200 * year, after: specU(2000, 1, 1, 0, 0, 0).Add(250 * year), want: specU(2000, 1, 1, 0, 0, 0).Add(200 * year).Add(200 * year)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := natsched.Every{Anchor: tc.anchor, Interval: tc.interval}
			got := e.Next(tc.after)
			require.True(t, tc.want.Equal(got), "want %s got %s", tc.want.UTC(), got.UTC())
			var s natsched.Spec = e
			require.True(t, tc.want.Equal(s.Next(tc.after)))
		})
	}
}

func TestSpecAtNext(t *testing.T) {
	t.Parallel()
	at := spec26(time.June, 1, 12, 0, 0)
	var s natsched.Spec = natsched.At(at)
	require.True(t, at.Equal(s.Next(at.Add(-time.Hour))))
	require.True(t, at.Equal(s.Next(at.Add(-time.Nanosecond))))
	require.True(t, s.Next(at).IsZero(), "not strictly after")
	require.True(t, s.Next(at.Add(time.Nanosecond)).IsZero())
	require.True(t, s.Next(at.Add(time.Hour)).IsZero())
}

// specNearLeapYearEnd reports whether 31 Dec 00:00 UTC of a leap year lies
// within 400 days after t.
func specNearLeapYearEnd(t time.Time) bool {
	for y := t.Year(); y <= t.Year()+2; y++ {
		if y%4 != 0 || (y%100 == 0 && y%400 != 0) {
			continue
		}
		end := time.Date(y, time.December, 31, 0, 0, 0, 0, time.UTC)
		if end.After(t) && end.Sub(t) <= 400*24*time.Hour {
			return true
		}
	}
	return false
}

// TestSpecCronLeapYearEnd: occurrences continue across the end of leap years
// far enough ahead that time zone rules are extended from the TZ string.
func TestSpecCronLeapYearEnd(t *testing.T) {
	t.Parallel()
	specRunSeqCases(t, []specSeqCase{
		// 00:00 CET on 31 Dec 2040 is 30 Dec 23:00Z; on 1 Jan 2041, 31 Dec 23:00Z.
		{name: "Berlin daily across 2040", expr: "0 0 * * *", tz: "Europe/Berlin", from: specU(2040, 12, 30, 12, 0, 0),
			want: []time.Time{specU(2040, 12, 30, 23, 0, 0), specU(2040, 12, 31, 23, 0, 0), specU(2041, 1, 1, 23, 0, 0)}},
		{name: "Berlin yearly across 2040", expr: "@yearly", tz: "Europe/Berlin", from: specU(2040, 6, 1, 0, 0, 0),
			want: []time.Time{specU(2040, 12, 31, 23, 0, 0), specU(2041, 12, 31, 23, 0, 0)}},
		{name: "New York hourly across 2040", expr: "0 * * * *", tz: "America/New_York", from: specU(2040, 12, 30, 23, 30, 0),
			want: []time.Time{specU(2040, 12, 31, 0, 0, 0), specU(2040, 12, 31, 1, 0, 0)}},
		{name: "New York daily from inside the last day of 2040", expr: "0 0 * * *", tz: "America/New_York", from: specU(2040, 12, 31, 1, 0, 0),
			want: []time.Time{specU(2040, 12, 31, 5, 0, 0), specU(2041, 1, 1, 5, 0, 0)}},
		{name: "Lord Howe daily across 2040", expr: "0 0 * * *", tz: "Australia/Lord_Howe", from: specU(2040, 12, 30, 12, 0, 0),
			want: []time.Time{specU(2040, 12, 30, 13, 0, 0), specU(2040, 12, 31, 13, 0, 0)}},
		// With slim tzdata (Go's embedded copy) the same stall comes in 2028;
		// with full system tzdata this case passes.
		{name: "New York daily across 2028", expr: "0 0 * * *", tz: "America/New_York", from: specU(2028, 12, 30, 12, 0, 0),
			want: []time.Time{specU(2028, 12, 31, 5, 0, 0), specU(2029, 1, 1, 5, 0, 0)}},
		{name: "UTC is unaffected", expr: "0 0 * * *", tz: "UTC", from: specU(2040, 12, 30, 12, 0, 0),
			want: []time.Time{specU(2040, 12, 31, 0, 0, 0), specU(2041, 1, 1, 0, 0, 0)}},
	})
}
