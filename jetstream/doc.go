// Package jetstream is the natsched.Scheduler for production: schedules
// live in a JetStream KV bucket, one instance at a time holds a lease and
// fires them into JetStream, and durable consumers hand fired messages to
// typed handlers.
//
//	s, err := jetstream.New(js, jetstream.WithRouter(router, jetstream.ConsumerConfig{Group: "mailer"}))
//	err = s.Start(ctx)
//	defer s.Close(ctx)
//	id, err := natsched.ScheduleIn(ctx, s, SendEmail{To: "a@b"}, 5*time.Minute)
//
// # Names (contract; "natsched" is the default prefix)
//
//   - KV natsched_schedules: key = schedule ID, value = the schedule's JSON.
//   - KV natsched_leader: key "leader" = {"id": <instance>, "term": <token>}.
//     With WithPartitions(N), N > 1: "leader" is partition 0's lease and
//     says "partitions": N, "leader.<p>" is partition p's, "leader.0"
//     mirrors "leader", and "member.<token>" = {"id", "partitions"} marks
//     each live instance (see partitions.go).
//   - Stream NATSCHED_FIRE on natsched.fire.> (the default home of targets),
//     with a duplicate window of at least 2 minutes and 10 lease TTLs.
//   - Stream NATSCHED_DEAD on natsched.dead.> and natsched.rejected.>.
//   - Durable consumer natsched_<group> on NATSCHED_FIRE for each handler
//     group (WithRouter, NewConsumer).
//   - Stream NATSCHED_INTAKE on natsched.in.> (work queue).
//
// # Streams and buckets are the operator's
//
// Start creates those that do not exist: the fire stream with max age
// WithFireMaxAge (default 7 days), the dead-letter stream with
// WithDeadMaxAge (default 30 days), the intake stream with none (an
// intake message JetStream acknowledged waits for a scheduler however long
// none runs), the lease bucket with the lease TTL, all with WithReplicas.
// Instances that start at once create them once. What exists is left as
// it is (limits, replicas, placement), so an operator's `nats stream edit`
// survives restarts. Start checks only what natsched depends on:
//
//   - the streams capture the subjects natsched uses them for, and the
//     schedules bucket has no TTL: a warning otherwise;
//   - the fire stream's duplicate window is at least MinDuplicateWindow
//     and 10 lease TTLs: ErrDuplicateWindow otherwise, since exactly-once
//     publishing across a failover rests on it;
//   - the lease bucket's TTL is the lease TTL: Start sets it, unless that
//     would shorten it while another instance holds the lease; then this
//     instance runs with the bucket's TTL and logs a warning (see
//     WithLeaseTTL).
//
// # How it works
//
// Any instance serves Put, Get, Cancel, Pause, Resume, Trigger and List
// against the bucket, each write a compare-and-set on the KV revision.
// Every instance keeps an index of (due time, ID) and (status, ID) current
// from a watch of the bucket: a status-filtered List takes its candidates
// from it, once it has caught up with every write the bucket acknowledged
// before the call, and reads their current values. The instance holding
// the lease (one lease per partition with WithPartitions, each partition
// fired by the instance holding its lease; see package
// jetstream/internal/lease for its state model) sleeps on a single timer
// until the earliest due time, reads each due schedule, publishes its
// occurrences with Nats-Msg-Id set to the occurrence ID, and writes the new
// state only after the PubAck.
//
// # Guarantees
//
//   - Each occurrence is stored in JetStream at most once within the
//     duplicate window, and is not lost: a leader that dies between
//     publishing and recording republishes the same message ID on the next
//     attempt, or its successor does, and JetStream drops the copy
//     (TestCrashBetweenPublishAndStateWrite; TestInstancesFireEachOccurrenceOnce
//     counts 0 lost and 0 duplicated of 10,000 with the leader killed).
//   - A killed leader is replaced about one lease TTL after its last
//     renewal (default 3s): followers see the lease expire through the
//     bucket's limit markers and campaign at once, with their index already
//     loaded. The failover test bounds the gap by TTL + 1s.
//   - A leader stops firing before its lease can expire on the server: it
//     renews every TTL/3 and publishes only within 2/3 TTL of its last
//     confirmed renewal, checked before every publish, so a process frozen
//     mid-batch publishes nothing once it wakes past its lease
//     (TestFrozenBatchPublishesNothingAfterItsLease, and the SIGSTOP test
//     in cmd/natsched). A renewal that is slow but accepted keeps the lease.
//   - A Put or intake is acknowledged only after the bucket stored it; a
//     rejected request changes nothing. A target that no stream captures is
//     refused at Put.
//   - A publish that fails (stream gone, no quorum) is retried with backoff
//     capped at one minute; last_error says why; the occurrence is never
//     skipped.
//   - After a reconnect (server restart, network blip) watches, the lease
//     and consumers resume without restarting the scheduler
//     (TestSurvivesServerRestart).
//   - Misfire policies apply to occurrences planned while no leader ran
//     (TestRestartKeepsSchedules).
//   - A handler group takes only what is its own: its durable filters on
//     the subjects of its router's handlers and, when new, starts with
//     the messages fired after it was created; a message that reaches it
//     without a handler is terminated for the group and never
//     dead-lettered (TestTypedGroupNextToTheDaemon,
//     TestConsumerNewGroupTakesOnlyNewMessagesOfItsTypes,
//     TestConsumerSkipsWhatNoHandlerTakes). Restarting with other handlers
//     updates the filter and keeps the position
//     (TestConsumerRestartUpdatesFilter).
//
// Limits: if a state write keeps failing for longer than the duplicate
// window after its publish succeeded, a later republish is a duplicate.
// Targets captured by your own streams are deduplicated only within those
// streams' windows.
package jetstream
