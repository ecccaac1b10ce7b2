package natsched_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/natsched/natsched"
)

// Top-level names in this package are shared with other test files, hence
// the router prefix.

type routerPing struct {
	N int `json:"n"`
}

type routerPong struct {
	S string `json:"s"`
}

type routerCtxKey struct{}

func routerNew(t *testing.T) *natsched.Router {
	t.Helper()
	reg := natsched.NewRegistry()
	require.NoError(t, natsched.Register[routerPing](reg, "test.ping"))
	require.NoError(t, natsched.Register[routerPong](reg, "test.pong"))
	return natsched.NewRouter(reg)
}

func routerTyped(typ, data string) *natsched.Message {
	return &natsched.Message{
		Subject: "natsched.fire.x",
		Header:  nats.Header{natsched.HeaderType: []string{typ}},
		Data:    []byte(data),
	}
}

func TestRouterTypedDispatch(t *testing.T) {
	t.Parallel()
	r := routerNew(t)
	var gotPing, gotPong atomic.Value
	require.NoError(t, natsched.Handle(r, func(ctx context.Context, v routerPing) error {
		if ctx.Value(routerCtxKey{}) != "k" {
			return errors.New("context not passed through")
		}
		gotPing.Store(v)
		return nil
	}))
	require.NoError(t, natsched.Handle(r, func(_ context.Context, v routerPong) error {
		gotPong.Store(v)
		return nil
	}))
	ctx := context.WithValue(t.Context(), routerCtxKey{}, "k")

	require.NoError(t, r.Dispatch(ctx, routerTyped("test.ping", `{"n":7}`)))
	require.NoError(t, r.Dispatch(ctx, routerTyped("test.pong", `{"s":"hi"}`)))
	require.Equal(t, routerPing{N: 7}, gotPing.Load())
	require.Equal(t, routerPong{S: "hi"}, gotPong.Load())

	// The handler's own error comes back unchanged.
	r2 := routerNew(t)
	require.NoError(t, natsched.Handle(r2, func(context.Context, routerPing) error { return io.ErrUnexpectedEOF }))
	require.Equal(t, io.ErrUnexpectedEOF, r2.Dispatch(ctx, routerTyped("test.ping", `{}`)))

	require.NotNil(t, r.Registry())
	require.NotSame(t, r.Registry(), r2.Registry())
	reg := natsched.NewRegistry()
	require.Same(t, reg, natsched.NewRouter(reg).Registry())
}

func TestRouterHandleErrors(t *testing.T) {
	t.Parallel()
	r := routerNew(t)
	type unregistered struct{}
	err := natsched.Handle(r, func(context.Context, unregistered) error { return nil })
	require.ErrorIs(t, err, natsched.ErrUnknownType)
	require.ErrorContains(t, err, "unregistered")

	ok := func(context.Context, routerPing) error { return nil }
	require.NoError(t, natsched.Handle(r, ok))
	err = natsched.Handle(r, ok)
	require.ErrorIs(t, err, natsched.ErrDuplicate)
	require.ErrorContains(t, err, `"test.ping"`)

	require.ErrorIs(t, natsched.Handle[routerPong](r, nil), natsched.ErrInvalid)
	require.ErrorIs(t, r.HandleSubject("a.b", nil), natsched.ErrInvalid)
}

