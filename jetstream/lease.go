package jetstream

import (
	"context"
	"time"

	"github.com/natsched/natsched/jetstream/internal/lease"
)

// The lease (package internal/lease, whose doc states its model) decides
// which instance fires; the firing loop is its Holder: it fires only
// within a term, and publishes only while the term's fence is open.

// Lead starts a term safe until until.
func (l *leader) Lead(ctx context.Context, until time.Time) bool {
	l.fence.open(until)
	return l.switchTo(ctx.Done(), true)
}

// Extend moves the fence to until after a confirmed renewal.
func (l *leader) Extend(until time.Time) {
	l.fence.open(until)
	l.poke()
}

// Step closes the fence at once, so that in-flight fires publish no more,
// then ends the term once they have finished.
func (l *leader) Step() {
	l.fence.close()
	l.switchTo(nil, false)
}

var _ lease.Holder = (*leader)(nil)

// newLease builds the lease of s, with its firing loop as holder.
func (s *Scheduler) newLease() (*lease.Lease, error) {
	return lease.New(lease.Config{
		KV: s.leaseKV, Key: LeaderKey, Name: s.o.name, TTL: s.o.leaseTTL,
		Clock: s.o.leaseClock, Now: s.now, Markers: s.leaseMarkers,
		Conn: s.nc, Logger: s.log, Holder: s.loop,
	})
}

// currentLeader returns the instance name in the lease, or "".
func currentLeader(ctx context.Context, s *Scheduler) (string, error) {
	v, _, err := lease.Current(ctx, s.leaseKV, LeaderKey)
	return v.ID, unavailable(err)
}
