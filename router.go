package natsched

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"github.com/natsched/natsched/internal/subject"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// Sentinel errors of Router. Test with errors.Is.
var (
	// ErrNoHandler: no handler matches the message's type or subject.
	ErrNoHandler = errors.New("natsched: no handler")
	// ErrDecode: the payload could not be decoded into the registered type.
	// Retrying cannot help, so callers should dead-letter the message.
	ErrDecode = errors.New("natsched: cannot decode message")
	// ErrHandlerPanic: a handler or middleware panicked; the error carries
	// the panic value and a short stack.
	ErrHandlerPanic = errors.New("natsched: handler panicked")
)

// HandlerFunc handles one fired message.
type HandlerFunc func(ctx context.Context, m *Message) error

// Middleware wraps a HandlerFunc, for logging, metrics, tracing and the like.
type Middleware func(HandlerFunc) HandlerFunc

var _ Dispatcher = (*Router)(nil)

// Router dispatches fired messages to in-process handlers: by type name
// (the Natsched-Type header) for messages that carry one, by subject
// pattern for the others. It is safe for concurrent use, including
// registering handlers while dispatching.
type Router struct {
	reg *Registry

	mu       sync.RWMutex
	typed    map[string]HandlerFunc // by type name
	subjects []subjectRoute         // most specific first
	mws      []Middleware           // only ever appended to
}

type subjectRoute struct {
	pattern string
	tokens  []string
	wild    int  // number of wildcard tokens
	tail    bool // ends with ">"
	h       HandlerFunc
}

// NewRouter returns a router decoding typed messages with reg; nil means a
// new empty registry.
func NewRouter(reg *Registry) *Router {
	if reg == nil {
		reg = NewRegistry()
	}
	return &Router{reg: reg, typed: make(map[string]HandlerFunc)}
}

// Registry returns the registry the router decodes with.
func (r *Router) Registry() *Registry { return r.reg }

// Handle registers fn for messages whose Natsched-Type header is the name
// registered for T in r.Registry(). The payload is decoded into a T before
// fn is called; if that fails, Dispatch returns an error wrapping ErrDecode
// without calling fn.
//
// Errors: ErrUnknownType if T is not registered; ErrDuplicate if its name
// already has a handler; ErrInvalid if fn is nil.
func Handle[T any](r *Router, fn func(ctx context.Context, v T) error) error {
	e, ok := entryOf[T](r.reg)
	if !ok {
		return fmt.Errorf("%w: cannot handle %s: register it first", ErrUnknownType, reflect.TypeFor[T]())
	}
	if fn == nil {
		return fmt.Errorf("%w: nil handler for type %q", ErrInvalid, e.name)
	}
	decode := e.decode
	h := func(ctx context.Context, m *Message) error {
		v, err := decode(m.Data)
		if err != nil {
			return err // wraps ErrDecode
		}
		t, _ := v.(T) // only fails for a nil interface T, where zero is right
		return fn(ctx, t)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.typed[e.name]; ok {
		return fmt.Errorf("%w: type %q (%s) already has a handler", ErrDuplicate, e.name, e.goType)
	}
	r.typed[e.name] = h
	return nil
}

// HandleSubject registers fn for messages without a Natsched-Type header
// whose subject matches pattern, a NATS subject where "*" matches one token
// and a final ">" matches one or more tokens.
//
// When several patterns match, the most specific wins, compared by, in
// order: fewer wildcards, so an exact subject beats every pattern; then no
// ">" over ">"; then, at the first token where one pattern has a literal
// and the other a wildcard, the literal. For example "a.b.c" beats
// "a.b.*", which beats "a.*.c", which beats "a.*.>"; and "a.>" beats
// "a.*.*" because it has fewer wildcards, though it matches more subjects.
//
// Errors: ErrInvalid if pattern has an empty token, white space or a ">"
// before its last token, or if fn is nil; ErrDuplicate if the same pattern
// is registered already.
func (r *Router) HandleSubject(pattern string, fn HandlerFunc) error {
	rt, err := parsePattern(pattern)
	if err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("%w: nil handler for subject %q", ErrInvalid, pattern)
	}
	rt.h = fn
	r.mu.Lock()
	defer r.mu.Unlock()
	i, found := slices.BinarySearchFunc(r.subjects, rt, compareRoutes)
	if found {
		return fmt.Errorf("%w: subject %q already has a handler", ErrDuplicate, pattern)
	}
	r.subjects = slices.Insert(r.subjects, i, rt)
	return nil
}

