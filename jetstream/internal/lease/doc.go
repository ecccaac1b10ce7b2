// Package lease decides which instance fires: one key in a JetStream KV
// bucket, held by at most one instance at a time. It knows nothing of
// firing; it tells a Holder when a term begins, how long it is safe to act
// under it, and when it ends.
//
// The value under the key is {"id": <instance name>, "term": <random
// token>, "since": <time>} (contract: key "leader" in <prefix>_leader).
//
// # States
//
// An instance is in exactly one:
//
//	follower  --(key absent, atomic Create succeeds)-->  leader
//	leader    --(renewal rejected: someone else holds the key)-->  follower
//	leader    --(no renewal confirmed for a whole TTL)-->  follower
//	leader    --(Run's context ends: step down, then delete the key)-->  stopped
//
// # Safety
//
// Safety comes from the server: Create succeeds only when the key is
// absent, and a renewal is an Update checked against the revision the
// leader last wrote, so two instances never both hold a confirmed lease.
// The server expires the key no earlier than TTL after it stored the last
// renewal, which came after the leader sent it. So the Holder is told it is
// safe to act until 2/3 TTL after the send time of the last confirmed
// renewal: it stops acting at least TTL/3 before anyone else can win, and a
// new leader needs no extra wait. What local time is trusted for: only
// intervals on the lease clock (Go's monotonic clock in production).
//
// # Liveness
//
// A leader renews every TTL/3 (one message a second at the default 3s).
// A renewal that comes back late but succeeds proves that nobody took
// over (the server accepted the revision this leader last wrote): the
// leader keeps the lease, the Holder's deadline moves on, and if the
// deadline had already passed the next renewal goes out at once, so one
// slow round trip (a starved CPU, a saturated link) pauses firing for
// moments instead of a whole TTL. A leader gives up only when a renewal is
// rejected, or when no renewal has been confirmed for a whole TTL (the key
// may have expired on the server).
//
// Followers learn of a release or an expiry from a watch of the key: with
// the bucket's limit markers the expiry is pushed to them, and they
// campaign at once after a small random delay so they do not stampede.
// They campaign on a timer only while their watch is down, when the server
// has no limit markers, and after every reconnect.
//
// # Terms
//
// A term is one win. The random token makes every term distinct, so a
// restarted process never mistakes a lease under its own name for its own:
// it waits for it to expire like anyone else. A renewal whose reply was
// lost (the server applied it, the leader timed out) leaves the leader
// with a stale revision; it reads the key back and, if the term is still
// its own, carries on from the stored revision.
package lease