func TestRouterSubjectDispatch(t *testing.T) {
	t.Parallel()
	r := routerNew(t)
	patterns := []string{"a.b.c", "a.b.*", "a.*.c", "a.>", "a.*.>", "*.b.c", "*.q.r",
		"x.*", "x.>", "y", "*.*.*.*", "a.b.c.>"}
	for _, p := range patterns {
		require.NoError(t, r.HandleSubject(p, func(context.Context, *natsched.Message) error {
			return fmt.Errorf("matched %s", p)
		}), p)
	}
	tests := []struct {
		subject string
		want    string // pattern, or "" for no handler
	}{
		{"a.b.c", "a.b.c"},       // exact literal beats every pattern
		{"y", "y"},               // single token
		{"a.b.d", "a.b.*"},       // no ">" beats "a.>" at equal wildcard count
		{"a.x.c", "a.*.c"},       // idem
		{"a.q.r", "*.q.r"},       // idem, though "a.>" has the leftmost literal
		{"z.b.c", "*.b.c"},       // "*" as first token
		{"a.b.c.d", "a.b.c.>"},   // literal beats wildcard at token 2 ("a.>")
		{"a.b.c.d.e", "a.b.c.>"}, // ">" matches several tokens
		{"a.x", "a.>"},           // only match
		{"a.x.y", "a.>"},         // one wildcard beats two ("a.*.>")
		{"a.b.x.y", "a.>"},       // one beats two and four ("*.*.*.*")
		{"q.w.e.r", "*.*.*.*"},   // "*" matches exactly one token each
		{"x.1", "x.*"},           // "*" beats ">"
		{"x.1.2", "x.>"},         // "*" does not match two tokens
		{"a", ""},                // ">" needs at least one token
		{"x", ""},                // idem
		{"y.z", ""},              // a literal does not match a prefix
		{"q.w.e", ""},            // too few tokens for "*.*.*.*"
		{"q.w.e.r.t", ""},        // too many
		{"", ""},                 // empty subject
		{"a.b..", ""},            // empty tokens never match, "*" or ">"
		{"a..c", ""},             // idem
		{"x.1.", ""},             // idem
	}
	for _, tt := range tests {
		t.Run(tt.subject, func(t *testing.T) {
			t.Parallel()
			err := r.Dispatch(t.Context(), &natsched.Message{Subject: tt.subject})
			if tt.want == "" {
				require.ErrorIs(t, err, natsched.ErrNoHandler)
				require.ErrorContains(t, err, fmt.Sprintf("%q", tt.subject))
				return
			}
			require.EqualError(t, err, "matched "+tt.want)
		})
	}
}

func TestRouterHandleSubjectErrors(t *testing.T) {
	t.Parallel()
	r := routerNew(t)
	nop := func(context.Context, *natsched.Message) error { return nil }
	for _, p := range []string{"", ".", "a.", ".a", "a..b", "a b", "a.\tb", "a.>.b", ">.a", "a\n"} {
		err := r.HandleSubject(p, nop)
		require.ErrorIs(t, err, natsched.ErrInvalid, p)
		require.ErrorContains(t, err, fmt.Sprintf("%q", p))
	}
	for _, p := range []string{"a.*", ">", "*", "a.b"} {
		require.NoError(t, r.HandleSubject(p, nop), p)
		err := r.HandleSubject(p, nop)
		require.ErrorIs(t, err, natsched.ErrDuplicate, p)
		require.ErrorContains(t, err, fmt.Sprintf("%q", p))
	}
}

func TestRouterNoHandler(t *testing.T) {
	t.Parallel()
	r := routerNew(t)
	subjectCalled := false
	require.NoError(t, r.HandleSubject(">", func(context.Context, *natsched.Message) error {
		subjectCalled = true
		return nil
	}))
	// A registered type without a handler, and an unregistered type: no
	// fallback to subject handlers, which would get a payload of the wrong
	// shape.
	for _, typ := range []string{"test.ping", "other.type"} {
		err := r.Dispatch(t.Context(), routerTyped(typ, `{}`))
		require.ErrorIs(t, err, natsched.ErrNoHandler)
		require.ErrorContains(t, err, fmt.Sprintf("%q", typ))
	}
	require.False(t, subjectCalled, "typed message fell back to a subject handler")

	empty := natsched.NewRouter(nil)
	err := empty.Dispatch(t.Context(), &natsched.Message{Subject: "some.subject"})
	require.ErrorIs(t, err, natsched.ErrNoHandler)
	require.ErrorContains(t, err, `"some.subject"`)
	require.ErrorIs(t, empty.Dispatch(t.Context(), nil), natsched.ErrInvalid)
}

