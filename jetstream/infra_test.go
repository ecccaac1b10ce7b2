package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	js "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched/internal/subject"
	"github.com/natsched/natsched/natschedtest"
)

// warnings returns the warnings about a stream or a bucket a scheduler
// logged into logs (others, such as a lease watch cut short by Close, are
// not this file's business).
func warnings(logs *natschedtest.Buffer) []string {
	var out []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "level=WARN") && (strings.Contains(line, " stream=") || strings.Contains(line, " bucket=")) {
			out = append(out, line)
		}
	}
	return out
}

func capturedLogger() (*slog.Logger, *natschedtest.Buffer) {
	buf := &natschedtest.Buffer{}
	return slog.New(slog.NewTextHandler(buf, nil)), buf
}

func infraCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func streamConfig(t *testing.T, jsc js.JetStream, name string) js.StreamConfig {
	t.Helper()
	st, err := jsc.Stream(infraCtx(t), name)
	require.NoError(t, err, "stream %s", name)
	return st.CachedInfo().Config
}

// startStop starts a scheduler on srv and closes it again.
func startStop(t *testing.T, srv *natschedtest.Server, opts ...Option) error {
	t.Helper()
	s, err := New(srv.JetStream(t), append([]Option{WithLeaseTTL(time.Second), WithLogger(quietLogger())}, opts...)...)
	require.NoError(t, err)
	err = s.Start(infraCtx(t))
	require.NoError(t, s.Close(infraCtx(t)))
	return err
}

// TestStreamsAreCreatedWithMaxAges: absent streams are created with the
// max ages asked for; the intake stream with none.
func TestStreamsAreCreatedWithMaxAges(t *testing.T) {
	t.Parallel()
	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		srv := natschedtest.RunServer(t)
		require.NoError(t, startStop(t, srv))
		jsc := srv.JetStream(t)
		require.Equal(t, 168*time.Hour, streamConfig(t, jsc, "NATSCHED_FIRE").MaxAge)
		require.Equal(t, 720*time.Hour, streamConfig(t, jsc, "NATSCHED_DEAD").MaxAge)
		require.Zero(t, streamConfig(t, jsc, "NATSCHED_INTAKE").MaxAge, "intake keeps a message until a scheduler takes it")
		require.Equal(t, 2*time.Minute, streamConfig(t, jsc, "NATSCHED_FIRE").Duplicates)
	})
	t.Run("options", func(t *testing.T) {
		t.Parallel()
		srv := natschedtest.RunServer(t)
		require.NoError(t, startStop(t, srv, WithFireMaxAge(time.Hour), WithDeadMaxAge(0)))
		jsc := srv.JetStream(t)
		require.Equal(t, time.Hour, streamConfig(t, jsc, "NATSCHED_FIRE").MaxAge)
		require.Zero(t, streamConfig(t, jsc, "NATSCHED_DEAD").MaxAge, "0: no limit")
	})
	t.Run("invalid", func(t *testing.T) {
		t.Parallel()
		srv := natschedtest.RunServer(t)
		_, err := New(srv.JetStream(t), WithFireMaxAge(-time.Second))
		require.ErrorContains(t, err, "fire max age must not be negative")
		_, err = New(srv.JetStream(t), WithDeadMaxAge(-time.Second))
		require.ErrorContains(t, err, "dead max age must not be negative")
		_, err = New(srv.JetStream(t), WithFireMaxAge(time.Minute))
		require.ErrorContains(t, err, "fire max age 1m0s is shorter than the fire stream's duplicate window 2m0s")
	})
}

// TestExistingStreamsAndBucketsAreLeftAlone: what the operator changed
// survives the next start; a second start changes nothing.
func TestExistingStreamsAndBucketsAreLeftAlone(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	jsc := srv.JetStream(t)
	ctx := infraCtx(t)
	require.NoError(t, startStop(t, srv))

	edit := func(name string, f func(*js.StreamConfig)) {
		cfg := streamConfig(t, jsc, name)
		f(&cfg)
		_, err := jsc.UpdateStream(ctx, cfg)
		require.NoError(t, err, "edit %s", name)
	}
	edit("NATSCHED_FIRE", func(c *js.StreamConfig) { c.MaxAge, c.MaxMsgs, c.Duplicates = 24*time.Hour, 5000, 5*time.Minute })
	edit("NATSCHED_DEAD", func(c *js.StreamConfig) { c.MaxAge, c.MaxBytes = time.Hour, 1<<20 })
	edit("NATSCHED_INTAKE", func(c *js.StreamConfig) { c.MaxAge = 48 * time.Hour })
	edit("KV_natsched_schedules", func(c *js.StreamConfig) { c.MaxBytes = 64 << 20 })
	before := map[string]js.StreamConfig{}
	for _, name := range []string{"NATSCHED_FIRE", "NATSCHED_DEAD", "NATSCHED_INTAKE", "KV_natsched_schedules", "KV_natsched_leader"} {
		before[name] = streamConfig(t, jsc, name)
	}

	log, logs := capturedLogger()
	require.NoError(t, startStop(t, srv, WithFireMaxAge(time.Hour), WithDeadMaxAge(2*time.Hour), WithLogger(log)))
	for name, want := range before {
		require.Equal(t, want, streamConfig(t, jsc, name), "%s as the operator left it", name)
	}
	require.Empty(t, warnings(logs), "nothing natsched depends on is off")
}

