package natsched_test

import (
	"testing"
	"time"

	"github.com/natsched/natsched"
)

func benchNext(b *testing.B, expr, tz string) {
	c, err := natsched.ParseCron(expr, tz)
	if err != nil {
		b.Fatal(err)
	}
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		t = c.Next(t)
		if t.IsZero() {
			t = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		}
	}
}

// Next occurrence of typical expressions; the zone variants cross DST
// transitions as the loop walks forward in time.
func BenchmarkCronNext(b *testing.B) {
	for _, bc := range []struct{ name, expr, tz string }{
		{"5field/UTC", "*/5 9-17 * * MON-FRI", ""},
		{"5field/Berlin", "*/5 9-17 * * MON-FRI", "Europe/Berlin"},
		{"6field/UTC", "*/10 * * * * *", ""},
		{"6field/NewYork", "*/10 * * * * *", "America/New_York"},
		{"daily/LordHowe", "30 2 * * *", "Australia/Lord_Howe"},
	} {
		b.Run(bc.name, func(b *testing.B) { benchNext(b, bc.expr, bc.tz) })
	}
}

func BenchmarkEveryNext(b *testing.B) {
	e := natsched.Every{Anchor: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Interval: 1500 * time.Millisecond}
	t := e.Anchor
	for b.Loop() {
		t = e.Next(t)
	}
}

func BenchmarkParseCron(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := natsched.ParseCron("0 */15 9-17 * * MON-FRI", "Europe/Berlin"); err != nil {
			b.Fatal(err)
		}
	}
}