func TestRouterMiddlewareOrder(t *testing.T) {
	t.Parallel()
	r := routerNew(t)
	var calls []string
	record := func(name string) natsched.Middleware {
		return func(next natsched.HandlerFunc) natsched.HandlerFunc {
			return func(ctx context.Context, m *natsched.Message) error {
				calls = append(calls, name+">")
				err := next(ctx, m)
				calls = append(calls, "<"+name)
				return err
			}
		}
	}
	r.Use(record("a"), nil, record("b"))
	require.NoError(t, natsched.Handle(r, func(context.Context, routerPing) error {
		calls = append(calls, "typed")
		return nil
	}))
	r.Use(record("c")) // after Handle: must still apply
	require.NoError(t, r.HandleSubject("raw.>", func(context.Context, *natsched.Message) error {
		calls = append(calls, "raw")
		return nil
	}))

	require.NoError(t, r.Dispatch(t.Context(), routerTyped("test.ping", `{}`)))
	require.NoError(t, r.Dispatch(t.Context(), &natsched.Message{Subject: "raw.1"}))
	require.Equal(t, []string{
		"a>", "b>", "c>", "typed", "<c", "<b", "<a",
		"a>", "b>", "c>", "raw", "<c", "<b", "<a",
	}, calls)

	// Middleware also sees the errors it wraps, decode errors included.
	calls = nil
	require.ErrorIs(t, r.Dispatch(t.Context(), routerTyped("test.ping", `not json`)), natsched.ErrDecode)
	require.Equal(t, []string{"a>", "b>", "c>", "<c", "<b", "<a"}, calls)
}

func TestRouterPanic(t *testing.T) {
	t.Parallel()
	errBoom := errors.New("boom error")
	tests := []struct {
		name     string
		setup    func(*natsched.Router)
		msg      *natsched.Message
		contains []string
		wrapped  error
	}{
		{"typed handler", func(r *natsched.Router) {
			_ = natsched.Handle(r, func(context.Context, routerPing) error { panic("kaboom") })
		}, routerTyped("test.ping", `{}`), []string{"kaboom", `"test.ping"`, "router_test.go"}, nil},
		{"subject handler, error value", func(r *natsched.Router) {
			_ = r.HandleSubject("s.*", func(context.Context, *natsched.Message) error { panic(errBoom) })
		}, &natsched.Message{Subject: "s.1"}, []string{"boom error", `"s.1"`}, errBoom},
		{"runtime error", func(r *natsched.Router) {
			_ = r.HandleSubject("s.*", func(_ context.Context, m *natsched.Message) error {
				var p *routerPing
				m.Subject = fmt.Sprint(p.N)
				return nil
			})
		}, &natsched.Message{Subject: "s.1"}, []string{"nil pointer"}, nil},
		{"middleware at dispatch", func(r *natsched.Router) {
			_ = r.HandleSubject("s.*", func(context.Context, *natsched.Message) error { return nil })
			r.Use(func(natsched.HandlerFunc) natsched.HandlerFunc {
				return func(context.Context, *natsched.Message) error { panic("mw dispatch") }
			})
		}, &natsched.Message{Subject: "s.1"}, []string{"mw dispatch"}, nil},
		{"middleware when wrapping", func(r *natsched.Router) {
			_ = natsched.Handle(r, func(context.Context, routerPing) error { return nil })
			r.Use(func(natsched.HandlerFunc) natsched.HandlerFunc { panic("mw wrap") })
		}, routerTyped("test.ping", `{}`), []string{"mw wrap"}, nil},
		{"middleware returning nil", func(r *natsched.Router) {
			_ = natsched.Handle(r, func(context.Context, routerPing) error { return nil })
			r.Use(func(natsched.HandlerFunc) natsched.HandlerFunc { return nil })
		}, routerTyped("test.ping", `{}`), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := routerNew(t)
			tt.setup(r)
			var err error
			require.NotPanics(t, func() { err = r.Dispatch(t.Context(), tt.msg) })
			require.ErrorIs(t, err, natsched.ErrHandlerPanic)
			codecErrorContains(t, err, tt.contains...)
			if tt.wrapped != nil {
				require.ErrorIs(t, err, tt.wrapped)
			}
			// The router keeps working after a panic.
			require.ErrorIs(t, r.Dispatch(t.Context(), &natsched.Message{Subject: "nothing"}), natsched.ErrNoHandler)
		})
	}
}

func TestRouterDecodeError(t *testing.T) {
	t.Parallel()
	r := routerNew(t)
	called := false
	require.NoError(t, natsched.Handle(r, func(context.Context, routerPing) error {
		called = true
		return nil
	}))
	for _, data := range []string{`{"n":"seven"}`, `{`, ``} {
		err := r.Dispatch(t.Context(), routerTyped("test.ping", data))
		require.ErrorIs(t, err, natsched.ErrDecode, data)
		require.ErrorContains(t, err, `"test.ping"`)
	}
	require.False(t, called, "handler called with an undecodable payload")
}

