// Package natsched schedules NATS messages: deliver this in 5 minutes, at
// 09:00 Berlin time, or every weekday at 09:00; cancel, pause, resume,
// trigger and inspect schedules.
//
// This package holds the domain: Schedule and its JSON wire form, the
// Scheduler interface and its errors, cron and time-zone maths (Spec,
// ParseCron), occurrences and their IDs, the Codec registry of message
// types, and the Router that hands fired messages to typed handlers.
// Package memory is an in-process Scheduler for tests and single-process
// use; package jetstream persists schedules in a JetStream KV bucket and
// fires them from one leader. Package schedulertest is the conformance
// suite both pass.
//
//	reg := natsched.NewRegistry()
//	natsched.Register[SendEmail](reg, "email.send")
//	router := natsched.NewRouter(reg)
//	natsched.Handle(router, func(ctx context.Context, m SendEmail) error { ... })
//	s, _ := memory.New(memory.WithDispatcher(router))
//	id, err := natsched.ScheduleIn(ctx, s, SendEmail{To: "a@b"}, 5*time.Minute)
//
// # When things fire
//
// A schedule has exactly one of At (an instant), In (a delay from
// acceptance, stored as At), Every (a fixed interval, first fire one
// interval after acceptance, or on the grid of Start) and Cron (5 fields;
// 6 fields read seconds first, as NATS server message schedules and Quartz
// do; 7 fields with a year; or a macro such as @daily), read in TZ. Start
// and End bound a recurring schedule and MaxRuns caps its fires.
//
// Daylight saving follows Vixie cron: a cron expression whose minute and
// hour fields are not wildcards fires a wall time skipped by a DST gap
// once, right after the gap, and a wall time repeated by a fall-back once,
// at its first pass; any other expression fires at each real instant whose
// wall time matches, so "0 * * * *" stays hourly in real time.
//
// # Guarantees
//
//   - Each occurrence has an ID derived from the schedule ID, its
//     generation and the planned time only (see OccurrenceID); replacing a
//     schedule changes its generation, so old and new never share an ID.
//     The JetStream scheduler publishes with that ID as Nats-Msg-Id, so a
//     republished occurrence is dropped by JetStream's duplicate window.
//   - Natsched-Planned always carries the nominal planned time; jitter only
//     delays the publish, deterministically per occurrence.
//   - A one-shot fires once even when late; it is never dropped by a
//     misfire policy, and a paused one fires on resume.
//   - Occurrences of a recurring schedule that fall while no scheduler was
//     running (planned more than the misfire threshold, default 1s, before
//     the current leader took over) follow its Misfire policy: skip, once
//     (one fire planned at the latest missed occurrence, the default) or all
//     (each, oldest first, within Catchup, at most 10000). Occurrences that
//     are merely late under load are not missed: they all fire.
//   - Occurrences planned while a schedule is paused are skipped; after
//     Resume the next fire is the first occurrence after it.
//   - Put validates everything before storing; a rejected request changes
//     nothing. Put with a Revision is a compare-and-set.
//   - The memory scheduler, driven by a clock.Fake, dispatches every
//     occurrence exactly once, with the clock at its planned instant plus
//     its jitter (the conformance suite checks this against the memory
//     scheduler with Harness.Exact).
package natsched
