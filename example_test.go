package natsched_test

import (
	"context"
	"fmt"
	"time"

	"github.com/natsched/natsched"
	"github.com/natsched/natsched/clock"
	"github.com/natsched/natsched/memory"
)

type Reminder struct{ Text string }

// A typed message scheduled twice, delivered to its handler in simulated
// time: the fake clock moves two hours in one call, and each occurrence
// arrives with the clock reading its planned instant.
func Example() {
	ctx := context.Background()
	reg := natsched.NewRegistry()
	if err := natsched.Register[Reminder](reg, "reminder"); err != nil {
		panic(err)
	}
	router := natsched.NewRouter(reg)

	// Friday 27 November 2026, 07:00 UTC (08:00 in Berlin).
	c := clock.NewFake(time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC))
	err := natsched.Handle(router, func(ctx context.Context, r Reminder) error {
		fmt.Println(c.Now().Format(time.TimeOnly), "UTC:", r.Text)
		return nil
	})
	if err != nil {
		panic(err)
	}

	s, err := memory.New(memory.WithClock(c), memory.WithDispatcher(router))
	if err != nil {
		panic(err)
	}
	defer s.Close(ctx)

	if _, err := natsched.ScheduleIn(ctx, s, Reminder{"tea"}, 5*time.Minute); err != nil {
		panic(err)
	}
	_, err = natsched.ScheduleCron(ctx, s, Reminder{"stand-up"}, "0 9 * * MON-FRI",
		natsched.InZone("Europe/Berlin"), natsched.WithID("team.standup"))
	if err != nil {
		panic(err)
	}

	c.Advance(2 * time.Hour)

	next, _ := s.Get(ctx, "team.standup")
	fmt.Println("next stand-up:", next.NextRun.Format(time.RFC3339))
	// Output:
	// 07:05:00 UTC: tea
	// 08:00:00 UTC: stand-up
	// next stand-up: 2026-11-30T08:00:00Z
}

// Cron expressions can be checked before use.
func ExampleParseCron() {
	c, err := natsched.ParseCron("30 2 * * *", "Europe/Berlin")
	if err != nil {
		panic(err)
	}
	// 02:30 does not exist in Berlin on 29 March 2026: it fires once, at
	// the end of the gap.
	t := time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)
	for range 3 {
		t = c.Next(t)
		fmt.Println(t.In(c.Location()).Format("Mon 2 Jan 15:04 MST"))
	}
	// Output:
	// Sun 29 Mar 03:00 CEST
	// Mon 30 Mar 02:30 CEST
	// Tue 31 Mar 02:30 CEST
}
