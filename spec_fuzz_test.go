package natsched_test

import (
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
)

// specFuzzZones is indexed by the fuzzer's zone selector byte.
var specFuzzZones = []string{"", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
	"Asia/Kolkata", "America/Sao_Paulo", "Pacific/Apia", "Mars/Olympus", "Local"}

// specFuzzFroms are the instants Next is iterated from: just before the 2026
// Berlin spring-forward gap and fall-back repeat.
var specFuzzFroms = []time.Time{
	time.Date(2026, time.March, 29, 0, 30, 0, 0, time.UTC),
	time.Date(2026, time.October, 25, 0, 30, 0, 0, time.UTC),
}

const specFuzzTimeout = 10 * time.Second

// specWithin runs f and fails the test if it does not return in time.
func specWithin(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(specFuzzTimeout):
		t.Fatalf("%s did not return within %s", what, specFuzzTimeout)
	}
}

// specFuzzFixed is an independent reading of the Vixie rule for an
// expression that parsed: neither minute nor hour starts with * or ?.
func specFuzzFixed(expr string) bool {
	f := strings.Fields(expr)
	if len(f) == 1 {
		return !strings.EqualFold(f[0], "@hourly")
	}
	wild := func(s string) bool { return strings.HasPrefix(s, "*") || strings.HasPrefix(s, "?") }
	if len(f) == 5 {
		return !wild(f[0]) && !wild(f[1])
	}
	return !wild(f[1]) && !wild(f[2])
}

func FuzzParseCron(f *testing.F) {
	seeds := []string{
		// valid
		"0 9 * * *", "30 0 9 * * *", "0 30 9 * * * 2027", "@daily", "@hourly", "@yearly", "@weekly",
		"*/15 * * * *", "5/15 3 * * *", "10-40/10 1 * * *", "0 12 * JAN,mar Mon",
		"0 12 * February Tuesday", "0 12 ? * WED", "0 0 L * *", "0 0 LW * *", "0 0 15W * *",
		"0 0 1W 8,11 *", "0 0 * * 5L", "0 0 * * 5#3", "0 0 * * FRI#3", "0 0 * * 5#5",
		"0 0 13 * FRI", "0 0 */2 * MON", "30 2 * * *", "0,15,30,45 2 * * *", "0 2,3 * * *",
		"30 30 2 * * *", "0 12 * * 5-7", "0 0 30 2 *", "*/20 * * * * *", "0-10/5 0 0 1 1 ? 2030",
		// invalid
		"* * * * * * * *", "* * * *", "", "@every 5m", "@bogus", "60 * * * *", "0 24 * * *",
		"0 0 0 * *", "0 0 1 13 *", "0 0 * * 8", "50-10 * * * *", "*/0 * * * *", "*/61 * * * *",
		"1,,2 * * * *", "0 0 * * 5#6", "0 0 1 L *", "1-2-3 * * * *", "0 0 * * MÖN",
		"99999999999999999999 * * * *", "0 0 0 1 1 * 2100", "0 0 * * 7/2",
	}
	for i, s := range seeds {
		f.Add(s, byte(i))
	}
	f.Fuzz(func(t *testing.T, expr string, sel byte) {
		tz := specFuzzZones[int(sel)%len(specFuzzZones)]
		var (
			c   *natsched.Cron
			err error
		)
		specWithin(t, "ParseCron", func() { c, err = natsched.ParseCron(expr, tz) })
		if err != nil {
			require.Nil(t, c)
			require.ErrorIs(t, err, natsched.ErrInvalid)
			var fe *natsched.FieldError
			require.True(t, errors.As(err, &fe), "%T is not a *FieldError", err)
			require.Contains(t, []string{"cron", "tz"}, fe.Field)
			require.True(t, strings.HasPrefix(err.Error(), fe.Field+": "), err.Error())
			if tz == "Mars/Olympus" || tz == "Local" {
				require.Equal(t, "tz", fe.Field)
			}
			return
		}
		require.NotNil(t, c)
		require.NotContains(t, []string{"Mars/Olympus", "Local"}, tz)
		require.Equal(t, specFuzzFixed(expr), c.FixedTime(), "FixedTime(%q)", expr)

		// Five fields mean seconds 0 and any year: the 6- and 7-field
		// spellings of the same schedule must agree.
		var alts []*natsched.Cron
		if fs := strings.Fields(expr); len(fs) == 5 {
			for _, alt := range []string{"0 " + expr, "0 " + expr + " *"} {
				ac, aerr := natsched.ParseCron(alt, tz)
				require.NoError(t, aerr, "%q parses but %q does not", expr, alt)
				alts = append(alts, ac)
			}
		}

		for _, from := range specFuzzFroms {
			var seq []time.Time
			specWithin(t, "Next", func() { seq = specSeq(c, from, 5) })
			prev := from
			for i, nx := range seq {
				if nx.IsZero() {
					require.Equal(t, len(seq)-1, i)
					break
				}
				require.True(t, nx.After(prev), "%q in %q: Next(%s) = %s, not strictly after", expr, tz, prev.UTC(), nx.UTC())
				prev = nx
			}
			for _, ac := range alts {
				var aseq []time.Time
				specWithin(t, "Next", func() { aseq = specSeq(ac, from, 5) })
				require.Equal(t, specFmt(seq), specFmt(aseq), "%q vs %q", expr, ac.String())
			}
		}
	})
}