// Run with -race: 8 goroutines dispatch 1000 messages each while handlers
// and middleware are being added.
func TestRouterConcurrentDispatchAndHandle(t *testing.T) {
	t.Parallel()
	r := routerNew(t)
	var typed, raw, mwCalls atomic.Int64
	require.NoError(t, natsched.Handle(r, func(context.Context, routerPing) error {
		typed.Add(1)
		return nil
	}))
	require.NoError(t, r.HandleSubject("raw.>", func(context.Context, *natsched.Message) error {
		raw.Add(1)
		return nil
	}))
	count := func(next natsched.HandlerFunc) natsched.HandlerFunc {
		return func(ctx context.Context, m *natsched.Message) error {
			mwCalls.Add(1)
			return next(ctx, m)
		}
	}

	var wg sync.WaitGroup
	start := make(chan struct{})
	wg.Go(func() {
		<-start
		for i := range 200 {
			if err := r.HandleSubject(fmt.Sprintf("other.%d.*", i), func(context.Context, *natsched.Message) error {
				return errors.New("other handler")
			}); err != nil {
				t.Error(err)
			}
			if i == 100 {
				if err := natsched.Handle(r, func(context.Context, routerPong) error { return nil }); err != nil {
					t.Error(err)
				}
				r.Use(count)
			}
		}
	})
	const goroutines, perG = 8, 1000
	for g := range goroutines {
		wg.Go(func() {
			<-start
			for i := range perG {
				m := &natsched.Message{Subject: fmt.Sprintf("raw.%d.%d", g, i)}
				if i%2 == 0 {
					m = routerTyped("test.ping", fmt.Sprintf(`{"n":%d}`, i))
				}
				if err := r.Dispatch(t.Context(), m); err != nil {
					t.Errorf("Dispatch: %v", err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	require.EqualValues(t, goroutines*perG/2, typed.Load())
	require.EqualValues(t, goroutines*perG/2, raw.Load())

	// Everything registered concurrently is in effect.
	require.NoError(t, r.Dispatch(t.Context(), routerTyped("test.pong", `{}`)))
	before := mwCalls.Load()
	require.EqualError(t, r.Dispatch(t.Context(), &natsched.Message{Subject: "other.7.x"}), "other handler")
	require.Equal(t, before+1, mwCalls.Load(), "middleware added concurrently does not apply")
}

func TestRouterSubjects(t *testing.T) {
	t.Parallel()
	nop := func(context.Context, *natsched.Message) error { return nil }
	for _, tc := range []struct {
		name     string
		typed    bool     // handle test.ping and test.pong
		patterns []string // HandleSubject
		want     []string
	}{
		{"no handlers", false, nil, nil},
		{"types at their default subjects", true, nil, []string{"natsched.fire.test.ping", "natsched.fire.test.pong"}},
		{"patterns as given", false, []string{"orders.*.paid", "billing.>", "a.b"}, []string{"a.b", "billing.>", "orders.*.paid"}},
		{"a pattern equal to a type's subject once", true, []string{"natsched.fire.test.ping"},
			[]string{"natsched.fire.test.ping", "natsched.fire.test.pong"}},
		{"covered filters left out", true, []string{"natsched.fire.test.*", "natsched.fire.test.ping.x", "a.*.c", "a.b.c", "a.b.*"},
			[]string{"a.*.c", "a.b.*", "natsched.fire.test.*", "natsched.fire.test.ping.x"}},
		{"a tail covers everything below it", true, []string{"natsched.>", "natsched.fire.x.*"}, []string{"natsched.>"}},
		{"* does not cover a tail, nor a shorter subject", false, []string{"a.*", "a.>", "b.*.c", "b.c"},
			[]string{"a.>", "b.*.c", "b.c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := routerNew(t)
			if tc.typed {
				require.NoError(t, natsched.Handle(r, func(context.Context, routerPing) error { return nil }))
				require.NoError(t, natsched.Handle(r, func(context.Context, routerPong) error { return nil }))
			}
			for _, p := range tc.patterns {
				require.NoError(t, r.HandleSubject(p, nop))
			}
			require.Equal(t, tc.want, r.Subjects())
		})
	}
}
