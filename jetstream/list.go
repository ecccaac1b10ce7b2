package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/natsched/natsched"
)

// listCatchUp bounds how long a status-filtered list waits for this
// instance's index to catch up with the bucket (while a new instance loads
// a large bucket, or a watch restarts after a reconnect); then it is
// natsched.ErrUnavailable (503), not a slow scan of every value.
const listCatchUp = 3 * time.Second

// list answers natsched.Scheduler.List. The candidates of a page come from
// the bucket's key listing without a status filter, and from the index
// with one (after it has caught up with every write acknowledged before
// the call, so that a list sees the caller's own writes); the page's values
// are then read from the bucket, so they are current, and a value whose
// status no longer matches is left out. Values that cannot be decoded are
// skipped and counted in Skipped.
func (st *store) list(ctx context.Context, o natsched.ListOptions) (*natsched.ListPage, error) {
	limit, err := natsched.CheckList(&o)
	if err != nil {
		return nil, err
	}
	var next nextIDs
	if o.Status == "" {
		next, err = st.listedKeys(ctx, o)
	} else {
		next, err = st.indexedKeys(ctx, o)
	}
	if err != nil {
		return nil, err
	}
	return st.fillPage(ctx, o, limit, next)
}

// nextIDs returns up to n candidate IDs after after, in byte order; fewer
// than n means there are no more.
type nextIDs func(ctx context.Context, after string, n int) ([]string, error)

// listedKeys lists the bucket's keys in o's range, in one pass over them.
func (st *store) listedKeys(ctx context.Context, o natsched.ListOptions) (nextIDs, error) {
	var lister js.KeyLister
	var err error
	if o.Prefix == "" {
		lister, err = st.kv.ListKeys(ctx)
	} else {
		lister, err = st.kv.ListKeysFiltered(ctx, o.Prefix, o.Prefix+".>")
	}
	if err != nil {
		return nil, unavailable(err)
	}
	var keys []string
	for k := range lister.Keys() {
		if k > o.After && natsched.MatchPrefix(k, o.Prefix) {
			keys = append(keys, k)
		}
	}
	if err := lister.Stop(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		_ = err // the listing is complete; a failed unsubscribe does not matter
	}
	slices.Sort(keys)
	return func(_ context.Context, after string, n int) ([]string, error) {
		i, found := slices.BinarySearch(keys, after)
		if found {
			i++
		}
		return keys[i:min(len(keys), i+n)], nil
	}, nil
}

// indexedKeys asks the index for the IDs it knows with o's status (and
// those whose status it cannot tell), once it has seen every write the
// bucket holds now.
func (st *store) indexedKeys(ctx context.Context, o natsched.ListOptions) (nextIDs, error) {
	last, err := st.lastSeq(ctx)
	if err != nil {
		return nil, err
	}
	r := listReq{last: last, status: statusOf(o.Status), prefix: o.Prefix}
	return func(ctx context.Context, after string, n int) ([]string, error) {
		wctx, cancel := context.WithTimeout(ctx, listCatchUp)
		defer cancel()
		r.after, r.n = after, n
		ids, err := st.candidates(wctx, r)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, fmt.Errorf("%w: the index has not caught up with the bucket within %s", natsched.ErrUnavailable, listCatchUp)
		}
		r.last = 0 // caught up once is enough for this list
		return ids, err
	}, nil
}

// fillPage reads the candidates' values in batches until the page is full
// or the candidates run out. Next is set when candidates remain after a
// full page.
func (st *store) fillPage(ctx context.Context, o natsched.ListOptions, limit int, next nextIDs) (*natsched.ListPage, error) {
	page := &natsched.ListPage{Schedules: []*natsched.Schedule{}}
	after := o.After
	for {
		need := limit - len(page.Schedules)
		ids, err := next(ctx, after, need+1)
		if err != nil {
			return nil, err
		}
		more := len(ids) > need
		ids = ids[:min(len(ids), need)]
		values, err := st.readValues(ctx, ids)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			m, ok := values[id]
			if !ok || m.deleted {
				continue // cancelled since
			}
			sch, err := decodeValue(id, m.seq, m.data)
			if err != nil || !natsched.ValidID(id) {
				page.Skipped++
				continue
			}
			if o.Status == "" || sch.Status == o.Status {
				page.Schedules = append(page.Schedules, sch)
			}
		}
		switch {
		case !more:
			return page, nil
		case len(page.Schedules) == limit:
			page.Next = page.Schedules[limit-1].ID
			return page, nil
		}
		after = ids[len(ids)-1]
	}
}