// TestShortDuplicateWindowRefused: a fire stream whose duplicate window
// cannot cover a failover stops Start with an error naming the stream and
// both windows.
func TestShortDuplicateWindowRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		window time.Duration
		lease  time.Duration
		want   string
	}{
		{"under 2m", time.Minute, time.Second,
			"stream NATSCHED_FIRE has a duplicate window of 1m0s, natsched needs at least 2m0s (2m or 10 lease TTLs of 1s"},
		{"under 10 leases", 3 * time.Minute, 20 * time.Second,
			"stream NATSCHED_FIRE has a duplicate window of 3m0s, natsched needs at least 3m20s (2m or 10 lease TTLs of 20s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := natschedtest.RunServer(t)
			_, err := srv.JetStream(t).CreateStream(infraCtx(t), js.StreamConfig{
				Name: "NATSCHED_FIRE", Subjects: []string{"natsched.fire.>"}, Duplicates: tc.window,
			})
			require.NoError(t, err)
			err = startStop(t, srv, WithLeaseTTL(tc.lease))
			require.ErrorIs(t, err, ErrDuplicateWindow)
			require.ErrorContains(t, err, tc.want)
			require.Equal(t, tc.window, streamConfig(t, srv.JetStream(t), "NATSCHED_FIRE").Duplicates, "not changed behind the operator's back")
		})
	}
}

// TestMismatchesOnlyWarn: streams that miss natsched's subjects and a
// schedules bucket with a TTL are reported, and the scheduler still starts.
func TestMismatchesOnlyWarn(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	jsc := srv.JetStream(t)
	ctx := infraCtx(t)
	for name, subjects := range map[string][]string{
		"NATSCHED_FIRE":   {"natsched.fire.billing.>"},
		"NATSCHED_DEAD":   {"natsched.dead.>"},
		"NATSCHED_INTAKE": {"natsched.in.*"},
	} {
		_, err := jsc.CreateStream(ctx, js.StreamConfig{Name: name, Subjects: subjects})
		require.NoError(t, err)
	}
	_, err := jsc.CreateKeyValue(ctx, js.KeyValueConfig{Bucket: "natsched_schedules", TTL: time.Hour})
	require.NoError(t, err)

	log, logs := capturedLogger()
	require.NoError(t, startStop(t, srv, WithLogger(log)))
	warns := warnings(logs)
	for _, want := range []string{
		"stream=NATSCHED_FIRE needs=natsched.fire.> has=natsched.fire.billing.>",
		"stream=NATSCHED_DEAD needs=natsched.rejected.> has=natsched.dead.>",
		"stream=NATSCHED_INTAKE needs=natsched.in.> has=natsched.in.*",
		"the schedules bucket has a TTL",
	} {
		found := false
		for _, w := range warns {
			found = found || strings.Contains(w, want)
		}
		require.True(t, found, "a warning with %q in:\n%s", want, strings.Join(warns, "\n"))
	}
	require.Len(t, warns, 4, "one warning each:\n%s", strings.Join(warns, "\n"))
	require.Equal(t, []string{"natsched.fire.billing.>"}, streamConfig(t, jsc, "NATSCHED_FIRE").Subjects, "left alone")
}