// Subjects returns subject filters covering the messages r has handlers
// for, sorted: for each type given to Handle, the subject the typed
// helpers send it to by default (DefaultSubjectFmt with its type name,
// "natsched.fire.<type name>"), and each pattern given to HandleSubject.
// A filter that another one covers is left out ("natsched.fire.a" under
// "natsched.fire.>"), so the result can serve as a JetStream consumer's
// filter subjects, which may not contain one another. It is nil while r
// has no handlers.
//
// A typed message scheduled with WithSubject on a subject outside these
// is not covered: a consumer of it must be given its subjects. Handlers
// registered after the call are not in its result.
func (r *Router) Subjects() []string {
	r.mu.RLock()
	subjects := make([]string, 0, len(r.typed)+len(r.subjects))
	for name := range r.typed {
		subjects = append(subjects, fmt.Sprintf(DefaultSubjectFmt, name))
	}
	for _, rt := range r.subjects {
		subjects = append(subjects, rt.pattern)
	}
	r.mu.RUnlock()
	if len(subjects) == 0 {
		return nil
	}
	slices.Sort(subjects)
	subjects = slices.Compact(subjects) // a pattern may equal a type's subject
	out := subjects[:0:0]
	for i, s := range subjects {
		covered := false
		for j := range subjects {
			if j != i && subject.Match(subjects[j], s) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, s)
		}
	}
	return out
}

// Use appends middleware. The first one added is the outermost. Middleware
// is applied when a message is dispatched, so it also wraps handlers
// registered before Use. Nil middleware is ignored.
func (r *Router) Use(mw ...Middleware) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Appending in place is safe although Dispatch reads its copy of r.mws
	// after unlocking: that copy never looks past its own length.
	for _, m := range mw {
		if m != nil {
			r.mws = append(r.mws, m)
		}
	}
}

// Dispatch runs the handler for m, wrapped in the middleware: the handler
// of m.Type() when the Natsched-Type header is set (never a subject handler,
// since a typed payload must be decoded as its type), else the best subject
// match for m.Subject.
//
// Errors: whatever the handler returns; ErrNoHandler naming the type or
// subject when nothing matches; ErrDecode for an undecodable typed payload;
// ErrHandlerPanic if the handler or a middleware panics; ErrInvalid for a
// nil m.
func (r *Router) Dispatch(ctx context.Context, m *Message) (err error) {
	if m == nil {
		return fmt.Errorf("%w: nil message", ErrInvalid)
	}
	typ := m.Type()
	r.mu.RLock()
	var h HandlerFunc
	if typ != "" {
		h = r.typed[typ]
	} else {
		for _, rt := range r.subjects {
			if subject.Match(rt.pattern, m.Subject) {
				h = rt.h
				break
			}
		}
	}
	mws := r.mws
	r.mu.RUnlock()

	if h == nil {
		if typ != "" {
			return fmt.Errorf("%w: for type %q (subject %q)", ErrNoHandler, typ, m.Subject)
		}
		return fmt.Errorf("%w: for subject %q", ErrNoHandler, m.Subject)
	}
	// Middleware constructors run here, under recover, so that a faulty one
	// fails the message instead of crashing the process.
	defer func() {
		if p := recover(); p != nil {
			err = panicError(p, typ, m.Subject)
		}
	}()
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h(ctx, m)
}

func panicError(p any, typ, subject string) error {
	var pcs [16]uintptr
	n := runtime.Callers(4, pcs[:]) // skip Callers, panicError, the deferred func, gopanic
	frames := runtime.CallersFrames(pcs[:n])
	var stack strings.Builder
	for {
		f, more := frames.Next()
		fmt.Fprintf(&stack, "\n\t%s %s:%d", f.Function, f.File, f.Line)
		if !more || strings.HasSuffix(f.Function, ".(*Router).Dispatch") {
			break
		}
	}
	what := fmt.Sprintf("subject %q", subject)
	if typ != "" {
		what = fmt.Sprintf("type %q", typ)
	}
	if e, ok := p.(error); ok {
		// Keep the panic value reachable by errors.Is/As.
		return fmt.Errorf("%w: %s: %w%s", ErrHandlerPanic, what, e, stack.String())
	}
	return fmt.Errorf("%w: %s: %v%s", ErrHandlerPanic, what, p, stack.String())
}

func parsePattern(pattern string) (subjectRoute, error) {
	rt := subjectRoute{pattern: pattern, tokens: strings.Split(pattern, ".")}
	if !subject.Valid(pattern, true) {
		return rt, fmt.Errorf("%w: subject pattern %q: want tokens without white space, with * for one token and > as the last", ErrInvalid, pattern)
	}
	for _, t := range rt.tokens {
		switch t {
		case ">":
			rt.tail = true
			rt.wild++
		case "*":
			rt.wild++
		}
	}
	return rt, nil
}

// compareRoutes orders routes most specific first, as HandleSubject
// documents; the final byte-wise comparison only makes the order total
// (two distinct patterns tied up to there never match the same subject).
func compareRoutes(a, b subjectRoute) int {
	if c := cmp.Compare(a.wild, b.wild); c != 0 {
		return c
	}
	if a.tail != b.tail {
		if a.tail {
			return 1
		}
		return -1
	}
	for i := 0; i < min(len(a.tokens), len(b.tokens)); i++ {
		aw, bw := isWild(a.tokens[i]), isWild(b.tokens[i])
		if aw != bw {
			if aw {
				return 1
			}
			return -1
		}
	}
	return strings.Compare(a.pattern, b.pattern)
}

func isWild(t string) bool { return t == "*" || t == ">" }