// specNanos is t as nanoseconds since the Unix epoch, exactly.
func specNanos(t time.Time) *big.Int {
	n := new(big.Int).Mul(big.NewInt(t.Unix()), big.NewInt(1e9))
	return n.Add(n, big.NewInt(int64(t.Nanosecond())))
}

func FuzzEvery(f *testing.F) {
	const day = int64(24 * time.Hour)
	a := specT0.Unix()
	f.Add(a, uint32(0), int64(15*time.Minute), int64(-time.Hour), true)
	f.Add(a, uint32(0), int64(15*time.Minute), int64(0), true)
	f.Add(a, uint32(0), int64(15*time.Minute), int64(15*time.Minute), true)
	f.Add(a, uint32(0), int64(15*time.Minute), int64(15*time.Minute-1), true)
	f.Add(a, uint32(123), int64(time.Second), int64(5*time.Second), true)
	f.Add(a, uint32(999999999), int64(7*time.Second), int64(100*time.Second), true)
	f.Add(a, uint32(0), int64(day), a+86400*365, false)
	f.Add(a, uint32(0), int64(day), a-86400*365, false)
	f.Add(a, uint32(0), int64(1)<<62, int64(1)<<62-1, true) // ~146-year interval, one step in
	f.Add(a, uint32(0), int64(0), int64(time.Hour), true)
	f.Add(a, uint32(0), int64(-time.Hour), int64(time.Hour), true)
	f.Fuzz(func(t *testing.T, anchorSec int64, anchorNsec uint32, interval int64, x int64, relative bool) {
		const span = int64(1e11) // seconds, about 3,000 years either side of 1970
		anchor := time.Unix(anchorSec%span, int64(anchorNsec%1e9)).UTC()
		var after time.Time
		if relative {
			after = anchor.Add(time.Duration(x))
		} else {
			after = time.Unix(x%span, int64(anchorNsec/7%1e9)).UTC()
		}
		e := natsched.Every{Anchor: anchor, Interval: time.Duration(interval)}
		got := e.Next(after)
		if interval <= 0 {
			require.True(t, got.IsZero() || got.After(after), "Every%+v.Next(%s) = %s", e, after, got)
			return
		}
		// want = Anchor + k*Interval with the least k >= 0 that is after `after`.
		iv := big.NewInt(interval)
		diff := new(big.Int).Sub(specNanos(after), specNanos(anchor))
		k := big.NewInt(0)
		if diff.Sign() >= 0 {
			k.Quo(diff, iv)
			k.Add(k, big.NewInt(1))
		}
		step := new(big.Int).Mul(k, iv)
		want := new(big.Int).Add(specNanos(anchor), step)
		if !got.IsZero() && specNanos(got).Cmp(want) == 0 {
			return
		}
		t.Fatalf("Every{Anchor: %s, Interval: %d}.Next(%s) = %s, want Anchor + %s ns",
			anchor.Format(time.RFC3339Nano), interval, after.Format(time.RFC3339Nano), got.Format(time.RFC3339Nano), step)
	})
}