// TestLeaseBucketFollowsTheLease: the lease bucket's TTL becomes the lease
// TTL, except that it is not shortened under a lease someone holds.
func TestLeaseBucketFollowsTheLease(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	jsc := srv.JetStream(t)
	ttl := func() time.Duration { return streamConfig(t, jsc, "KV_natsched_leader").MaxAge }

	require.NoError(t, startStop(t, srv, WithLeaseTTL(time.Second)))
	require.Equal(t, time.Second, ttl())
	require.NoError(t, startStop(t, srv, WithLeaseTTL(2*time.Second)), "longer, the lease free")
	require.Equal(t, 2*time.Second, ttl())
	require.NoError(t, startStop(t, srv, WithLeaseTTL(time.Second)), "shorter, the lease free")
	require.Equal(t, time.Second, ttl())

	holder := testScheduler(t, srv, "holder", WithLeaseTTL(time.Second))
	waitLeader(t, holder)
	require.NoError(t, startStop(t, srv, WithLeaseTTL(2*time.Second)), "longer, the lease held")
	require.Equal(t, 2*time.Second, ttl(), "lengthened under the holder: it renews more often than it must")

	log, logs := capturedLogger()
	s, err := New(jsc, WithName("newcomer"), WithLeaseTTL(time.Second), WithLogger(log))
	require.NoError(t, err)
	require.NoError(t, s.Start(infraCtx(t)))
	t.Cleanup(func() { require.NoError(t, s.Close(infraCtx(t))) })
	require.Equal(t, 2*time.Second, ttl(), "not shortened under the holder")
	require.Equal(t, 2*time.Second, s.o.leaseTTL, "the newcomer runs with the bucket's TTL")
	warns := warnings(logs)
	require.Len(t, warns, 1)
	require.Contains(t, warns[0], "keeping the bucket's while another instance holds the lease")
	require.Contains(t, warns[0], "holder=holder")
}

func TestCreateIfAbsent(t *testing.T) {
	t.Parallel()
	absent, exists, other := errors.New("absent"), errors.New("exists"), errors.New("other")
	ctx := context.Background()
	// What get answers, call by call; create answers createErr.
	run := func(gets []error, createErr error) (string, error, int) {
		calls := 0
		get := func(context.Context) (string, error) {
			err := gets[calls]
			calls++
			if err != nil {
				return "", err
			}
			return "found", nil
		}
		create := func(context.Context) (string, error) {
			if createErr != nil {
				return "", createErr
			}
			return "created", nil
		}
		v, err := createIfAbsent(ctx, get, create, absent, exists)
		return v, err, calls
	}
	v, err, gets := run([]error{nil}, nil)
	require.Equal(t, "found", v)
	require.NoError(t, err)
	require.Equal(t, 1, gets)

	v, err, _ = run([]error{absent}, nil)
	require.Equal(t, "created", v)
	require.NoError(t, err)

	v, err, gets = run([]error{absent, nil}, exists)
	require.Equal(t, "found", v, "another instance created it in between")
	require.NoError(t, err)
	require.Equal(t, 2, gets)

	_, err, _ = run([]error{other}, nil)
	require.ErrorIs(t, err, other)
	_, err, _ = run([]error{absent}, other)
	require.ErrorIs(t, err, other)
}

// TestInstancesStartTogether: instances creating the same streams at once,
// with different limits, all start.
func TestInstancesStartTogether(t *testing.T) {
	t.Parallel()
	srv := natschedtest.RunServer(t)
	jsc := srv.JetStream(t)
	ctx := infraCtx(t)
	errs := make(chan error, 4)
	for i := range cap(errs) {
		go func() {
			age := time.Duration(i+1) * time.Hour
			s, err := New(jsc, WithName(fmt.Sprintf("together-%d", i)), WithLeaseTTL(time.Second),
				WithLogger(quietLogger()), WithFireMaxAge(age), WithDeadMaxAge(age))
			if err == nil {
				err = s.Start(ctx)
				err = errors.Join(err, s.Close(ctx))
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		require.NoError(t, <-errs)
	}
}

func TestSubjectMatches(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		filter, want string
		ok           bool
	}{
		{"natsched.fire.>", "natsched.fire.>", true},
		{">", "natsched.fire.>", true},
		{"natsched.>", "natsched.fire.>", true},
		{"natsched.*.>", "natsched.fire.>", true},
		{"*.fire.>", "natsched.fire.>", true},
		{"natsched.fire.*", "natsched.fire.>", false},
		{"natsched.fire.a.>", "natsched.fire.>", false},
		{"natsched.fire", "natsched.fire.>", false},
		{"natsched.dead.>", "natsched.fire.>", false},
		{"natsched.in.*", "natsched.in.>", false},
		{"natsched.in.*", "natsched.in.*", true},
		{"natsched.in.x", "natsched.in.*", false},
		{"a.b", "a.b", true},
		{"a.*", "a.b", true},
		{"a.b.c", "a.b", false},
	} {
		require.Equal(t, tc.ok, subject.Match(tc.filter, tc.want), "%s captures %s", tc.filter, tc.want)
	}
}
