package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched/natschedtest"
)

// schedulesBucket is the KV bucket of the default prefix.
const schedulesBucket = "natsched_schedules"

// storedJSON is a one-shot as the scheduler stores it, written by hand.
func storedJSON(id, status string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"subject":"natsched.fire.list","at":%q,"status":%q,"paused":%t,`+
		`"next_run":%q,"created":"2026-01-01T00:00:00Z","updated":"2026-01-01T00:00:00Z","generation":1}`,
		id, farFuture, status, status == "paused", farFuture)
}

// listPages follows natsched.api.list[.<prefix>] to the end with req (a
// map of list fields) and returns the IDs and the sum of "skipped".
func listPages(t *testing.T, d *daemon, prefix string, req map[string]any) ([]string, int64) {
	t.Helper()
	var all []string
	var skipped int64
	for pages := 0; ; pages++ {
		require.Less(t, pages, 1000, "paging does not end")
		page := ok(t, d.api(t, "list", prefix, req))
		require.Contains(t, page, "skipped", "replies always carry skipped")
		all = append(all, ids(t, page)...)
		skipped += num(t, page, "skipped")
		next := str(t, page, "next")
		if next == "" {
			return all, skipped
		}
		req["after"] = next
	}
}

// TestWireListSkipsUnreadable: a value no one can decode, written straight
// into the bucket as an attacker with write access to it would, is left out
// of every list that covers it and counted in "skipped"; the other
// schedules are listed, and nothing fails.
func TestWireListSkipsUnreadable(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "list-unreadable", nil)
	for _, id := range []string{"unread.a", "unread.b", "unread.c"} {
		ok(t, d.api(t, "put", id, map[string]any{"subject": "natsched.fire.list", "at": farFuture}))
	}
	ok(t, d.api(t, "pause", "unread.b", nil))
	kv, err := d.js.KeyValue(context.Background(), schedulesBucket)
	require.NoError(t, err)
	_, err = kv.Put(context.Background(), "unread.bad", []byte("not json"))
	require.NoError(t, err)

	for _, tc := range []struct {
		prefix, status string
		limit          int
		want           []string
		skipped        int64
	}{
		{"", "", 0, []string{"unread.a", "unread.b", "unread.c"}, 1},
		{"unread", "", 0, []string{"unread.a", "unread.b", "unread.c"}, 1},
		{"unread", "", 1, []string{"unread.a", "unread.b", "unread.c"}, 1},
		{"unread", "active", 0, []string{"unread.a", "unread.c"}, 1},
		{"unread", "active", 1, []string{"unread.a", "unread.c"}, 1},
		{"unread", "paused", 0, []string{"unread.b"}, 1},
		{"unread", "done", 0, []string{}, 1},
		{"", "paused", 0, []string{"unread.b"}, 1},
		{"unread.a", "", 0, []string{"unread.a"}, 0},
		{"unread.a", "active", 0, []string{"unread.a"}, 0},
	} {
		req := map[string]any{"status": tc.status}
		if tc.limit > 0 {
			req["limit"] = tc.limit
		}
		got, skipped := listPages(t, d, tc.prefix, req)
		if len(got) == 0 {
			got = []string{}
		}
		require.Equal(t, tc.want, got, "%+v", tc)
		require.Equal(t, tc.skipped, skipped, "%+v", tc)
	}
	// One reply, byte for byte the contract's shape.
	page := ok(t, d.api(t, "list", "unread", map[string]any{"status": "paused"}))
	require.EqualValues(t, 1, num(t, page, "skipped"))
	require.Equal(t, []string{"unread.b"}, ids(t, page))
}

// TestWireListUnderLoad: while 20 clients keep asking for a status-filtered
// page over 30,000 schedules, status and put still answer within the
// normal request timeout.
func TestWireListUnderLoad(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "list-load", nil)
	const n, paused = 30_000, 5
	key := func(i int) string { return fmt.Sprintf("load.k%05d", i) }
	// The paused ones come last by ID: a scan of the bucket would read
	// every value before it found one.
	for i := range n {
		status := "active"
		if i >= n-paused {
			status = "paused"
		}
		_, err := d.js.PublishMsgAsync(&nats.Msg{Subject: "$KV." + schedulesBucket + "." + key(i), Data: storedJSON(key(i), status)},
			js.WithStallWait(10*time.Second))
		require.NoError(t, err)
	}
	select {
	case <-d.js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		t.Fatalf("%d bucket writes not acknowledged within a minute", d.js.PublishAsyncPending())
	}
	natschedtest.Eventually(t, 60*time.Second, func() bool {
		return num(t, ok(t, d.api(t, "status", "", nil)), "pending") >= n
	}, "the instance indexed %d schedules", n)

	var (
		wg      sync.WaitGroup
		stop    = make(chan struct{})
		replies atomic.Int64
		errs    = make(chan error, 20)
	)
	for range 20 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				m, err := d.nc.Request(apiPrefix+".list", []byte(`{"status":"paused","limit":1}`), reqTimeout)
				switch {
				case err != nil:
					errs <- fmt.Errorf("list: %w", err)
					return
				case m.Header.Get(hdrErrCode) != "":
					errs <- fmt.Errorf("list: %s", m.Data)
					return
				}
				var page struct {
					Schedules []struct {
						ID string `json:"id"`
					} `json:"schedules"`
				}
				if err := json.Unmarshal(m.Data, &page); err != nil || len(page.Schedules) != 1 || page.Schedules[0].ID != key(n-paused) {
					errs <- fmt.Errorf("list: got %s (%v), want %s", m.Data, err, key(n-paused))
					return
				}
				replies.Add(1)
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	}()
	natschedtest.Eventually(t, 30*time.Second, func() bool { return replies.Load() >= 40 }, "the lists are under way")
	for i := range 10 {
		st := ok(t, d.api(t, "status", "", nil))
		require.GreaterOrEqual(t, num(t, st, "pending"), int64(n))
		ok(t, d.api(t, "put", fmt.Sprintf("load.new.%d", i), map[string]any{"subject": "natsched.fire.list", "at": farFuture}))
	}
	require.Positive(t, replies.Load())
}
